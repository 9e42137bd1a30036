"""Read the GitOps manifests of cd-config that deploy a Helm chart.

ArgoCD ``Application`` / ``ApplicationSet`` (``spec.source(s)``: path, helm.valueFiles,
helm.values, helm.valuesObject, helm.releaseName) and Flux ``HelmRelease`` (``spec.chart.spec.chart``
as a path, ``spec.values``, ``spec.releaseName``). Only what the locator needs is kept: which
chart, which values files in which order, which inline values, which release name.

A chart pulled from a chart repository (Argo CD ``repoURL`` + ``chart``, Flux ``sourceRef`` to a
``HelmRepository`` or ``chartRef`` to an ``OCIRepository``) is kept as a `ChartRef`;
`link_chart_sources` reads the Flux source objects for its URL, and
`bot.locate.chart_sources` finds it in a chart cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bot.errors import RepositoryError
from bot.locate.chart_sources import ChartRef, normalise_url
from bot.safe_load import load_yaml, load_yaml_all
from fixers.model import YamlPath

MAX_GITOPS_BYTES = 16 * 1024 * 1024
"""Files over this size are not read as Argo CD / Flux / kustomize manifests."""

SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__"})


@dataclass(frozen=True)
class HelmApp:
    """One deployment of a repository chart, as a GitOps manifest declares it."""

    manifest: str
    """Repository-relative path of the Application/HelmRelease file."""
    document_index: int
    kind: str
    name: str
    chart: str
    """Repository-relative chart directory; for a remote chart (`remote`), a label: the
    reference until it is resolved, then the chart as ``helm template`` takes it."""
    release: str
    namespace: str | None
    value_files: tuple[str, ...] = ()
    """Repository-relative values files, lowest precedence first (after the chart's own)."""
    inline: Mapping[str, Any] = field(default_factory=dict)
    """Inline values (highest precedence)."""
    inline_path: YamlPath | None = None
    """Where the inline values live in the manifest document (None: read-only)."""
    read_only_why: str = "an inline helm.values string block"
    """Where read-only inline values come from (when ``inline_path`` is None)."""
    unread_values: tuple[str, ...] = ()
    """Values sources the deployment merges that kube-remedy does not read (Flux
    ``valuesFrom`` ConfigMaps and Secrets): only inline values are sure to win over them."""
    remote: ChartRef | None = None
    """The chart repository reference when the chart is not in this repository."""
    runs_tests: bool | None = None
    """Whether the deployer creates the chart's test hooks (``helm.sh/hook: test``): Flux
    only with ``spec.test.enable``, Argo CD never; None when kube-remedy cannot tell."""


def _norm(path: str) -> str | None:
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def iter_yaml_files(root: Path) -> Iterator[Path]:
    """Every .yaml/.yml file under ``root`` outside VCS and tool directories."""
    for path in sorted(root.rglob("*")):
        if path.suffix in (".yaml", ".yml") and not SKIP_DIRS.intersection(
            path.relative_to(root).parts
        ):
            yield path


def _argo_sources(spec: Mapping[str, Any]) -> list[tuple[int | None, Mapping[str, Any]]]:
    if isinstance(spec.get("source"), Mapping):
        return [(None, spec["source"])]
    sources = spec.get("sources")
    if isinstance(sources, list):
        return [(i, s) for i, s in enumerate(sources) if isinstance(s, Mapping)]
    return []


def _argo_apps(relpath: str, index: int, doc: Mapping[str, Any]) -> list[HelmApp]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    base: YamlPath = ("spec",)
    if kind == "ApplicationSet":
        spec = spec.get("template", {}).get("spec") or {}
        base = ("spec", "template", "spec")
    if not isinstance(spec, Mapping):
        return []
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", ""))
    namespace = (spec.get("destination") or {}).get("namespace")
    sources = _argo_sources(spec)
    # Multi-source apps name a values repository with `ref:`; in cd-config it is the repo root.
    refs = {str(s.get("ref")) for _, s in sources if s.get("ref")}
    apps = []
    for position, source in sources:
        remote = _argo_remote(source)
        chart_path = source.get("path")
        if remote is not None:
            chart: str | None = str(remote)
        elif not isinstance(chart_path, str) or "{{" in chart_path:
            continue
        else:
            chart = _norm(chart_path)
        if chart is None:
            continue
        helm = source.get("helm") or {}
        files: list[str] = []
        chart_files: list[str] = []
        for entry in helm.get("valueFiles") or []:
            entry = str(entry)
            if "{{" in entry:
                continue
            ref = next((r for r in refs if entry.startswith(f"${r}/")), None)
            if remote is not None and ref is None:
                chart_files.append(entry)  # a file inside the remote chart
                if files:  # Helm merges in list order; the chart's files are merged first
                    why = f"valueFiles lists the chart's own {entry} after {files[-1]}"
                    remote = dataclasses.replace(remote, unusable=why)
                continue
            resolved = _norm(entry[len(ref) + 2 :] if ref else f"{chart}/{entry}")
            if resolved:
                files.append(resolved)
        if remote is not None and chart_files:
            remote = dataclasses.replace(remote, chart_files=tuple(chart_files))
            chart = str(remote)
        source_path: YamlPath = (
            (*base, "source") if position is None else (*base, "sources", position)
        )
        inline: Mapping[str, Any] = {}
        inline_path: YamlPath | None = None
        if isinstance(helm.get("valuesObject"), Mapping):
            inline = helm["valuesObject"]
            inline_path = (*source_path, "helm", "valuesObject")
        elif isinstance(helm.get("values"), str):
            try:
                loaded = load_yaml(
                    helm["values"], f"{name} spec.source.helm.values", error=RepositoryError
                )
            except RepositoryError:
                loaded = None
            inline = loaded if isinstance(loaded, Mapping) else {}
        release = str(helm.get("releaseName") or name)
        apps.append(
            HelmApp(
                relpath,
                index,
                str(kind),
                name,
                chart,
                release,
                namespace,
                tuple(files),
                inline,
                inline_path,
                remote=remote,
                runs_tests=False,  # Argo CD maps no Helm test hook to a sync phase
            )
        )
    return apps


def _argo_remote(source: Mapping[str, Any]) -> ChartRef | None:
    """The chart an Argo CD source pulls from a Helm or OCI repository (``chart`` +
    ``repoURL`` + ``targetRevision``), None for a path in a Git repository."""
    chart, repo = source.get("chart"), source.get("repoURL")
    if not isinstance(chart, str) or not chart or "{{" in chart:
        return None
    url = repo if isinstance(repo, str) and "{{" not in repo else ""
    revision = source.get("targetRevision")
    version = str(revision) if isinstance(revision, str | int | float) else ""
    return ChartRef(chart, normalise_url(url) if url else "", "" if "{{" in version else version)


def flux_app(relpath: str, index: int, doc: Mapping[str, Any]) -> HelmApp | None:
    """The deployment a Flux HelmRelease document declares: a chart path in this repository,
    or a chart from a ``HelmRepository`` / ``OCIRepository`` (a `ChartRef` whose URL
    `link_chart_sources` fills in); None for any other source."""
    spec = doc.get("spec") or {}
    chart_spec = ((spec.get("chart") or {}).get("spec")) or {}
    chart_path = chart_spec.get("chart")
    meta = doc.get("metadata") or {}
    remote = _flux_remote(spec, chart_spec, meta.get("namespace"))
    if remote is not None:
        chart: str | None = str(remote)
    elif not isinstance(chart_path, str) or not chart_path.startswith(("./", "../", "/")):
        return None  # a chart from a source kube-remedy does not read
    else:
        chart = _norm(chart_path.lstrip("/"))
    if chart is None:
        return None
    name = str(meta.get("name", ""))
    target_ns = spec.get("targetNamespace")
    namespace = target_ns or meta.get("namespace")
    # Flux's default release name is <targetNamespace>-<name> when a target namespace is set.
    release = str(spec.get("releaseName") or (f"{target_ns}-{name}" if target_ns else name))
    files = tuple(f for f in (_norm(str(v)) for v in chart_spec.get("valuesFiles") or []) if f)
    if remote is not None:  # valuesFiles name files inside the remote chart
        remote = dataclasses.replace(remote, chart_files=files)
        chart, files = str(remote), ()
    raw_values = spec.get("values")
    values = raw_values if isinstance(raw_values, Mapping) else {}
    values_from = spec.get("valuesFrom")
    test = spec.get("test")
    unread = tuple(
        f"{item.get('kind')} {item.get('name')}"
        for item in (values_from if isinstance(values_from, list) else [])
        if isinstance(item, Mapping)
    )
    return HelmApp(
        relpath,
        index,
        "HelmRelease",
        name,
        chart,
        release,
        namespace,
        tuple(f"{chart}/{f}" for f in files),
        values,
        ("spec", "values"),
        unread_values=unread,
        remote=remote,
        runs_tests=isinstance(test, Mapping) and test.get("enable") is True,
    )


def _flux_remote(
    spec: Mapping[str, Any], chart_spec: Mapping[str, Any], namespace: object
) -> ChartRef | None:
    """The remote chart a HelmRelease names: ``chart.spec`` on a ``HelmRepository``, or
    ``chartRef`` to an ``OCIRepository`` (a source namespace defaults to the release's)."""
    ns = namespace if isinstance(namespace, str) and namespace else None
    source = chart_spec.get("sourceRef")
    chart = chart_spec.get("chart")
    named = isinstance(chart, str) and chart and not chart.startswith(("./", "../", "/"))
    if isinstance(source, Mapping) and source.get("kind") == "HelmRepository" and named:
        version = chart_spec.get("version")
        name = str(source.get("name", ""))
        return ChartRef(
            str(chart),
            version=str(version) if version is not None else "",
            via=f"HelmRepository {name}",
            lookup=("HelmRepository", source.get("namespace") or ns, name),
        )
    ref = spec.get("chartRef")
    if isinstance(ref, Mapping) and ref.get("kind") == "OCIRepository":
        name = str(ref.get("name", ""))
        lookup = ("OCIRepository", ref.get("namespace") or ns, name)
        return ChartRef("", via=f"OCIRepository {name}", lookup=lookup)
    return None


SOURCE_KINDS = ("HelmRepository", "OCIRepository")


def link_chart_sources(root: Path, apps: list[HelmApp]) -> list[HelmApp]:
    """``apps`` with each Flux chart reference completed from the ``HelmRepository`` or
    ``OCIRepository`` it names (URL, and for an OCI artifact its chart name and version)."""
    if not any(a.remote is not None and a.remote.lookup for a in apps):
        return apps
    sources: dict[tuple[str, str | None, str], Mapping[str, Any]] = {}
    for path in iter_yaml_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not any(kind in text for kind in SOURCE_KINDS):
            continue
        try:
            docs = load_yaml_all(text, str(path), max_bytes=MAX_GITOPS_BYTES, error=RepositoryError)
        except RepositoryError:
            continue
        for doc in docs:
            if not isinstance(doc, Mapping) or doc.get("kind") not in SOURCE_KINDS:
                continue
            if "fluxcd.io" not in str(doc.get("apiVersion", "")):
                continue
            meta = doc.get("metadata") or {}
            spec = doc.get("spec")
            if isinstance(meta, Mapping) and isinstance(spec, Mapping):
                key = (str(doc["kind"]), meta.get("namespace"), str(meta.get("name", "")))
                sources.setdefault(key, spec)
    out = []
    for app in apps:
        ref = app.remote
        if ref is None or ref.lookup is None:
            out.append(app)
            continue
        linked = _linked(ref, ref.lookup, sources)
        out.append(dataclasses.replace(app, remote=linked, chart=str(linked)))
    return out


def _linked(
    ref: ChartRef,
    lookup: tuple[str, str | None, str],
    sources: Mapping[tuple[str, str | None, str], Mapping[str, Any]],
) -> ChartRef:
    kind, _, name = lookup
    spec = sources.get(lookup)
    if spec is None:  # a source without a namespace in its file (kustomize may set it)
        same = [s for (k, _, n), s in sources.items() if (k, n) == (kind, name)]
        spec = same[0] if len(same) == 1 else None
    if spec is None:
        return dataclasses.replace(ref, lookup=None)
    url = spec.get("url")
    url = url.strip() if isinstance(url, str) and "{{" not in url else ""
    if kind == "HelmRepository":
        return dataclasses.replace(ref, repository=normalise_url(url) if url else "", lookup=None)
    # An OCIRepository is one chart: oci://host/path/<chart>, its version in spec.ref.
    repository, _, chart = url.rstrip("/").rpartition("/")
    raw_pin = spec.get("ref")
    pin: Mapping[str, Any] = raw_pin if isinstance(raw_pin, Mapping) else {}
    version = pin.get("semver") or pin.get("tag") or ""
    version = "" if version == "latest" else version  # Flux's default tag: the newest
    unusable = (
        f"{kind} {name} pins the digest {pin['digest']}, which no chart cache records"
        if pin.get("digest")
        else ""
    )
    return dataclasses.replace(
        ref,
        name=chart,
        repository=normalise_url(repository) if repository else "",
        version=str(version),
        unusable=unusable,
        lookup=None,
    )


def scan_gitops(root: Path) -> list[HelmApp]:
    """Every ArgoCD/Flux deployment of a repository chart found under ``root``."""
    return scan_gitops_full(root)[0]


def _upstream_charts(doc: Mapping[str, Any], out: dict[str, str]) -> None:
    """Charts an Application pulls from a Helm repository: name -> where (for the reason)."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "ApplicationSet":
        spec = (spec.get("template") or {}).get("spec") or {}
    if not isinstance(spec, Mapping):
        return
    for _, source in _argo_sources(spec):
        chart, repo = source.get("chart"), source.get("repoURL")
        if isinstance(chart, str) and chart and "{{" not in chart:
            name = (doc.get("metadata") or {}).get("name", "")
            out.setdefault(chart, f"Application {name} deploys it from {repo}")


def scan_gitops_full(root: Path) -> tuple[list[HelmApp], dict[str, str]]:
    """`scan_gitops`, plus the charts Applications pull from Helm repositories (a chart of
    the same name in the repository is a vendored copy of an upstream chart)."""
    upstream: dict[str, str] = {}
    apps: list[HelmApp] = []
    for path in iter_yaml_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "Application" not in text and "HelmRelease" not in text:
            continue
        try:
            docs = load_yaml_all(text, str(path), max_bytes=MAX_GITOPS_BYTES, error=RepositoryError)
        except RepositoryError:
            continue  # chart templates, broken and oversized files are not GitOps manifests
        relpath = path.relative_to(root).as_posix()
        for index, doc in enumerate(docs):
            if not isinstance(doc, Mapping):
                continue
            kind = doc.get("kind")
            api = str(doc.get("apiVersion", ""))
            if kind in ("Application", "ApplicationSet") and api.startswith("argoproj.io/"):
                apps.extend(_argo_apps(relpath, index, doc))
                _upstream_charts(doc, upstream)
            elif kind == "HelmRelease" and "fluxcd.io" in api:
                app = flux_app(relpath, index, doc)
                if app:
                    apps.append(app)
    return apps, upstream


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class Namespaces:
    """The namespaces a repository's deployments give manifests that set none themselves.

    ``kustomize`` (a kustomization's ``namespace:`` over the resources it lists) overrides
    ``destinations`` (Argo CD ``spec.destination.namespace`` or a Flux Kustomization's
    ``targetNamespace`` over its path); with neither, ``default``."""

    kustomize: tuple[tuple[str, str], ...] = ()
    destinations: tuple[tuple[str, str], ...] = ()
    default: str = "default"

    def of(self, relpath: str, explicit: str | None = None) -> frozenset[str]:
        """Every namespace a manifest file at ``relpath`` is deployed into; ``explicit`` is the
        document's own ``metadata.namespace`` (kustomize overrides it, Argo CD and Flux do not)."""
        for table in (self.kustomize, () if explicit else self.destinations):
            found = frozenset(ns for prefix, ns in table if _covers(prefix, relpath))
            if found:
                return found
        return frozenset({explicit or self.default})


def _covers(prefix: str, relpath: str) -> bool:
    return prefix in ("", relpath) or relpath.startswith(prefix + "/")


def _kustomize_entries(relpath: str, doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    namespace = doc.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        return []
    folder = PurePosixPath(relpath).parent.as_posix()
    folder = "" if folder == "." else folder
    entries = []
    for item in doc.get("resources") or doc.get("bases") or []:
        if isinstance(item, str) and "://" not in item:
            resolved = _norm(f"{folder}/{item}" if folder else item)
            if resolved is not None:
                entries.append((resolved, namespace))
    return entries


def _destinations(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    kind, api = doc.get("kind"), str(doc.get("apiVersion", ""))
    raw_spec = doc.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    if kind == "Application" and api.startswith("argoproj.io/"):
        namespace = (spec.get("destination") or {}).get("namespace")
        paths = [s.get("path") for _, s in _argo_sources(spec)]
    elif kind == "Kustomization" and "fluxcd.io" in api:
        namespace, paths = spec.get("targetNamespace"), [spec.get("path")]
    else:
        return []
    if not isinstance(namespace, str) or not namespace or "{{" in namespace:
        return []
    out = []
    for path in paths:
        if isinstance(path, str) and "{{" not in path:
            resolved = _norm(path.lstrip("/"))
            if resolved is not None:
                out.append((resolved, namespace))
    return out


def deployed_namespaces(root: Path, default: str = "default") -> Namespaces:
    """Read kustomizations, Argo CD Applications and Flux Kustomizations under ``root``."""
    kustomize: list[tuple[str, str]] = []
    destinations: list[tuple[str, str]] = []
    for path in iter_yaml_files(root):
        relpath = path.relative_to(root).as_posix()
        is_kustomization = path.name in KUSTOMIZATION_FILES
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not is_kustomization and "Application" not in text and "Kustomization" not in text:
            continue
        try:
            loaded = load_yaml_all(text, relpath, max_bytes=MAX_GITOPS_BYTES, error=RepositoryError)
        except RepositoryError:
            continue
        docs = [d for d in loaded if isinstance(d, Mapping)]
        for doc in docs:
            if is_kustomization:
                kustomize.extend(_kustomize_entries(relpath, doc))
            else:
                destinations.extend(_destinations(doc))
    return Namespaces(tuple(kustomize), tuple(destinations), default)


@dataclass(frozen=True)
class DeployedFolder:
    """How an Argo CD Application or Flux ``Kustomization`` deploys a folder."""

    namespace: str | None = None
    """The namespace resources that set none end up in (None: not known)."""
    forced_namespace: str | None = None
    """Argo CD ``kustomize.namespace``: replaces every resource's namespace."""
    name_prefix: str = ""
    name_suffix: str = ""
    """Argo CD ``kustomize.namePrefix`` / ``nameSuffix``, added to every name."""
    images: tuple[Mapping[str, str], ...] = ()
    """Image overrides (Argo CD ``kustomize.images``, Flux ``spec.images``) in kustomize's
    ``images`` form (name, newName, newTag, digest)."""
    patches: tuple[Any, ...] = ()
    """Patches the deployment adds (Argo CD 2.9+ ``kustomize.patches``, Flux
    ``spec.patches``), as written: items with ``patch`` or ``path`` and ``target``."""
    manifest: str = ""
    """Repository path of the Application / Kustomization file (empty when not known)."""
    document: int = 0
    """Document index of the deployment in ``manifest``."""
    options: YamlPath = ()
    """Where the mapping holding ``images`` and ``patches`` sits in that document."""

    def name(self, rendered: str) -> str:
        """A resource's name as the deployment creates it."""
        return f"{self.name_prefix}{rendered}{self.name_suffix}"

    @property
    def what(self) -> str:
        """The deployment for a reason, e.g. ``Argo CD Application in clusters/x.yaml``."""
        kind = "Flux Kustomization" if self.options == ("spec",) else "Argo CD Application"
        return f"{kind} in {self.manifest}" if self.manifest else kind


def argo_image(entry: str) -> dict[str, str] | None:
    """An Argo CD ``kustomize.images`` entry (``[old=]name[:tag|@digest]``) in kustomize's
    ``images`` form; None when it is templated or empty."""
    if not entry or "{{" in entry:
        return None
    old, _, new = entry.partition("=") if "=" in entry else ("", "", entry)
    name, digest = new.split("@", 1) if "@" in new else (new, "")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    out = {"name": old or name}
    if old and name != old:
        out["newName"] = name
    if digest:
        out["digest"] = digest
    elif tag:
        out["newTag"] = tag
    return out


def _kustomize_images(raw: object, argo: bool) -> tuple[Mapping[str, str], ...]:
    items = raw if isinstance(raw, list) else []
    if argo:
        found = [argo_image(i) for i in items if isinstance(i, str)]
        return tuple(i for i in found if i is not None)
    return tuple(
        {str(k): str(v) for k, v in i.items()}
        for i in items
        if isinstance(i, Mapping) and isinstance(i.get("name"), str)
    )


def _argo_kustomize(
    source: Mapping[str, Any],
    namespace: str | None,
    where: tuple[str, int, YamlPath] = ("", 0, ()),
) -> DeployedFolder:
    """How an Argo CD source deploys its path; ``where``: (manifest, document, path of the
    source in the document)."""
    options = source.get("kustomize")
    options = options if isinstance(options, Mapping) else {}

    def text(key: str) -> str:
        value = options.get(key)
        return value if isinstance(value, str) and "{{" not in value else ""

    forced = text("namespace") or None
    patches = options.get("patches")
    manifest, document, source_path = where
    return DeployedFolder(
        namespace=forced or namespace,
        forced_namespace=forced,
        name_prefix=text("namePrefix"),
        name_suffix=text("nameSuffix"),
        images=_kustomize_images(options.get("images"), argo=True),
        patches=tuple(patches) if isinstance(patches, list) else (),
        manifest=manifest,
        document=document,
        options=(*source_path, "kustomize"),
    )


def _flux_kustomization(
    spec: Mapping[str, Any], manifest: str = "", document: int = 0
) -> DeployedFolder:
    patches = spec.get("patches")
    return DeployedFolder(
        _plain(spec.get("targetNamespace")),
        images=_kustomize_images(spec.get("images"), argo=False),
        patches=tuple(patches) if isinstance(patches, list) else (),
        manifest=manifest,
        document=document,
        options=("spec",),
    )


def _deployments(relpath: str, index: int, doc: Any) -> list[tuple[Any, DeployedFolder]]:
    """(path, how) of each folder an Argo CD Application or Flux Kustomization document
    deploys (Helm chart sources excluded)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("spec"), Mapping):
        return []
    kind, api, spec = doc.get("kind"), str(doc.get("apiVersion", "")), doc["spec"]
    if kind == "Application" and api.startswith("argoproj.io/"):
        namespace = _plain((spec.get("destination") or {}).get("namespace"))
        return [
            (
                s.get("path"),
                _argo_kustomize(
                    s,
                    namespace,
                    (relpath, index, ("spec", "source") if n is None else ("spec", "sources", n)),
                ),
            )
            for n, s in _argo_sources(spec)
            if not s.get("chart")
        ]
    if kind == "Kustomization" and "fluxcd.io" in api:
        return [(spec.get("path"), _flux_kustomization(spec, relpath, index))]
    return []


def reread_deployment(deployment: DeployedFolder, text: str) -> DeployedFolder | None:
    """``deployment`` as the (edited) text of its manifest declares it now; None when the
    text no longer declares it."""
    try:
        loaded = load_yaml_all(
            text, deployment.manifest, max_bytes=MAX_GITOPS_BYTES, error=RepositoryError
        )
    except RepositoryError:
        return None
    if not 0 <= deployment.document < len(loaded):
        return None
    found = [
        d
        for _, d in _deployments(
            deployment.manifest, deployment.document, loaded[deployment.document]
        )
        if d.options == deployment.options
    ]
    return found[0] if len(found) == 1 else None


def deployed_paths(root: Path) -> dict[str, DeployedFolder]:
    """Folders Argo CD Applications and Flux ``Kustomization``s deploy (a kustomize overlay
    or plain manifests) -> how they deploy them (namespace, Argo CD's kustomize name prefix
    and suffix, images and patches the deployment adds). Sources with a Helm chart are left to
    `scan_gitops`; templated paths are skipped."""
    out: dict[str, DeployedFolder] = {}
    for path in iter_yaml_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "Application" not in text and "Kustomization" not in text:
            continue
        relpath = path.relative_to(root).as_posix()
        try:
            loaded = load_yaml_all(text, relpath, max_bytes=MAX_GITOPS_BYTES, error=RepositoryError)
        except RepositoryError:
            continue
        for n, doc in enumerate(loaded):
            found = _deployments(relpath, n, doc)
            for item, deployment in found:
                if isinstance(item, str) and "{{" not in item:
                    folder = _norm(item.lstrip("/"))
                    if folder is not None:
                        out.setdefault(folder, deployment)
    return out


def _plain(value: object) -> str | None:
    """A namespace as written, or None when it is missing or templated."""
    return value if isinstance(value, str) and value and "{{" not in value else None
