"""Read helmfile releases that deploy a chart.

``helmfile.yaml`` (or ``helmfile.yml``, or ``helmfile.d/*.yaml``): ``releases[]`` with ``name``,
``namespace``, ``chart`` (a local path, relative to the helmfile; or ``repo/chart`` with the
helmfile's ``repositories[]``, or ``oci://...``, kept as a `ChartRef` with the release's
``version``) and ``values`` (files relative to the helmfile, and inline mappings, applied in
list order). A release is kept only when its
files all come before its inline mappings (the order `Deployment` renders them in); a file
whose text uses helmfile's own templating (``{{ }}``) is not read: its values are not literal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from bot.errors import RepositoryError
from bot.locate.chart_sources import ChartRef, normalise_url
from bot.locate.gitops import MAX_GITOPS_BYTES, SKIP_DIRS, HelmApp, _norm
from bot.safe_load import load_yaml_all
from fixers.model import YamlPath

HELMFILE_NAMES = ("helmfile.yaml", "helmfile.yml")


def _helmfiles(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if SKIP_DIRS.intersection(rel) or not path.is_file() or path.is_symlink():
            continue
        in_dir = len(rel) > 1 and rel[-2] == "helmfile.d" and path.suffix in (".yaml", ".yml")
        if path.name in HELMFILE_NAMES or in_dir:
            yield path


def _release(
    relpath: str,
    base: str,
    index: int,
    position: int,
    release: Mapping[str, Any],
    repositories: Mapping[str, str],
) -> HelmApp | None:
    name, chart = release.get("name"), release.get("chart")
    if not isinstance(name, str) or not isinstance(chart, str) or not name:
        return None
    remote = _remote(chart, release.get("version"), repositories)
    if remote is not None:
        chart_path: str | None = str(remote)
    elif not chart.startswith(("./", "../")):
        return None  # a chart this reader cannot place
    else:
        chart_path = _norm(f"{base}/{chart}".lstrip("/"))
    if chart_path is None:
        return None
    files: list[str] = []
    inline: list[tuple[int, Mapping[str, Any]]] = []
    for n, entry in enumerate(release.get("values") or []):
        if isinstance(entry, str):
            if inline:
                return None  # a file over inline values: not the order `Deployment` renders
            target = _norm(f"{base}/{entry}".lstrip("/"))
            if target is None:
                return None
            files.append(target)
        elif isinstance(entry, Mapping):
            inline.append((n, entry))
        else:
            return None
    merged: dict[str, Any] = {}
    for _, entry in inline:
        merged.update(entry)
    # One inline mapping can be edited in place; several are read, never written.
    inline_path: YamlPath | None = (
        ("releases", position, "values", inline[0][0]) if len(inline) == 1 else None
    )
    namespace = release.get("namespace")
    return HelmApp(
        relpath,
        index,
        "helmfile release",
        name,
        chart_path,
        name,
        str(namespace) if isinstance(namespace, str) and namespace else None,
        tuple(files),
        merged,
        inline_path if inline else None,
        remote=remote,
    )


def _remote(chart: str, version: object, repositories: Mapping[str, str]) -> ChartRef | None:
    """``repo/chart`` from a repository the helmfile lists, or ``oci://host/path/chart``."""
    wanted = str(version) if isinstance(version, str | int | float) else ""
    if chart.startswith("oci://"):
        repository, _, name = chart.rstrip("/").rpartition("/")
        return ChartRef(name, normalise_url(repository), wanted)
    repo, slash, name = chart.partition("/")
    if not slash or "/" in name or repo not in repositories:
        return None
    return ChartRef(name, repositories[repo], wanted, via=f"helmfile repository {repo}")


def _repositories(doc: Mapping[str, Any]) -> dict[str, str]:
    """A helmfile's repositories: name -> URL (``oci: true`` ones as ``oci://``)."""
    out: dict[str, str] = {}
    for repo in doc.get("repositories") or []:
        if not isinstance(repo, Mapping):
            continue
        name, url = repo.get("name"), repo.get("url")
        if isinstance(name, str) and isinstance(url, str) and url:
            url = f"oci://{url}" if repo.get("oci") is True and "://" not in url else url
            out[name] = normalise_url(url)
    return out


def scan_helmfiles(root: Path) -> list[HelmApp]:
    """Every helmfile release found under ``root`` (of a repository or a remote chart)."""
    apps: list[HelmApp] = []
    for path in _helmfiles(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "{{" in text or "releases" not in text:
            continue
        try:
            docs = load_yaml_all(text, str(path), max_bytes=MAX_GITOPS_BYTES, error=RepositoryError)
        except RepositoryError:
            continue
        relpath = path.relative_to(root).as_posix()
        base = PurePosixPath(relpath).parent.as_posix()
        base = "" if base == "." else base
        for index, doc in enumerate(docs):
            releases = doc.get("releases") if isinstance(doc, Mapping) else None
            repositories = _repositories(doc) if isinstance(doc, Mapping) else {}
            for position, release in enumerate(releases if isinstance(releases, list) else []):
                if isinstance(release, Mapping):
                    app = _release(relpath, base, index, position, release, repositories)
                    if app is not None:
                        apps.append(app)
    return apps
