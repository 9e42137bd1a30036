"""Charts a deployment pulls from outside the repository, resolved from local chart caches.

A Flux ``HelmRelease`` on a ``HelmRepository`` or an ``OCIRepository``, an Argo CD
``Application`` with ``repoURL`` + ``chart``, a helmfile release ``repo/chart``: the chart is
not in cd-config, and the machine may have no network. `ChartCache` looks in directories the
operator names (``--charts DIR``, settings) and in Helm's own cache
(``$HELM_CACHE_HOME/repository``), each holding untarred chart directories and/or ``.tgz``
archives, and picks the highest cached version the deployment's constraint admits, matched by
the name in ``Chart.yaml`` and, where the cache records it (Helm's ``<repo>-index.yaml``), by
repository URL.

A resolved chart is read-only: it is rendered from where it lies (an archive is unpacked into a
private temporary directory), never written; fixes go to the deployment's values.

tarfile is imported where an archive is read: most plans meet none (``remedy plan`` start-up).
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bot.errors import ChartError, RemedyError
from bot.locate.chart_versions import ConstraintError, Version, pick
from bot.safe_load import load_yaml
from fixers.model import Finding

MAX_CHART_YAML_BYTES = 1024 * 1024
MAX_INDEX_BYTES = 64 * 1024 * 1024
"""Helm repository index files over this size are not read (Bitnami's is about 20 MB)."""
MAX_ARCHIVE_BYTES = 200 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 20_000
MAX_VALUES_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ChartRef:
    """A chart a deployment pulls from a chart repository, as the deployment names it."""

    name: str
    repository: str = ""
    """``https://...`` or ``oci://...`` (the chart is ``<repository>/<name>``); '' when the
    repository object the deployment points at is not in cd-config."""
    version: str = ""
    """The version constraint as written ('' = any release)."""
    via: str = ""
    """How the deployment names the repository (``HelmRepository podinfo``), for reasons."""
    lookup: tuple[str, str | None, str] | None = None
    """(kind, namespace, name) of the Flux source object still to be read for the URL."""
    chart_files: tuple[str, ...] = ()
    """Values files inside the chart the deployment merges first (Flux ``valuesFiles``,
    Argo CD ``valueFiles`` without a ``$ref``), relative to the chart."""
    unusable: str = ""
    """Why the deployment cannot be rendered from a cache at all (a digest pin, values files
    in an order kube-remedy does not model)."""

    @property
    def plain(self) -> bool:
        """A chart name without path steps and a URL without ``..`` segments: its labels
        never read as a path out of the repository."""
        steps = self.repository.split("://", 1)[-1].split("/")
        name_ok = bool(self.name) and "/" not in self.name and not self.name.startswith(".")
        return name_ok and ".." not in steps and all(c.isprintable() for c in str(self))

    @property
    def oci(self) -> bool:
        return self.repository.startswith("oci://")

    @property
    def constraint(self) -> str:
        return self.version.strip() or "*"

    def where(self) -> str:
        """Where the chart comes from: its repository URL, else the object naming it."""
        if self.repository:
            return self.repository
        return f"{self.via} (not found in the repository)" if self.via else "an unknown repository"

    def __str__(self) -> str:
        wanted = self.version.strip() or "any version"
        return f"chart {self.name or '?'} ({wanted}) from {self.where()}"

    def helm_args(self, version: str | None = None) -> list[str]:
        """The chart as ``helm template`` / ``helm pull`` take it, with ``version`` (None: the
        deployment's constraint; '': none)."""
        args = [f"{self.repository}/{self.name}"] if self.oci else [self.name]
        if self.repository and not self.oci:
            args += ["--repo", self.repository]
        wanted = self.version.strip() if version is None else version
        return [*args, "--version", wanted] if wanted else args

    def pull_hint(self) -> str:
        command = shlex.join(["helm", "pull", *self.helm_args(), "--untar", "-d", "DIR"])
        return f"add it with `{command}` and pass --charts DIR"


def normalise_url(url: str) -> str:
    """A repository URL compared case-insensitively in scheme and host, without a trailing
    slash; Argo CD's scheme-less OCI repositories get ``oci://``."""
    url = url.strip().rstrip("/")
    if not url:
        return ""
    if "://" not in url:
        url = f"oci://{url}"
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


@dataclass(frozen=True)
class CachedChart:
    """One chart version in a cache: an untarred directory or a ``.tgz`` archive."""

    name: str
    version: str
    path: Path
    repositories: frozenset[str] = frozenset()
    """Repository URLs the cache records this version came from (empty: not recorded)."""


@dataclass(frozen=True)
class ResolvedChart:
    """A remote chart found in a cache: the version picked and where it is rendered from."""

    ref: ChartRef
    version: str
    directory: Path
    """The chart directory rendered (read-only; an archive's private unpacked copy)."""
    origin: str
    """The cache entry by name (``podinfo-6.14.1.tgz``): MR text never names local paths."""
    unpacked: Scratch | None = field(default=None, compare=False, repr=False)
    """The temporary folder an archive was unpacked into: alive as long as this is."""

    @property
    def label(self) -> str:
        """The chart as ``helm template`` takes it, without a version: what names its change
        sets, stable when the cache gets a newer version."""
        return shlex.join(self.ref.helm_args(""))

    @property
    def pinned_label(self) -> str:
        """The chart as ``helm template`` takes it, pinned to the version rendered."""
        return shlex.join(self.ref.helm_args(self.version))

    @property
    def source(self) -> str:
        """The version rendered and where it came from, in one line."""
        return (
            f"{self.ref.name} {self.version} from {self.ref.where()} (chart cache: {self.origin})"
        )

    def describe(self, wanted: str = "") -> str:
        """Which version was rendered and from where (``wanted``: the deployment's constraint)."""
        wanted = wanted.strip()
        asked = f", the deployment asks for {wanted}" if wanted and wanted != self.version else ""
        return (
            f"chart {self.ref.name} {self.version} from {self.ref.where()} is not in this "
            f"repository (rendered from the chart cache's {self.origin}{asked}); it is "
            "read-only, fixes go to the deployment's values"
        )


@dataclass(frozen=True)
class MissingChart:
    """A deployment of a remote chart that no cache holds, and why."""

    deployment: str
    release: str
    namespace: str | None
    chart: str
    reason: str


def _helm_home(env: Mapping[str, str], own: str, xdg: str, default: Path) -> Path:
    """A Helm home folder as Helm finds it: ``$HELM_*_HOME``, else ``$XDG_*_HOME/helm``, else
    the default under the user's home."""
    if env.get(own):
        return Path(env[own])
    return Path(env[xdg]) / "helm" if env.get(xdg) else default / "helm"


def helm_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Helm's repository cache (``$HELM_CACHE_HOME/repository``, as Helm finds it)."""
    env = os.environ if environ is None else environ
    home = _helm_home(env, "HELM_CACHE_HOME", "XDG_CACHE_HOME", Path.home() / ".cache")
    return home / "repository"


def helm_repositories_file(environ: Mapping[str, str] | None = None) -> Path:
    """Helm's ``repositories.yaml`` (names the URL of each ``<repo>-index.yaml``)."""
    env = os.environ if environ is None else environ
    home = _helm_home(env, "HELM_CONFIG_HOME", "XDG_CONFIG_HOME", Path.home() / ".config")
    return home / "repositories.yaml"


class Scratch:
    """A private temporary folder, removed when the last object holding it is gone."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="kr-charts-"))
        weakref.finalize(self, shutil.rmtree, self.path, True)


class ChartCache:
    """Chart directories and archives in local directories, resolved by name and version.

    Directories are searched in order (an earlier one wins a tie); each may be a chart itself
    or hold charts and archives up to two levels down (``helm pull --untar -d DIR`` makes
    ``DIR/<chart>/``). Nothing in them is ever written."""

    def __init__(self, dirs: Sequence[Path], repositories_file: Path | None = None) -> None:
        self.dirs = tuple(dict.fromkeys(Path(d) for d in dirs))
        self._repositories_file = repositories_file
        self._scanned: list[CachedChart] | None = None
        self._tops: dict[Path, Path] = {}
        """Each chart directory or archive found -> the cache directory it was found in."""
        self._archives: list[Path] = []
        self._archive_meta: dict[Path, CachedChart | None] = {}
        self._indexes: dict[Path, IndexTable] = {}
        self._repo_urls: dict[str, str] | None = None
        self._unpacked: dict[Path, Path] = {}
        self._scratch: Scratch | None = None

    @classmethod
    def configured(
        cls, dirs: Sequence[str | Path] = (), environ: Mapping[str, str] | None = None
    ) -> ChartCache:
        """The directories named (settings, ``--charts``), then Helm's own cache if present."""
        helm = helm_cache_dir(environ)
        found = [Path(d).expanduser() for d in dirs]
        if helm.is_dir():
            found.append(helm)
        return cls(found, helm_repositories_file(environ))

    # ------------------------------------------------------------------ scanning

    def _scan(self) -> list[CachedChart]:
        if self._scanned is None:
            self._scanned = []
            for top in self.dirs:
                for path in _walk(top, 2):
                    if path.is_dir() and (path / "Chart.yaml").is_file() and not _subchart(path):
                        chart = _chart_dir_entry(path)
                        if chart is not None:
                            self._scanned.append(chart)
                            self._tops.setdefault(path, top)
                    elif path.suffix == ".tgz" and path.is_file():
                        self._archives.append(path)
                        self._tops.setdefault(path, top)
        return self._scanned

    def _archive(self, path: Path) -> CachedChart | None:
        if path not in self._archive_meta:
            self._archive_meta[path] = _archive_entry(path)
        return self._archive_meta[path]

    def entries(self, name: str) -> list[CachedChart]:
        """Every cached version of chart ``name`` (its Chart.yaml name), in search order."""
        found = [c for c in self._scan() if c.name == name]
        for path in self._archives:
            # Helm names archives <chart>-<version>.tgz; only those are opened.
            if path.name.startswith(f"{name}-"):
                chart = self._archive(path)
                if chart is not None and chart.name == name:
                    found.append(chart)
        return found

    def _with_records(self, charts: list[CachedChart]) -> list[CachedChart]:
        """``charts`` with the repositories Helm's index files record for each."""
        return [
            CachedChart(c.name, c.version, c.path, frozenset(self._recorded(c))) for c in charts
        ]

    def _recorded(self, chart: CachedChart) -> set[str]:
        """The repositories Helm's index files beside ``chart`` list it in (each index file
        is read once, and only when a chart it might list is asked for)."""
        out: set[str] = set()
        for index in sorted(chart.path.parent.glob("*-index.yaml")):
            if index not in self._indexes:
                self._indexes[index] = _read_index(index, self._repository_urls())
            out |= self._indexes[index].get(chart.name, {}).get(chart.version, set())
        return out

    def _repository_urls(self) -> dict[str, str]:
        """Helm's repository name -> URL (``repositories.yaml``), {} when there is none."""
        if self._repo_urls is None:
            self._repo_urls = self._read_repository_urls()
        return self._repo_urls

    def _read_repository_urls(self) -> dict[str, str]:
        path = self._repositories_file
        if path is None or not path.is_file():
            return {}
        try:
            data = load_yaml(
                path.read_text(encoding="utf-8"), str(path), max_bytes=MAX_CHART_YAML_BYTES
            )
        except (OSError, UnicodeDecodeError, RemedyError):
            return {}
        repos = data.get("repositories") if isinstance(data, Mapping) else None
        return {
            str(r["name"]): normalise_url(str(r["url"]))
            for r in repos or []
            if isinstance(r, Mapping) and r.get("name") and r.get("url")
        }

    # ------------------------------------------------------------------ resolving

    def resolve(self, ref: ChartRef) -> ResolvedChart | str:
        """The highest cached version of ``ref`` its constraint admits, or why there is none."""
        if ref.unusable:
            return f"{ref} is not rendered: {ref.unusable}"
        if not ref.name:
            return f"{ref}: the chart name is not known"
        if not ref.plain:
            return f"{ref}: not a plain chart name and repository URL; refusing it"
        if not self.dirs:
            return (
                f"{ref} is not in this repository and no chart cache is configured; "
                f"{ref.pull_hint()}"
            )
        candidates = self.entries(ref.name)
        wanted = normalise_url(ref.repository) if ref.repository else ""
        if wanted:
            # A version the cache records from another repository is another chart.
            candidates = [
                c
                for c in self._with_records(candidates)
                if not c.repositories or wanted in c.repositories
            ]
        try:
            version = pick(ref.constraint, [c.version for c in candidates])
        except ConstraintError as exc:
            return f"{ref}: the version constraint is not valid ({exc})"
        if version is None:
            have = sorted({c.version for c in candidates}, key=_order)
            held = f" (it holds {', '.join(have[-5:])})" if have else ""
            return f"{ref} is not in the chart cache{held}; {ref.pull_hint()}"
        same = [c for c in candidates if c.version == version]
        chosen = next((c for c in same if wanted and wanted in c.repositories), same[0])
        try:
            directory = self._directory(chosen)
            chart_values(directory, ref.chart_files)
        except ChartError as exc:
            return f"{ref}: the cached {chosen.path.name} cannot be used: {exc}"
        unpacked = None if chosen.path.is_dir() else self._scratch
        return ResolvedChart(ref, version, directory, self._origin(chosen.path), unpacked)

    def _origin(self, path: Path) -> str:
        """A cache entry named inside its cache directory (never a path on this machine)."""
        top = self._tops.get(path, path.parent)
        return path.name if path == top else path.relative_to(top).as_posix()

    def _directory(self, chart: CachedChart) -> Path:
        if chart.path.is_dir():
            return chart.path.resolve()
        if chart.path not in self._unpacked:
            if self._scratch is None:
                self._scratch = Scratch()
            target = self._scratch.path / str(len(self._unpacked))
            self._unpacked[chart.path] = _unpack(chart.path, target)
        return self._unpacked[chart.path]


def _order(version: str) -> tuple[bool, Version, str]:
    parsed = Version.parse(version)
    return (parsed is not None, parsed or Version(0, 0, 0), version)


def _walk(top: Path, depth: int) -> list[Path]:
    """``top`` and what lies under it up to ``depth`` levels, links not followed below top."""
    if not top.is_dir():
        return []
    out = [top]
    level = [top]
    for _ in range(depth):
        below: list[Path] = []
        for folder in level:
            try:
                children = sorted(folder.iterdir())
            except OSError:
                continue
            for child in children:
                if child.is_symlink() or child.name.startswith("."):
                    continue
                out.append(child)
                if child.is_dir():
                    below.append(child)
        level = below
    return out


def _subchart(path: Path) -> bool:
    return path.parent.name == "charts" and (path.parent.parent / "Chart.yaml").is_file()


def _meta(text: str, origin: str) -> tuple[str, str] | None:
    try:
        meta = load_yaml(text, origin, max_bytes=MAX_CHART_YAML_BYTES, error=ChartError)
    except ChartError:
        return None
    if not isinstance(meta, Mapping) or not meta.get("name") or meta.get("version") is None:
        return None
    return str(meta["name"]), str(meta["version"])


def _chart_dir_entry(path: Path) -> CachedChart | None:
    try:
        text = (path / "Chart.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    meta = _meta(text, str(path / "Chart.yaml"))
    return CachedChart(meta[0], meta[1], path) if meta else None


def _archive_entry(path: Path) -> CachedChart | None:
    """Name and version from the archive's ``<chart>/Chart.yaml`` (None: not a chart)."""
    import tarfile

    try:
        with tarfile.open(path, "r:gz") as archive:
            for n, member in enumerate(archive):
                if n > MAX_ARCHIVE_MEMBERS:
                    return None
                parts = PurePosixPath(member.name).parts
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    if member.size > MAX_CHART_YAML_BYTES:
                        return None
                    handle = archive.extractfile(member)
                    if handle is None:
                        return None
                    text = handle.read().decode("utf-8", errors="replace")
                    meta = _meta(text, f"{path.name}:{member.name}")
                    return CachedChart(meta[0], meta[1], path) if meta else None
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


IndexTable = dict[str, dict[str, set[str]]]
"""chart name -> version -> the repository URLs a Helm index file serves it from."""


def _read_index(index: Path, urls: Mapping[str, str]) -> IndexTable:
    """A Helm ``<repo>-index.yaml`` reduced to what matching needs: for every chart version,
    the repository's URL from ``repositories.yaml`` and the folder of each absolute URL."""
    try:
        if index.stat().st_size > MAX_INDEX_BYTES:
            return {}
        text = index.read_text(encoding="utf-8")
        data = load_yaml(text, index.name, max_bytes=MAX_INDEX_BYTES, error=ChartError)
    except (OSError, UnicodeDecodeError, ChartError):
        return {}
    entries = data.get("entries") if isinstance(data, Mapping) else None
    own = urls.get(index.name[: -len("-index.yaml")])
    table: IndexTable = {}
    for name, versions in entries.items() if isinstance(entries, Mapping) else ():
        for entry in versions if isinstance(versions, list) else []:
            if not isinstance(entry, Mapping):
                continue
            found = table.setdefault(str(name), {}).setdefault(str(entry.get("version")), set())
            if own:
                found.add(own)
            for url in entry.get("urls") or []:
                if isinstance(url, str) and "://" in url:
                    found.add(normalise_url(url.rsplit("/", 1)[0]))
    return table


def _unpack(archive_path: Path, target: Path) -> Path:
    """Unpack a chart archive into ``target``: regular files and folders under one top
    folder only (no links, devices or paths leaving it), within size bounds."""
    import tarfile

    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            members: list[tarfile.TarInfo] = []
            total = 0
            tops: set[str] = set()
            for member in archive:
                if len(members) >= MAX_ARCHIVE_MEMBERS:
                    raise ChartError(f"more than {MAX_ARCHIVE_MEMBERS} entries")
                parts = PurePosixPath(member.name).parts
                if not parts or member.name.startswith("/") or ".." in parts:
                    raise ChartError(f"entry {member.name!r} leaves the chart")
                if not (member.isfile() or member.isdir()):
                    raise ChartError(f"entry {member.name!r} is a link or a device")
                total += member.size
                if total > MAX_ARCHIVE_BYTES:
                    raise ChartError(f"over {MAX_ARCHIVE_BYTES // 1048576} MB unpacked")
                tops.add(parts[0])
                members.append(member)
            if len(tops) != 1:
                raise ChartError("an archive holds one chart folder")
            target.mkdir(parents=True)
            # Written entry by entry (plain files, default modes): tarfile's "data" filter is
            # missing from some Python 3.11 builds still in use (Debian 12's 3.11.2).
            for member in members:
                dest = target.joinpath(*PurePosixPath(member.name).parts)
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    raise ChartError(f"entry {member.name!r} cannot be read")
                with source, dest.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ChartError(f"cannot unpack {archive_path.name}: {exc}") from None
    chart = target / tops.pop()
    if not (chart / "Chart.yaml").is_file():
        raise ChartError(f"{archive_path.name} holds no Chart.yaml")
    return chart


def chart_values(directory: Path, files: Sequence[str]) -> dict[str, Any]:
    """A chart's own values files ``files`` merged in order (later wins); `ChartError` for a
    file that is missing, too big or outside the chart."""
    from bot.locate.helm_render import deep_merge, load_values_text

    values: dict[str, Any] = {}
    root = directory.resolve()
    for name in files:
        path = (root / name).resolve()
        if root not in path.parents or not path.is_file():
            raise ChartError(f"values file {name} is not in the chart")
        if path.stat().st_size > MAX_VALUES_BYTES:
            raise ChartError(f"values file {name} is over {MAX_VALUES_BYTES // 1048576} MB")
        values = deep_merge(values, load_values_text(path.read_text(encoding="utf-8"), name))
    return values


def uncached_reason(finding: Finding, missing: Sequence[MissingChart]) -> str | None:
    """Why a finding no repository chart renders may come from a remote chart no cache holds:
    the deployments of such charts into the finding's namespace whose release or chart name
    the resource's name carries (else every one into its namespace). None when none fits."""
    res = finding.resource
    in_namespace = [
        m for m in missing if res.namespace is None or m.namespace in (None, res.namespace)
    ]

    def named(m: MissingChart) -> bool:
        return any(
            n and (res.name == n or res.name.startswith(f"{n}-") or n in res.name)
            for n in (m.release, m.chart)
        )

    fitting = [m for m in in_namespace if named(m)] or in_namespace
    if not fitting:
        return None
    reasons = list(dict.fromkeys(f"{m.deployment}: {m.reason}" for m in fitting))
    more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return "; ".join(reasons[:3]) + more
