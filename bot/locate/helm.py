"""Locate a finding on a rendered Helm resource and fix it through the chart's values.

`HelmIndex.build` scans cd-config once for charts (``Chart.yaml``) and GitOps manifests that
deploy them. `locate_helm` renders the candidate deployments, matches the finding's kind and
name, and returns a `HelmTarget` whose view reads the rendered resource and maps each pod-spec
field to the values key that feeds it. The mapping is learnt by probing: every mapping in the
values gets a unique marker key, the chart is rendered once, and where a marker lands tells which
values key feeds which rendered path (scalars are probed by changing a same-named key).
A Flux HelmRelease's post-renderers are applied to every render (`bot.locate.helm_postrender`);
a field no values key feeds is then fixed by a post-renderer patch of the release.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from bot import regressions
from bot.errors import ChartError, RemedyError, RepositoryError
from bot.locate.base import FileOverlay, links_under, real_relpath
from bot.locate.chart_sources import ChartCache, MissingChart, ResolvedChart, chart_values
from bot.locate.gitops import (
    MAX_GITOPS_BYTES,
    SKIP_DIRS,
    HelmApp,
    link_chart_sources,
    scan_gitops_full,
)
from bot.locate.helm_charts import ChartCopies
from bot.locate.helm_collateral import changes, collateral, described, pod_specs, refused
from bot.locate.helm_overlays import (
    OverlayRelease,
    apply_values_edits,
    changed_overlays,
    overlay_releases,
)
from bot.locate.helm_postrender import (
    POST_RENDERERS,
    PostRendered,
    post_render,
    write_in_patch,
    write_patch,
)
from bot.locate.helm_render import (
    DocId,
    RenderCache,
    RenderedDoc,
    Renderer,
    SdkRenderer,
    deep_merge,
    load_values_text,
    parse_rendered,
    values_key,
)
from bot.locate.helm_templates import SCALAR_FIELDS, Exposure, expose, values_references
from bot.locate.helmfile import scan_helmfiles
from bot.locate.kustomize import KustomizeIndex
from bot.locate.kustomize_build import (
    MERGE_KEYS,
    KustomizeReader,
    Touch,
    find_kustomization,
    named_path,
    physical_path,
)
from bot.locate.manifest import _container_names
from bot.model import Location
from bot.safe_load import load_yaml, load_yaml_all
from fixers.edits import (
    EditError,
    apply_edits,
    load_document_text,
    load_documents,
    render_manifest,
)
from fixers.intent import comments_of, stale_comments
from fixers.model import (
    AnyEdit,
    AppendUnique,
    CreateManifest,
    Edit,
    Finding,
    Fixed,
    Remove,
    Set,
    YamlPath,
)
from fixers.view import (
    WORKLOAD_KINDS,
    FieldNotExposed,
    ManifestPodView,
    Neighbourhood,
    PodView,
    calls_the_api,
    label_selector_matches,
    lookup,
    other_pods_selected,
    policies_selecting,
    reselected,
    served_ports,
)

PROBE = "__kr_probe_"
MAX_CHART_YAML_BYTES = 1024 * 1024
KNOWN_UPSTREAMS = (
    "bitnami",
    "grafana",
    "argoproj",
    "prometheus-community",
    "jetstack",
    "stefanprodan",
)
CONTAINER_EXPOSABLE = frozenset({"securityContext", "resources", "volumeMounts"})
POD_EXPOSABLE = {
    "securityContext": "podSecurityContext",
    "volumes": "volumes",
    "automountServiceAccountToken": "automountServiceAccountToken",
}
"""Fields an in-house chart's template may be changed to read from values, and their keys."""
LIST_FIELDS = frozenset({"volumes", "volumeMounts", "tolerations", "initContainers"})
SWITCH_NAMES = frozenset({"enabled", "enable", "create"})
POST_RENDER = "__kr_postrender__"
"""Heads a rendered path written by a Flux post-renderer patch (no values key feeds it)."""
SWITCH = "__kr_switch__"
"""Marks a values path whose edit means: turn this existing switch on."""
"""Boolean values keys that turn a part of a chart on."""
CONFIRM_LEAVES: tuple[YamlPath, ...] = (
    ("allowPrivilegeEscalation",),
    ("readOnlyRootFilesystem",),
    ("runAsNonRoot",),
    ("runAsUser",),
    ("runAsGroup",),
    ("privileged",),
    ("seccompProfile",),
    ("capabilities", "drop"),
    ("limits", "cpu"),
    ("limits", "memory"),
    ("requests", "cpu"),
    ("requests", "memory"),
)
"""Fields fixers set under a values mapping: confirmed together in one render."""
SCALAR_STEMS = {"automountServiceAccountToken": "automount", "imagePullPolicy": "pullpolicy"}
"""Rendered scalar field -> the stem a values key feeding it contains (charts abbreviate)."""


# --------------------------------------------------------------------------- index


@dataclass(frozen=True)
class ChartInfo:
    """A chart directory in the repository."""

    path: str
    """Repository-relative chart directory ('' for a chart at the root)."""
    name: str
    third_party: bool
    why_third_party: str = ""
    subcharts: Mapping[str, str] = field(default_factory=dict)
    """values key (alias or name) -> vendored subchart directory (relative to the chart)."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Symlink in the chart -> the repository file it stands for."""
    refused: str = ""
    """Why the chart is never rendered (a symlink Helm would follow out of the repository)."""
    external: ResolvedChart | None = None
    """A remote chart found in a chart cache (read-only; ``path`` is then its label)."""


def _chart_info(root: Path, chart_dir: Path, rel: str) -> ChartInfo | None:
    """The chart's metadata; `ChartError` when its Chart.yaml is unreadable or out of bounds."""
    origin = f"{rel}/Chart.yaml".lstrip("/")
    try:
        text = (chart_dir / "Chart.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChartError(f"cannot read {origin}: {exc}") from None
    meta = load_yaml(text, origin, max_bytes=MAX_CHART_YAML_BYTES, error=ChartError) or {}
    if not isinstance(meta, Mapping):
        return None
    text = " ".join(
        str(meta.get(k, "")) for k in ("home", "sources", "maintainers", "annotations")
    ).lower()
    upstream = next((u for u in KNOWN_UPSTREAMS if u in text), None)
    sources: list[Any] = meta["sources"] if isinstance(meta.get("sources"), list) else []
    source = next((str(u) for u in sources if "://" in str(u)), None)
    third_party = upstream is not None or source is not None
    why = (
        f"chart {meta.get('name')} is maintained upstream ({upstream})"
        if upstream
        else f"chart {meta.get('name')} is vendored from its upstream source {source}"
        if source
        else ""
    )
    subcharts: dict[str, str] = {}
    for dep in meta.get("dependencies") or []:
        if isinstance(dep, Mapping) and dep.get("name"):
            key = str(dep.get("alias") or dep["name"])
            if (chart_dir / "charts" / str(dep["name"])).is_dir():
                subcharts[key] = f"charts/{dep['name']}"
    return ChartInfo(rel, str(meta.get("name", chart_dir.name)), third_party, why, subcharts)


@dataclass
class HelmIndex:
    """The charts and GitOps deployments of one repository checkout."""

    root: Path
    charts: dict[str, ChartInfo]
    apps: list[HelmApp]
    renderer: Renderer = field(default_factory=SdkRenderer)
    _cache: RenderCache | None = field(default=None, repr=False)
    _defaults: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    _probes: dict[tuple[str, str, str, str], Probes] = field(default_factory=dict, repr=False)
    _seeds: dict[tuple[str, str, str], tuple[str, str, str, str]] = field(
        default_factory=dict, repr=False
    )
    copies: ChartCopies = field(default_factory=ChartCopies, repr=False)
    _pristine: dict[Path, FileOverlay] = field(default_factory=dict, repr=False)
    missing: list[MissingChart] = field(default_factory=list)
    """Deployments of remote charts that no chart cache holds."""
    named_anew: dict[tuple[str, str, str, int, str], bool] = field(default_factory=dict, repr=False)
    """Documents whose name a template draws at random (see `HelmTarget._named_anew`)."""
    guessed_release: dict[str, str] = field(default_factory=dict, repr=False)
    """Charts no GitOps deployment names: the release name that located their first resource
    (their other resources are tried under it first: one release per chart, one render)."""

    def pristine(self, repo_root: Path) -> FileOverlay:
        """The checkout at ``repo_root`` without edits, shared by the run's lookups (a file is
        read once; nothing writes to it)."""
        if repo_root not in self._pristine:
            self._pristine[repo_root] = FileOverlay(repo_root)
        return self._pristine[repo_root]

    def chart_root(self, chart: ChartInfo) -> Path:
        """Where the chart's files are: in the repository, or (remote) in the chart cache."""
        return chart.external.directory if chart.external else self.root / chart.path

    @property
    def cache(self) -> RenderCache:
        """Renders shared by every lookup of this index for the whole run: a chart is loaded
        once and each values overlay of it is rendered once."""
        if self._cache is None:
            self._cache = RenderCache(self.renderer)
        return self._cache

    def defaults(self, chart: ChartInfo, overlay: FileOverlay) -> dict[str, Any]:
        """The chart's default values (its values.yaml as the overlay has it, with the vendored
        subcharts' defaults under their keys), parsed once per content."""
        rel = f"{chart.path}/values.yaml".lstrip("/")
        chart_dir = self.chart_root(chart)
        if chart.external:  # read-only: never in the overlay
            rel = f"{chart.external.ref.name}/values.yaml"
            text = _read_text(chart_dir / "values.yaml")
        else:
            text = overlay.read(rel) or ""
        key = (chart.path, text)
        if key not in self._defaults:
            edited = not chart.external and text != (overlay.original(rel) or "")
            values = dict(_edited_values(text, rel) if edited else load_values_text(text, rel))
            for sub_key, sub in chart.subcharts.items():
                sub_values = _read_values(chart_dir / sub / "values.yaml")
                values[sub_key] = deep_merge(sub_values, values.get(sub_key) or {})
            self._defaults[key] = values
        return self._defaults[key]

    def probes(
        self, dep: Deployment, chart_dir: Path, user: dict[str, Any], defaults: dict[str, Any]
    ) -> Probes:
        """The shared probe results of one chart rendered with one values overlay."""
        key = (str(chart_dir), values_key(user), dep.release, dep.namespace)
        if key not in self._probes:
            effective = deep_merge(defaults, user, drop_null=True)
            # The first overlay probed for these templates (the deployment's own) seeds the
            # later ones (the same values with fixes applied): where a key lands is the
            # templates' doing, and every fix is verified on the real render anyway. A copy
            # whose changes no other template sees (a new NetworkPolicy) has the same
            # templates: the chart's own seed serves it.
            seed = self._seeds.setdefault((str(chart_dir), dep.release, dep.namespace), key)
            origin = self.copies.unseen_by_others(chart_dir) if seed == key else None
            if origin is not None:
                seed = self._seeds.get((str(origin), dep.release, dep.namespace), key)
            base = None if seed == key else self._probes[seed]
            self._probes[key] = Probes(
                self.cache,
                chart_dir,
                dep.release,
                dep.namespace,
                user,
                effective,
                confirmations={} if base is None else base.confirmations,
                confirmed_together=set() if base is None else base.confirmed_together,
                seed=base,
                copies=self.copies,
            )
        return self._probes[key]

    def deployed(
        self,
        dep: Deployment,
        chart_dir: Path,
        user: Mapping[str, Any],
        overlay: FileOverlay,
        kind: str | None = None,
        only: str | None = None,
    ) -> PostRendered:
        """The documents ``dep`` deploys: the chart rendered with ``user`` values, then the
        Flux post-renderers of its HelmRelease as the overlay has them (`ChartError` when
        one cannot be applied)."""
        docs = self.cache.docs(chart_dir, user, dep.release, dep.namespace, only=only, kind=kind)
        app = dep.app
        renderers = dep.post_renderers(overlay)
        if app is None or not renderers:
            return PostRendered(docs)
        said = f"{app.kind} {app.name} ({app.manifest})"
        return post_render(docs, renderers, said, app.manifest, app.document_index)

    def chart_dir_for(self, chart: ChartInfo, overlay: FileOverlay) -> Path:
        """The chart directory with the overlay's template changes: the original, or a copy
        made once per distinct set of changed chart files (values.yaml changes are rendered as
        values, never copied)."""
        prefix = f"{chart.path}/" if chart.path else ""
        own_values = f"{prefix}values.yaml"
        after = {c.path: c.after for c in overlay.changes()}
        # A link's target may be changed outside the chart: the copy holds it at the link.
        after.update({link: after[real] for link, real in chart.links.items() if real in after})
        if chart.external:  # read-only: the chart cache is never written
            return self.chart_root(chart)
        changed = {
            p[len(prefix) :]: t
            for p, t in after.items()
            if p.startswith(prefix) and p != own_values
        }
        return self.copies.with_changes(self.root / chart.path, changed)

    @classmethod
    def build(
        cls,
        repo_root: Path,
        renderer: Renderer | None = None,
        kustomize: KustomizeIndex | None = None,
        chart_cache: ChartCache | None = None,
    ) -> HelmIndex:
        """Scan ``repo_root`` once for Chart.yaml files and ArgoCD/Flux/helmfile deployments;
        ``kustomize``: the repository's kustomizations, when the caller has built them; remote
        charts the deployments use are looked up in ``chart_cache``."""
        root = repo_root.resolve()
        charts: dict[str, ChartInfo] = {}
        for chart_yaml in sorted(root.rglob("Chart.yaml")):
            rel_parts = chart_yaml.relative_to(root).parts
            if SKIP_DIRS.intersection(rel_parts):
                continue
            # Subcharts vendored under another chart's charts/ are reached through their parent.
            if any(
                rel_parts[i] == "charts"
                and (root.joinpath(*rel_parts[:i]) / "Chart.yaml").is_file()
                for i in range(len(rel_parts) - 1)
            ):
                continue
            rel = chart_yaml.parent.relative_to(root).as_posix()
            rel = "" if rel == "." else rel
            try:
                links = links_under(root, rel)
            except RepositoryError as exc:  # checked before Helm (or Chart.yaml) reads it
                charts[rel] = ChartInfo(rel, chart_yaml.parent.name, False, refused=str(exc))
                continue
            try:
                info = _chart_info(root, chart_yaml.parent, rel)
            except ChartError as exc:
                charts[rel] = ChartInfo(rel, chart_yaml.parent.name, False, refused=str(exc))
                continue
            if info:
                info = dataclasses.replace(info, links=links)
                charts[info.path] = info
        found, upstream = scan_gitops_full(root)
        found = [*overlay_releases(root, found, kustomize), *scan_helmfiles(root)]
        found, missing = _remote_charts(link_chart_sources(root, found), charts, chart_cache)
        apps = [a for a in found if a.chart in charts]
        for path, info in list(charts.items()):
            # A chart an Application also pulls from a Helm repository is a vendored copy.
            if info.name in upstream and not info.third_party:
                why = f"chart {info.name} is vendored: {upstream[info.name]}"
                charts[path] = dataclasses.replace(info, third_party=True, why_third_party=why)
        return cls(root, charts, apps, renderer or SdkRenderer(), missing=missing)


def _remote_charts(
    apps: list[HelmApp], charts: dict[str, ChartInfo], cache: ChartCache | None
) -> tuple[list[HelmApp], list[MissingChart]]:
    """``apps`` with each remote chart resolved from ``cache`` (added to ``charts`` under its
    label, read-only and third-party), and the deployments whose chart no cache holds."""
    out: list[HelmApp] = []
    missing: list[MissingChart] = []
    for app in apps:
        if app.remote is None:
            out.append(app)
            continue
        found = (cache or ChartCache(())).resolve(app.remote)
        info = _external_info(found) if isinstance(found, ResolvedChart) else found
        if isinstance(info, str):
            where = f"{app.kind} {app.name} ({app.manifest})"
            missing.append(MissingChart(where, app.release, app.namespace, app.remote.name, info))
            continue
        resolved = info.external
        assert resolved is not None
        label, known = info.path, charts.get(info.path)
        other = None if known is None else known.external
        if known is not None and (other is None or other.directory != resolved.directory):
            # a repository chart's key, or another version of the same chart (environments
            # asking for different ranges): the version tells them apart
            label = resolved.pinned_label
        charts.setdefault(label, dataclasses.replace(info, path=label))
        out.append(dataclasses.replace(app, chart=label))
    return out, missing


def _external_info(resolved: ResolvedChart) -> ChartInfo | str:
    """The chart info of a chart resolved from a cache, or why its Chart.yaml is unusable."""
    try:
        info = _chart_info(resolved.directory.parent, resolved.directory, resolved.directory.name)
    except ChartError as exc:
        return f"{resolved.ref}: the cached {resolved.origin} is unusable: {exc}"
    if info is None:
        return f"{resolved.ref}: the cached {resolved.origin} has no chart metadata"
    return dataclasses.replace(
        info,
        path=resolved.label,
        third_party=True,
        why_third_party=resolved.describe(),
        external=resolved,
    )


def _read_text(path: Path) -> str:
    """A chart file's text ('' when it does not exist)."""
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ChartError(f"cannot read {path.parent.name}/{path.name}: {exc}") from None


# --------------------------------------------------------------------------- deployments


@dataclass(frozen=True)
class Deployment:
    """One way a chart is rendered: values files (lowest precedence first) and inline values."""

    chart: ChartInfo
    release: str
    namespace: str
    value_files: tuple[str, ...]
    """Repository-relative, the chart's own values.yaml first."""
    app: HelmApp | None = None

    def render_values(self, overlay: FileOverlay) -> dict[str, Any]:
        """`user_values`, plus the overlay's changes to the chart's own values.yaml as values
        on top of the unchanged chart (a removed key becomes null, which Helm deletes)."""
        values = self.user_values(overlay)
        if self.chart.external:  # a remote chart's values.yaml is never edited
            return values
        base = self.value_files[0]
        now, was = overlay.read(base), overlay.original(base)
        if now != was and now is not None and was is not None:
            values = deep_merge(_values_delta(base, was, now), values)
        return values

    def user_values(self, overlay: FileOverlay) -> dict[str, Any]:
        """What Helm gets on top of the chart defaults: a remote chart's own values files the
        deployment names, env files, then inline values."""
        external, remote = self.chart.external, self.app.remote if self.app else None
        values = chart_values(external.directory, remote.chart_files) if external and remote else {}
        for relpath in self.value_files[1:]:
            text = overlay.read(relpath)
            if text is None:
                raise ChartError(f"values file {relpath} named by {self._origin} does not exist")
            values = deep_merge(values, load_values_text(text, relpath))
        inline = self.inline(overlay)
        return deep_merge(values, inline) if inline else values

    def inline(self, overlay: FileOverlay) -> dict[str, Any]:
        """The deployment's inline values as the overlay has them (a fix may have added
        them to a manifest that had none)."""
        if not self.app:
            return {}
        if isinstance(self.app, OverlayRelease):  # valuesFrom, then spec.values as built
            return self.app.values(overlay)
        if self.app.inline_path is None:
            return dict(self.app.inline)
        text = overlay.read(self.app.manifest) or ""
        docs = load_yaml_all(
            text, self.app.manifest, max_bytes=MAX_GITOPS_BYTES, error=RepositoryError
        )
        data = lookup(docs[self.app.document_index], self.app.inline_path, {})
        return dict(data) if isinstance(data, Mapping) else {}

    def post_renderers(self, overlay: FileOverlay) -> Any:
        """The Flux HelmRelease's ``spec.postRenderers`` as the overlay has them (None for
        any other deployment)."""
        app = self.app
        if app is None or app.kind != "HelmRelease":
            return None
        if isinstance(app, OverlayRelease):
            return lookup(app.read(overlay).release.doc, POST_RENDERERS)
        text = overlay.read(app.manifest) or ""
        if "postRenderers" not in text:
            return None
        return _post_renderers_in(text, app.manifest, app.document_index)

    @property
    def flux(self) -> bool:
        """Deployed by a Flux HelmRelease (whose post-renderers can take a fix)."""
        return self.app is not None and self.app.kind == "HelmRelease"

    @property
    def _origin(self) -> str:
        return f"{self.app.kind} {self.app.name} ({self.app.manifest})" if self.app else "chart"


@lru_cache(maxsize=64)
def _post_renderers_in(text: str, origin: str, document: int) -> Any:
    """``spec.postRenderers`` of a manifest's document, parsed once per text (shared: never
    mutated)."""
    docs = load_yaml_all(text, origin, max_bytes=MAX_GITOPS_BYTES, error=RepositoryError)
    return lookup(docs[document], POST_RENDERERS) if 0 <= document < len(docs) else None


@lru_cache(maxsize=256)
def _values_delta(origin: str, was: str, now: str) -> dict[str, Any]:
    """`_delta` of two texts of a values file, once per pair (shared: never mutated)."""
    return _delta(load_values_text(was, origin), _edited_values(now, origin))


def _edited_values(text: str, origin: str) -> Mapping[str, Any]:
    """A values file as the run's edits left it: the data the applier's self-check read from
    this very text (`load_document_text` memoises it), so a big values file is not parsed
    once more per fix. The bounded reader answers whatever that cannot: the text before the
    edits went through it, and the applier refuses anchors, so an edit adds a few values and
    never an alias to expand."""
    try:
        data = load_document_text(text)
    except yaml.YAMLError:
        return load_values_text(text, origin)
    if data is None:
        return {}
    return data if isinstance(data, Mapping) else load_values_text(text, origin)


def _delta(was: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """User values that turn chart defaults ``was`` into ``now``."""
    out: dict[str, Any] = {key: None for key in was if key not in now}
    for key, value in now.items():
        old = was.get(key, ...)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = _delta(old, value)
            if sub:
                out[key] = sub
        elif value != old or key not in was:
            out[key] = value
    return out


def _read_values(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return load_values_text(path.read_text(encoding="utf-8"), str(path))


# --------------------------------------------------------------------------- probing


def _map_paths(data: Any, prefix: YamlPath = (), depth: int = 0) -> Iterator[YamlPath]:
    if isinstance(data, Mapping) and depth < 8:
        yield prefix
        for key, value in data.items():
            if isinstance(value, Mapping):
                yield from _map_paths(value, (*prefix, str(key)), depth + 1)
            elif value is None or value == {}:
                yield (*prefix, str(key))


def _fixer_named(path: YamlPath) -> bool:
    """A values mapping named for a field fixers set (probed before the others)."""
    return any("securitycontext" in str(s).lower() or "resources" in str(s).lower() for s in path)


def _nested(one: YamlPath, other: YamlPath) -> bool:
    """Whether one of two values paths holds the other (or they are the same)."""
    n = min(len(one), len(other))
    return one[:n] == other[:n]


def _named(document: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of a rendered document."""
    meta = document.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return str(meta.get("namespace") or "default"), str(meta.get("name", ""))


def _allows_all(rules: Any) -> bool:
    """Whether a policy's list of rules has one that allows all traffic (``{}``, or a rule
    naming neither peers nor ports)."""
    return isinstance(rules, list) and any(
        isinstance(r, Mapping) and not r.get("to") and not r.get("from") and not r.get("ports")
        for r in rules
    )


def _selector_in_words(selector: Any) -> str:
    """A LabelSelector in a few words: ``labelled a=b`` (or ``matching a selector``)."""
    if not isinstance(selector, Mapping) or not selector:
        return ""
    labels = selector.get("matchLabels")
    if isinstance(labels, Mapping) and labels and not selector.get("matchExpressions"):
        return " labelled " + ", ".join(f"{k}={v}" for k, v in labels.items())
    return " matching a selector"


def _peer_in_words(peer: Any, own: Any) -> str:
    """Who one ``from``/``to`` entry of a rule names; ``own``: the policy's podSelector."""
    if not isinstance(peer, Mapping):
        return "an unreadable peer"
    block = peer.get("ipBlock")
    if isinstance(block, Mapping):
        return f"addresses {block.get('cidr', '?')}" + (
            " (with exceptions)" if block.get("except") else ""
        )
    pods, namespaces = peer.get("podSelector"), peer.get("namespaceSelector")
    if namespaces is None:
        if pods == own:
            return "its own pods"
        return f"pods{_selector_in_words(pods)} of its namespace"
    who = f"pods{_selector_in_words(pods)}" if pods else "any pod"
    return f"{who} of namespaces{_selector_in_words(namespaces) or ' (any)'}"


def _rules_in_words(rules: Any, restricted: bool, direction: str, own: Any = None) -> str:
    """A policy's ingress or egress in a few words: who each rule admits, on which ports."""
    if not restricted:
        return f"{direction} not restricted"
    if not isinstance(rules, list) or not rules:
        return f"all {direction} denied" + (" (DNS too)" if direction == "egress" else "")
    if _allows_all(rules):
        return f"all {direction} allowed"
    side, anyone = ("from", "any source") if direction == "ingress" else ("to", "anywhere")
    said = []
    for rule in rules:
        if not isinstance(rule, Mapping):
            continue
        peers = rule.get(side)
        who = " or ".join(_peer_in_words(p, own) for p in peers) if peers else anyone
        ports = [
            f"{p.get('port', 'any')}/{p.get('protocol', 'TCP')}"
            for p in rule.get("ports") or []
            if isinstance(p, Mapping)
        ]
        said.append(f"{side} {who} on " + (", ".join(ports) if ports else "any port"))
    return f"{direction} only " + "; or ".join(said)


def _port_names(view: PodView) -> dict[str, int]:
    """containerPort of each named port of the pod's regular containers."""
    names: dict[str, int] = {}
    for container in view.containers:
        for port in container.get("ports", default=[]) or []:
            if isinstance(port, Mapping) and port.get("name") and port.get("containerPort"):
                names.setdefault(str(port["name"]), port["containerPort"])
    return names


def _admits_non_pods(rules: Any, port: int | str, names: Mapping[str, int]) -> bool:
    """Whether ingress ``rules`` admit sources that are not pods (a rule with no ``from``, or
    an ``ipBlock`` peer) on pod ``port`` (a number or a container port's name)."""
    wanted = names.get(port, port) if isinstance(port, str) else port
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, Mapping):
            continue
        peers = rule.get("from")
        if peers and not any(isinstance(p, Mapping) and "ipBlock" in p for p in peers):
            continue
        ports = rule.get("ports")
        if not ports:
            return True
        for entry in ports if isinstance(ports, list) else []:
            if not isinstance(entry, Mapping) or entry.get("port") is None:
                return True
            given = entry["port"]
            given = names.get(given, given) if isinstance(given, str) else given
            end = entry.get("endPort")
            if given == wanted or (
                isinstance(end, int)
                and isinstance(given, int)
                and isinstance(wanted, int)
                and given <= wanted <= end
            ):
                return True
    return False


def _allows_dns(rules: Any) -> bool:
    """Whether egress ``rules`` let a pod reach the cluster DNS: a rule on port 53 (or on any
    port) to anywhere, or to peers that name namespaces or addresses (kube-dns runs in
    kube-system, outside the chart's namespace)."""
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, Mapping):
            continue
        ports = rule.get("ports") or []
        on_53 = not ports or any(
            isinstance(p, Mapping) and str(p.get("port", "53")) in ("53", "dns", "dns-tcp")
            for p in ports
        )
        peers = rule.get("to") or []
        beyond = not peers or any(
            isinstance(p, Mapping) and ("namespaceSelector" in p or "ipBlock" in p) for p in peers
        )
        if on_53 and beyond:
            return True
    return False


def _set_in(values: dict[str, Any], path: YamlPath, extra: Mapping[Any, Any]) -> None:
    node: dict[Any, Any] = values
    for step in path:
        child = node.get(step)
        if not isinstance(child, dict):
            child = dict(child) if isinstance(child, Mapping) else {}
            node[step] = child
        node = child
    node.update(extra)


def _nulls(node: Any, prefix: YamlPath = ()) -> set[YamlPath]:
    """Paths of the null fields of a rendered document."""
    if isinstance(node, Mapping):
        items: Iterator[tuple[Any, Any]] = iter(node.items())
    elif isinstance(node, list):
        items = iter(enumerate(node))
    else:
        return set()
    out: set[YamlPath] = set()
    for key, value in items:
        out |= {(*prefix, key)} if value is None else _nulls(value, (*prefix, key))
    return out


def _find_markers(node: Any, prefix: YamlPath, out: dict[str, list[YamlPath]]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith(PROBE):
                out.setdefault(key, []).append(prefix)
            else:
                _find_markers(value, (*prefix, key), out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _find_markers(value, (*prefix, index), out)


_MISSING_TEMPLATE = 'no template "'
"""Helm's error for an ``include`` of a template the chart does not hold."""


@dataclass
class Probes:
    """What feeds what in one chart rendered with one values overlay, for every resource.

    One render puts a sentinel key under every mapping of the values named for what fixers set
    (the other mappings only when a field is fed by none of those; split in halves when a
    sentinel breaks a template) and records where each lands in every document; a second turns
    on every disabled Bitnami-style ``securityContext.enabled`` switch. Probe renders use a copy
    of the chart limited to the templates looked at (`ChartCopies.limited`): workload templates
    for the sentinels, the resource's own template for the per-field questions; every fix is
    still verified on a render of the whole chart. Shared by all resources of the chart for the
    whole run (`HelmIndex.probes`)."""

    cache: RenderCache
    chart_dir: Path
    release: str
    namespace: str
    user: dict[str, Any]
    effective: dict[str, Any]
    _found: dict[DocId, dict[YamlPath, YamlPath]] | None = None
    switches: dict[YamlPath, YamlPath] = field(default_factory=dict)
    """Probed values mapping -> the mapping whose ``enabled`` must be on for it to render
    (itself for a Bitnami-style ``securityContext.enabled``, a sibling for a key the template
    reads only under another's switch)."""
    confirmations: dict[tuple[Any, ...], bool] = field(default_factory=dict)
    confirmed_together: set[DocId] = field(default_factory=set)
    """Resources whose mappings were confirmed in one render (`ValuesMap._confirm_together`)."""
    _refs: list[YamlPath] | None = None
    _rest: list[YamlPath] = field(default_factory=list)
    seed: Probes | None = None
    """Probes of the deployment's own values for the same templates, whose map this reuses."""
    copies: ChartCopies = field(default_factory=ChartCopies)
    """Where limited copies of the chart come from (the index's, shared by the run)."""
    _answers: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    _workloads: tuple[Path | None] | None = None
    _leaves: list[tuple[str, ...]] | None = None

    def render(self, values: Mapping[str, Any], only: str | None = None) -> list[RenderedDoc]:
        """Documents of a render with ``values`` ([] when the chart does not render them);
        ``only`` one template, rendered from a copy of the chart limited to it."""
        limited = None if only is None else self.copies.limited(self.chart_dir, (only,))
        try:
            chart_dir, _ = self._rendered(limited, values)
            return self.cache.docs(chart_dir, values, self.release, self.namespace, only)
        except ChartError:
            return []

    def _rendered(
        self, limited: Path | None, values: Mapping[str, Any]
    ) -> tuple[Path, dict[str, str]]:
        """(chart directory, rendered templates) of ``values``: the limited copy when there is
        one, the whole chart (without its schema) when it was rendered with these values
        already or when the copy lacks a template included by a computed name."""
        whole = self.copies.unvalidated(self.chart_dir)
        if limited is not None and not self.cache.has(whole, values, self.release, self.namespace):
            try:
                return limited, self.cache.rendered(limited, values, self.release, self.namespace)
            except ChartError as exc:
                if _MISSING_TEMPLATE not in str(exc):
                    raise
        return whole, self.cache.rendered(whole, values, self.release, self.namespace)

    def _workload_copy(self) -> Path | None:
        """The chart limited to the templates that render workloads with the deployment's
        values (where probe markers are looked for), once."""
        if self._workloads is None:
            try:
                rendered = self.cache.rendered(
                    self.chart_dir, self.user, self.release, self.namespace
                )
            except ChartError:
                self._workloads = (None,)
                return None
            wanted = [
                template
                for template, text in rendered.items()
                if self.cache.kinds_in(template, text) & WORKLOAD_KINDS
            ]
            # A sentinel that breaks a template no workload comes from never costs a split.
            self._workloads = (self.copies.limited(self.chart_dir, wanted, small=True),)
        return self._workloads[0]

    def found(self, doc: DocId, everything: bool = False) -> dict[YamlPath, YamlPath]:
        """rendered path -> values mapping that lands there, for one document. The mappings
        named for what fixers set (``*securityContext*``, ``*resources*``) are probed first;
        ``everything`` probes the rest too (once), for a field none of those feeds."""
        if self._found is None and self.seed is not None:
            base = self.seed
            base.found(doc, everything)
            assert base._found is not None
            self._found = {d: dict(found) for d, found in base._found.items()}
            self.switches = dict(base.switches)
            self._rest = list(base._rest)
        if self._found is None:
            self._found = {}
            maps = list(_map_paths(self.effective))
            self._rest = [p for p in maps if not _fixer_named(p)]
            self._probe([p for p in maps if _fixer_named(p)])
            disabled = [
                p
                for p in maps
                if p
                and str(p[-1]).lower().endswith("securitycontext")
                and lookup(self.effective, (*p, "enabled")) is False
            ]
            self._probe(disabled, {p: p for p in disabled})
            self._probe_absent()
        if everything and self._rest:
            rest, self._rest = self._rest, []
            self._probe(rest)
        return self._found.get(doc, {})

    def _probe(
        self, paths: list[YamlPath], enable: Mapping[YamlPath, YamlPath] | None = None
    ) -> None:
        """Markers under ``paths`` in one render (``enable``: the switch each needs on):
        maps (templates ranging over maps of maps); where one breaks a template, text
        (templates printing each value of a map of strings); where that breaks one too,
        halves of ``paths`` with maps."""
        enable = enable or {}
        if not self._probe_with(paths, enable, {}) and not self._probe_with(paths, enable, PROBE):
            self._probe_halves(paths, enable)

    def _probe_halves(self, paths: list[YamlPath], enable: Mapping[YamlPath, YamlPath]) -> None:
        """Markers under ``paths`` (with maps) where together they break a render: the first
        path whose marker breaks it is found by halving the prefix that renders (that prefix's
        markers are recorded), left out, and the paths after it probed the same way (a render
        per halving, not per half of every half). A batch that broke a render is remembered
        failed by the cache, not rendered again."""
        remaining = list(paths)
        while remaining and not self._probe_with(remaining, enable, {}):
            renders, breaks = 0, len(remaining)  # a prefix this long renders / breaks
            while breaks - renders > 1:
                middle = (renders + breaks) // 2
                if self._probe_with(remaining[:middle], enable, {}):
                    renders = middle
                else:
                    breaks = middle
            remaining = remaining[breaks:]

    def _probe_absent(self) -> None:
        """Keys the templates read that the values lack, named for what fixers set under a
        mapping the values have (``makeUserJob.containerSecurityContext``): probed as they
        are, then, those that landed nowhere, with their one disabled sibling
        ``*securityContext.enabled`` switch on (the template reads the key only under it)."""
        absent = []
        for ref in self.references():
            parent = lookup(self.effective, ref[:-1]) if len(ref) > 1 else None
            if (
                isinstance(parent, Mapping)
                and ref[-1] not in parent
                and str(ref[-1]).lower().endswith(("securitycontext", "resources"))
            ):
                absent.append(ref)
        if not absent:
            return
        self._probe(absent)
        assert self._found is not None
        landed = {v for found in self._found.values() for v in found.values()}
        gated: dict[YamlPath, YamlPath] = {}
        for ref in absent:
            if ref in landed:
                continue
            parent = lookup(self.effective, ref[:-1])
            siblings = [
                (*ref[:-1], key)
                for key, value in parent.items()
                if str(key).lower().endswith("securitycontext")
                and isinstance(value, Mapping)
                and value.get("enabled") is False
            ]
            if len(siblings) == 1:
                gated[ref] = siblings[0]
        self._probe(list(gated), gated)

    def _probe_with(
        self, paths: list[YamlPath], enable: Mapping[YamlPath, YamlPath], held: Any
    ) -> bool:
        """One render with a marker key holding ``held`` under each of ``paths`` (and the
        switch each needs on), its markers recorded; False when the chart does not render
        with them."""
        if not paths:
            return True
        assert self._found is not None
        values = copy.deepcopy(self.user)
        markers: dict[str, YamlPath] = {}
        for n, path in enumerate(paths):
            marker = f"{PROBE}{n}"
            markers[marker] = path
            _set_in(values, path, {marker: copy.copy(held)})
            if path in enable:
                _set_in(values, enable[path], {"enabled": True})
        try:
            chart_dir, rendered = self._rendered(self._workload_copy(), values)
        except ChartError:
            return False
        for template in sorted(t for t, text in rendered.items() if PROBE in text):
            try:
                docs = self.cache.docs(
                    chart_dir, values, self.release, self.namespace, only=template
                )
            except ChartError:
                continue
            for doc in docs:
                where: dict[str, list[YamlPath]] = {}
                _find_markers(doc.document, (), where)
                found = self._found.setdefault(doc.ident, {})
                for marker, places in where.items():
                    values_path = markers[marker]
                    for place in places:
                        # The most specific key wins (global.x merged into x lands there too).
                        if place not in found or len(values_path) > len(found[place]):
                            found[place] = values_path
                            if values_path in enable:
                                self.switches[values_path] = enable[values_path]
        return True

    def references(self) -> list[YamlPath]:
        """Every ``.Values.a.b`` key path the chart's own templates read (static analysis)."""
        if self._refs is None:
            seen: dict[YamlPath, None] = {}
            templates = self.chart_dir / "templates"
            for path in sorted(templates.rglob("*")) if templates.is_dir() else []:
                if path.is_file() and path.suffix in (".yaml", ".yml", ".tpl"):
                    text = path.read_text(encoding="utf-8", errors="replace")
                    for ref in values_references(text):
                        seen.setdefault(ref, None)
            self._refs = list(seen)
        return self._refs

    def leaf_paths(self) -> list[tuple[str, ...]]:
        """Every leaf key path of the effective values, listed once."""
        if self._leaves is None:
            self._leaves = list(_leaf_paths(self.effective))
        return self._leaves

    def answer(self, key: tuple[Any, ...], compute: Any) -> Any:
        """Memoised per-question answers (scalar, list and confirmation probes)."""
        if key not in self._answers:
            self._answers[key] = compute()
        return self._answers[key]


@dataclass
class ValuesMap:
    """Which values key feeds which rendered path of one resource, learnt by probing."""

    deployment: Deployment
    chart_dir: Path
    cache: RenderCache
    user: dict[str, Any]
    defaults: dict[str, Any]
    doc: RenderedDoc
    probes: Probes

    @property
    def effective(self) -> dict[str, Any]:
        return self.probes.effective

    def _render_doc(self, values: Mapping[str, Any]) -> Mapping[str, Any] | None:
        ident = self.doc.ident
        for doc in self.probes.render(values, only=self.doc.template):
            if doc.ident == ident:
                return doc.document
        return None

    def render_with(self, values_path: YamlPath, value: Any) -> Mapping[str, Any] | None:
        """The resource rendered with ``values_path`` set to ``value`` (None deletes the key,
        as Helm does with a null over a default)."""
        values = copy.deepcopy(self.user)
        _set_in(values, values_path[:-1], {str(values_path[-1]): value})
        return self._render_doc(values)

    def _best(self, rendered: YamlPath) -> tuple[YamlPath, YamlPath] | None:
        """(rendered mapping, values mapping) of the deepest probed mapping holding ``rendered``."""
        return self._deepest(rendered, False) or self._deepest(rendered, True)

    def _deepest(self, rendered: YamlPath, everything: bool) -> tuple[YamlPath, YamlPath] | None:
        best: tuple[YamlPath, YamlPath] | None = None
        for where, values_path in self.probes.found(self.doc.ident, everything).items():
            n = len(where)
            fits = rendered[:n] == where and not any(isinstance(s, int) for s in rendered[n:])
            if fits and (best is None or n > len(best[0])):
                best = (where, values_path)
        return best

    def values_path(self, rendered: YamlPath) -> YamlPath | None:
        """The values key that feeds ``rendered`` (None when no key does)."""
        found: YamlPath | None = self.probes.answer(
            ("path", self.doc.ident, rendered), lambda: self._values_path(rendered)
        )
        return found

    def _values_path(self, rendered: YamlPath) -> YamlPath | None:
        current = lookup(self.doc.document, rendered)
        if current is not None and not isinstance(current, Mapping | list):
            scalar = self._scalar(rendered)
            if scalar is not None:
                return scalar
        if isinstance(current, list) or (current is None and str(rendered[-1]) in LIST_FIELDS):
            listed = self._list(rendered)
            if listed is not None:
                return listed
        best = self._best(rendered)
        if best is not None:
            where, base = best
            suffix = rendered[len(where) :]
            found = (*base, *suffix)
            if suffix and base:
                if self._confirm_batch(where, base, suffix):
                    return found
            elif self._confirmed(found, rendered):
                return found
        return self._referenced(rendered)

    def _referenced(self, rendered: YamlPath) -> YamlPath | None:
        """A key the chart's templates read for this field, whatever its spelling (a template
        reading ``readOnlyRootFileSystem``): confirmed by rendering it with a sentinel, or true.
        Every candidate is tried in one render first; one at a time only if one of them lands."""
        field_name = str(rendered[-1]).lower()
        current = lookup(self.doc.document, rendered)
        refs = [r for r in self.probes.references() if str(r[-1]).lower() == field_name]
        if isinstance(current, list) or (current is None and str(rendered[-1]) in LIST_FIELDS):
            # A list key of the values was probed with a list item already (`_list`).
            listed = set(self._list_keys(rendered))
            refs = [r for r in refs if r not in listed]
        if len(refs) > 1:
            markers = {f"{PROBE}ref{n}": ref for n, ref in enumerate(refs)}
            document = self._render_doc(self._with_each(refs, list(markers)))
            if document is not None:
                landed = lookup(document, rendered)
                if isinstance(landed, str) and landed in markers:
                    return markers[landed]
                document = self._render_doc(self._with_each(refs, [True] * len(refs)))
                if document is not None and not (
                    lookup(document, rendered) is True and current is not True
                ):
                    return None
        for ref in refs:
            for trial in (f"{PROBE}ref", True):
                document = self._render_doc(self._with_each([ref], [trial]))
                landed = None if document is None else lookup(document, rendered)
                if landed == trial and (trial is not True or current is not True):
                    return ref
        return None

    def _with_each(self, paths: Sequence[YamlPath], values: Sequence[Any]) -> dict[str, Any]:
        """The user values with each of ``paths`` set to its value."""
        out = copy.deepcopy(self.user)
        for path, value in zip(paths, values, strict=True):
            _set_in(out, path[:-1], {path[-1]: value})
        return out

    def _confirm_batch(self, where: YamlPath, base: YamlPath, suffix: YamlPath) -> bool:
        """Whether a value set at ``base + suffix`` reaches ``where + suffix``; the fields fixers
        usually set under the same mapping are confirmed in the same render."""
        ident = self.doc.ident
        answers = self.probes.confirmations

        def key(s: YamlPath) -> tuple[Any, ...]:
            return (ident, where, base, s)

        if key(suffix) in answers:
            return answers[key(suffix)]
        if ident not in self.probes.confirmed_together:
            self.probes.confirmed_together.add(ident)
            self._confirm_together()
            if key(suffix) in answers:
                return answers[key(suffix)]
        n = len(suffix)
        batch = [
            suffix,
            *(
                s
                for s in CONFIRM_LEAVES
                if s[:n] != suffix and suffix[: len(s)] != s and key(s) not in answers
            ),
        ]
        values = copy.deepcopy(self.user)
        for n, leaf in enumerate(batch):
            _set_in(values, (*base, *leaf[:-1]), {leaf[-1]: f"{PROBE}confirm{n}"})
        for switch in self.switches_for(base):
            _set_in(values, switch, {"enabled": True})
        document = self._render_doc(values)
        if document is None:
            answers[key(suffix)] = self._confirmed((*base, *suffix), (*where, *suffix))
        else:
            for n, leaf in enumerate(batch):
                answers[key(leaf)] = lookup(document, (*where, *leaf)) == f"{PROBE}confirm{n}"
        return answers[key(suffix)]

    def _confirm_together(self) -> None:
        """The fields fixers set under every securityContext or resources mapping of the
        resource confirmed in one render, each with a marker of its own (a pod with several
        containers otherwise costs a render per mapping). Only the markers that land are
        answers: one that does not may have lost to another mapping's (a template merging
        two), so its mapping's own batch asks again."""
        ident = self.doc.ident
        answers = self.probes.confirmations
        pairs = sorted(
            (where, base)
            for where, base in self.probes.found(ident).items()
            if base and _fixer_named(base)
        )
        if len(pairs) < 2:
            return  # one mapping: its own batch is the same render
        markers: dict[YamlPath, str] = {}
        checks: list[tuple[tuple[Any, ...], YamlPath, str]] = []
        for where, base in pairs:
            for leaf in CONFIRM_LEAVES:
                question = (ident, where, base, leaf)
                path = (*base, *leaf)
                if question in answers:
                    continue
                if path not in markers:
                    if any(_nested(path, other) for other in markers):
                        continue  # one value cannot be a marker and hold one
                    markers[path] = f"{PROBE}together{len(markers)}"
                checks.append((question, (*where, *leaf), markers[path]))
        values = copy.deepcopy(self.user)
        for path, marker in markers.items():
            _set_in(values, path[:-1], {path[-1]: marker})
        for _, base in pairs:
            for switch in self.switches_for(base):
                _set_in(values, switch, {"enabled": True})
        document = self._render_doc(values)
        if document is None:
            return
        for question, rendered, marker in checks:
            if lookup(document, rendered) == marker:
                answers[question] = True
                if question[3] == ("capabilities", "drop"):
                    # A map set there reaches the rendered map (the drop list fixers write).
                    answers[(*question[:3], ("capabilities",))] = True

    def _confirmed(self, values_path: YamlPath, rendered: YamlPath) -> bool:
        """Render with a marker at ``values_path``: False when the chart renders but the marker
        does not reach ``rendered`` (a template that picks or drops keys)."""
        if len(values_path) < 1 or len(rendered) < 1:
            return True
        marker = f"{PROBE}confirm"
        values = copy.deepcopy(self.user)
        _set_in(values, values_path[:-1], {values_path[-1]: marker})
        for switch in self.switches_for(values_path):
            _set_in(values, switch, {"enabled": True})
        document = self._render_doc(values)
        # A template that needs another type here cannot be probed this way: trust the map probe.
        return document is None or lookup(document, rendered) == marker

    def _list_keys(self, rendered: YamlPath) -> list[YamlPath]:
        """The list keys of the values named for the field at ``rendered`` (``volumeMounts``,
        ``extraVolumeMounts``): what `_list` probes."""
        effective = self.effective
        last = str(rendered[-1]).lower()
        return [
            path
            for path in self.probes.leaf_paths()
            if path[-1].lower().endswith(last) and isinstance(lookup(effective, path), list | None)
        ]

    def _list(self, rendered: YamlPath) -> YamlPath | None:
        """Probe list keys named for the field (``volumeMounts``, ``extraVolumeMounts``) by
        appending a marker item and seeing where it lands: a key the template appends after
        the chart's own items is found too, and an item appended to it is appended there.
        Every key gets a marker of its own in one render first (the first key, in order, whose
        marker lands is the answer); one key at a time only when that render fails."""
        paths = self._list_keys(rendered)
        if len(paths) > 1:
            document = self._render_doc(self._with_list_markers(paths))
            if document is not None:
                landed = self._landed_items(document, rendered)
                return next((path for n, path in enumerate(paths) if n in landed), None)
        for path in paths:
            document = self._render_doc(self._with_list_markers([path]))
            if 0 in self._landed_items(document, rendered):
                return path
        return None

    def _with_list_markers(self, paths: Sequence[YamlPath]) -> dict[str, Any]:
        """The user values with a marker item (``__kr_probe_list<n>``) appended to each list."""
        values = copy.deepcopy(self.user)
        for n, path in enumerate(paths):
            items = lookup(self.effective, path) or []
            _set_in(values, path[:-1], {path[-1]: [*items, {f"{PROBE}list{n}": "probe"}]})
        return values

    @staticmethod
    def _landed_items(document: Mapping[str, Any] | None, rendered: YamlPath) -> set[int]:
        """The numbers of the list markers that landed as items of the list at ``rendered``."""
        where: dict[str, list[YamlPath]] = {}
        _find_markers(document, (), where)
        prefix = f"{PROBE}list"
        return {
            int(marker[len(prefix) :])
            for marker, places in where.items()
            if marker.startswith(prefix)
            and marker[len(prefix) :].isdigit()
            and any(p[:-1] == rendered for p in places)
        }

    def _scalar(self, rendered: YamlPath) -> YamlPath | None:
        current = lookup(self.doc.document, rendered)
        if current is None or isinstance(current, Mapping | list):
            return None
        field_name = str(rendered[-1])
        stem = SCALAR_STEMS.get(field_name, "").lower()
        effective = self.effective
        paths = [
            path
            for path in self.probes.leaf_paths()
            if (path[-1].lower() == field_name.lower() or bool(stem and stem in path[-1].lower()))
            and lookup(effective, path) == current
        ]
        boolean = isinstance(current, bool)
        if len(paths) > 1:  # every candidate flipped in one render; one at a time if it lands
            flips: list[Any] = (
                [not current] * len(paths)
                if boolean
                else [f"{PROBE}scalar{n}" for n in range(len(paths))]
            )
            document = self._render_doc(self._with_each(paths, flips))
            if document is not None:
                landed = lookup(document, rendered)
                if not boolean:
                    return paths[flips.index(landed)] if landed in flips else None
                if landed != (not current):
                    return None
        if boolean:
            return self._first_flipping(paths, rendered, current)
        for path in paths:
            flipped: Any = f"{PROBE}scalar"
            document = self._render_doc(self._with_each([path], [flipped]))
            if document is not None and lookup(document, rendered) == flipped:
                return path
        return None

    def _first_flipping(
        self, paths: Sequence[YamlPath], rendered: YamlPath, current: bool
    ) -> YamlPath | None:
        """The first of ``paths`` that flips the boolean at ``rendered`` when flipped alone,
        found by halves: a half whose keys, flipped together, leave the field as it is holds
        none (a field one key flips, flips with more keys flipped too). A half that does not
        render is searched all the same."""
        flipped = not current
        if len(paths) <= 1:
            for path in paths:
                document = self._render_doc(self._with_each([path], [flipped]))
                if document is not None and lookup(document, rendered) == flipped:
                    return path
            return None
        left = paths[: len(paths) // 2]
        document = self._render_doc(self._with_each(left, [flipped] * len(left)))
        if document is None or lookup(document, rendered) == flipped:
            found = self._first_flipping(left, rendered, current)
            if found is not None:
                return found
        return self._first_flipping(paths[len(left) :], rendered, current)

    def switches_for(self, values_path: YamlPath) -> list[YamlPath]:
        return [
            switch
            for mapping, switch in self.probes.switches.items()
            if values_path[: len(mapping)] == mapping
        ]

    def switch_for_field(self, rendered: YamlPath) -> YamlPath | None:
        """An existing boolean switch (``seccompProfile.enable: false``) that makes the chart
        render the absent field: the path returned marks it, `HelmTarget.write` turns it on."""
        found: YamlPath | None = self.probes.answer(
            ("switch", self.doc.ident, rendered), lambda: self._switch_for_field(rendered)
        )
        return found

    def _switch_for_field(self, rendered: YamlPath) -> YamlPath | None:
        if lookup(self.doc.document, rendered) is not None:
            return None
        stem = str(rendered[-1]).lower()[:7]
        effective = self.effective
        for path in self.probes.leaf_paths():
            if (
                lookup(effective, path) is not False
                or path[-1].lower() not in SWITCH_NAMES
                or stem not in ".".join(path[:-1]).lower()
            ):
                continue
            values = copy.deepcopy(self.user)
            _set_in(values, path[:-1], {path[-1]: True})
            document = self._render_doc(values)
            if document is not None and lookup(document, rendered) is not None:
                return (*path[:-1], SWITCH + path[-1])
        return None


def _leaf_paths(data: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(value, Mapping):
                yield from _leaf_paths(value, (*prefix, str(key)))
            else:
                yield (*prefix, str(key))


# --------------------------------------------------------------------------- view


@dataclass(frozen=True)
class HelmContainerView:
    """A rendered container whose fields are written through values keys."""

    name: str
    init: bool
    ephemeral: bool
    base: YamlPath
    data: Mapping[str, Any]
    pod: HelmPodView

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        return lookup(self.data, field_path, default)

    def path(self, *field_path: str | int) -> YamlPath:
        return self.pod.values_path_for((*self.base, *field_path), self)


@dataclass
class HelmPodView:
    """The rendered pod spec of a chart resource; ``path`` answers in values keys."""

    rendered: ManifestPodView
    mapping: ValuesMap
    target: HelmTarget
    containers: tuple[HelmContainerView, ...] = ()

    def __post_init__(self) -> None:
        self.containers = tuple(
            HelmContainerView(c.name, c.init, c.ephemeral, c.base, c.data, self)
            for c in self.rendered.containers
        )

    @property
    def kind(self) -> str:
        return self.rendered.kind

    @property
    def name(self) -> str:
        return self.rendered.name

    @property
    def namespace(self) -> str | None:
        return self.rendered.namespace or self.mapping.deployment.namespace

    @property
    def labels(self) -> Mapping[str, str]:
        return self.rendered.labels

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.rendered.annotations

    @property
    def selector(self) -> Mapping[str, Any] | None:
        return self.rendered.selector

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        return self.rendered.get(*field_path, default=default)

    def path(self, *field_path: str | int) -> YamlPath:
        return self.values_path_for((*self.rendered.base, *field_path), None)

    def values_path_for(self, rendered: YamlPath, container: HelmContainerView | None) -> YamlPath:
        found = self._values_path_for(rendered, container)
        self.target.asked.setdefault(found, set()).add(rendered)
        return found

    def _values_path_for(self, rendered: YamlPath, container: HelmContainerView | None) -> YamlPath:
        if self.target.post_rendered(rendered):
            return (POST_RENDER, *rendered)
        found = self.mapping.values_path(rendered)
        if found is not None:
            return found
        switch = self.mapping.switch_for_field(rendered)
        if switch is not None:
            return switch
        try:
            return self.target.expose_for(self, rendered, container)
        except FieldNotExposed:
            if not self.target.deployment.flux:
                raise
            return (POST_RENDER, *rendered)

    def prerequisites(self, edits: Sequence[AnyEdit]) -> tuple[AnyEdit, ...]:
        extra: list[AnyEdit] = []
        for edit in edits:
            if isinstance(edit, CreateManifest):
                continue
            for switch in self.mapping.switches_for(edit.path):
                self.target.switched.add((*switch, "enabled"))
                candidate = Set((*switch, "enabled"), True, comment=None)
                if candidate not in extra:
                    extra.append(candidate)
        return tuple(extra)


# --------------------------------------------------------------------------- target


def _depth(data: Any, path: YamlPath) -> int:
    """How much of ``path`` a values source defines: ``len(path) + 1`` for the key itself, else
    the number of leading steps present (a non-mapping value there replaces everything below)."""
    node = data
    for depth, step in enumerate(path):
        if not isinstance(node, Mapping) or step not in node:
            return depth
        node = node[step]
        if not isinstance(node, Mapping) and depth + 1 < len(path):
            return depth + 1
    return len(path) + 1


def _refuse_stale_comments(relpath: str, text: str, doc_index: int, edits: Sequence[Edit]) -> None:
    """`ChartError` when an edit changes a value whose comment says why it is set so
    (``enabled: false  # disabled while migrating to Cilium``): the comment would stay
    behind, false, and the reason is the team's to weigh."""
    try:
        comments = comments_of(text, doc_index)
    except EditError:
        return  # the edit itself reports a values file it cannot read
    stale = next(stale_comments(edits, comments), None)
    if stale is not None:
        where = ".".join(map(str, stale[0]))
        raise ChartError(
            f"the fix would change {where} in {relpath}, whose comment ({stale[1]!r}) says why "
            "it is set this way; decide by hand"
        )


@dataclass
class HelmTarget:
    """A chart resource to fix through values (and, for in-house charts, a template)."""

    index: HelmIndex
    deployment: Deployment
    doc: RenderedDoc
    location: Location
    view: PodView = field(init=False)
    _exposures: dict[str, Exposure] = field(default_factory=dict)
    _views: dict[tuple[str, str], PodView | str] = field(default_factory=dict, repr=False)
    _switch_why: str = ""
    _switch_notes: tuple[str, ...] = ()
    """What the chart's policies a switch turned on by the last write do, for the MR (in
    place of the fixer's notes on a policy of its own, which is then never written)."""
    _inputs: dict[tuple[Any, ...], tuple[Path, dict[str, Any], str] | RemedyError] = field(
        default_factory=dict, repr=False
    )
    _new_templates: dict[str, str] = field(default_factory=dict, repr=False)
    """Templates this target adds to an in-house chart (repository path -> text)."""
    post_touches: tuple[Touch, ...] = ()
    """Fields of the resource a Flux post-renderer patch sets (a fix goes there too)."""
    asked: dict[YamlPath, set[YamlPath]] = field(default_factory=dict, repr=False)
    """values key -> the rendered fields of the resource fixers asked it for (what a fix of
    that key names; `helm_collateral` tells the rest of what the key changes)."""
    switched: set[YamlPath] = field(default_factory=set, repr=False)
    """The ``enabled`` keys of chart switches a fix of the resource turns on (named)."""
    deployed_as: str = ""
    """How the deployment names the resource when the scanner named it otherwise (it rendered
    the chart itself, with its own release name and no namespace), for the merge request."""

    def attach(self, mapping: ValuesMap, rendered: ManifestPodView) -> None:
        self.view = HelmPodView(rendered, mapping, self)

    @property
    def chart_dir(self) -> Path:
        return self.index.chart_root(self.deployment.chart)

    def post_rendered(self, rendered: YamlPath) -> bool:
        """Whether a Flux post-renderer patch sets ``rendered`` or a field above it (a values
        key would not win over it)."""
        if not self.post_touches:
            return False
        logical = named_path(self.doc.document, rendered)
        return any(logical[: len(t.path)] == t.path for t in self.post_touches)

    # ---------------------------------------------------------------- exposing template keys

    def expose_for(
        self, view: HelmPodView, rendered: YamlPath, container: HelmContainerView | None
    ) -> YamlPath:
        chart = self.deployment.chart
        pod_base = view.rendered.base
        rel = rendered[len(pod_base) :]
        field_label = ".".join(str(s) for s in rel)
        template_rel = self.doc.template.split("/", 1)[1] if "/" in self.doc.template else ""
        if chart.third_party or not template_rel.startswith("templates/"):
            why = chart.why_third_party or "the resource comes from a vendored third-party chart"
            raise FieldNotExposed(
                field_label,
                f"chart {chart.name} has no values key for it and {why}; it needs an upstream "
                "values key (or a post-renderer) to set it",
            )
        if container is not None:
            steps = rendered[len(container.base) :]
            field_name = str(steps[0])
            if field_name not in CONTAINER_EXPOSABLE or container.ephemeral:
                raise FieldNotExposed(field_label, f"chart {chart.name} has no values key for it")
            regular = [c for c in view.containers if c.init == container.init]
            position = regular.index(container)
            suffix = field_name[0].upper() + field_name[1:]
            key = (
                field_name
                if len(regular) == 1 and not container.init
                else (_camel(container.name) + suffix)
            )
            rest = steps[1:]
            exposure = Exposure(
                f"{chart.path}/{template_rel}".lstrip("/"),
                key,
                field_name,
                position,
                container.init,
            )
        else:
            field_name = str(rel[0]) if rel else ""
            if field_name not in POD_EXPOSABLE:
                raise FieldNotExposed(field_label, f"chart {chart.name} has no values key for it")
            key, rest = POD_EXPOSABLE[field_name], rel[1:]
            exposure = Exposure(f"{chart.path}/{template_rel}".lstrip("/"), key, field_name, None)
        existing = lookup(view.mapping.effective, (key,))
        scalar = exposure.field in SCALAR_FIELDS
        if existing is not None and (
            (scalar and not isinstance(existing, bool))
            or (not scalar and not isinstance(existing, Mapping | list))
        ):
            raise FieldNotExposed(
                field_label,
                f"chart {chart.name} already has a values key {key} of another shape that does "
                "not feed this field; change the template by hand",
            )
        # An existing key of the right shape (the chart's, or one this run exposed in another
        # template) is read by this template too: one key for every template that needs it.
        # Refuse early when the template's shape is not one we can edit.
        real = real_relpath(self.index.root, exposure.template)
        exposure = dataclasses.replace(exposure, template=real)  # a link is fixed at its target
        original = (self.index.root / real).read_text(encoding="utf-8")
        try:
            expose(original, exposure)
        except ValueError as exc:
            raise FieldNotExposed(field_label, str(exc)) from exc
        self._exposures[key] = exposure
        return (key, *rest)

    # ---------------------------------------------------------------- write / reread

    def _file_for(self, path: YamlPath, overlay: FileOverlay) -> tuple[str, YamlPath, int, str]:
        """(file, key prefix, document index, why) of the values source that wins for ``path``."""
        dep = self.deployment
        app = dep.app
        # The source holding the deepest part of the path wins (the later one on a tie): the
        # key itself when some file sets it, else the mapping that would hold it.
        best: tuple[int, int, str | None] = (0, -1, None)
        for order, relpath in enumerate(dep.value_files):
            if order == 0 and dep.chart.external:
                continue  # a remote chart's values.yaml is not in the repository
            text = overlay.read(relpath)
            if text is not None:
                best = max(best, (_depth(load_values_text(text, relpath), path), order, relpath))
        inline = dep.inline(overlay) if app else {}
        if app and inline:
            depth = _depth(inline, path)
            if depth and depth >= best[0]:
                if app.inline_path is None:
                    raise RepositoryError(
                        f"{app.kind} {app.name} sets {'.'.join(map(str, path))} in "
                        f"{app.read_only_why} ({app.manifest}); edit it by hand"
                    )
                return (
                    app.manifest,
                    app.inline_path,
                    app.document_index,
                    f"inline values of {app.kind} {app.name} set this key and win over files",
                )
        if app and app.unread_values:
            return self._over_unread_values(app)
        depth, _, winner = best
        # A third-party chart deployed by an Application is a vendored copy: the override goes
        # to the deployment. Without one the repository is the chart itself: its values.yaml.
        vendored = dep.chart.third_party and app is not None
        if vendored and (winner is None or winner == dep.value_files[0]):
            return self._deployment_layer(overlay)
        if depth and winner is not None:
            where = "the chart default" if winner == dep.value_files[0] else "an override"
            what = "this key" if depth > len(path) else ".".join(map(str, path[:depth]))
            why = f"{winner} sets {what} ({where}) and is the last values file that does"
            return winner, (), 0, why
        return (
            dep.value_files[0],
            (),
            0,
            (
                "no values file sets this key; the chart's values.yaml holds the default for every "
                "environment"
            ),
        )

    def _over_unread_values(self, app: HelmApp) -> tuple[str, YamlPath, int, str]:
        """The deployment merges values kube-remedy does not read (Flux ``valuesFrom``): a
        values file may be overridden by them, so only the inline values are sure to win."""
        sources = ", ".join(app.unread_values)
        if app.inline_path is None:
            raise ChartError(
                f"{app.kind} {app.name} merges values from {sources} (valuesFrom), which "
                "kube-remedy does not read, and has no inline values to override them in; "
                "edit it by hand"
            )
        return (
            app.manifest,
            app.inline_path,
            app.document_index,
            f"inline values of {app.kind} {app.name} win over the values it takes from "
            f"{sources} (valuesFrom, not read by kube-remedy) and over files",
        )

    def _deployment_layer(self, overlay: FileOverlay) -> tuple[str, YamlPath, int, str]:
        """Where a vendored chart's override goes: the deployment's last values file, else
        its inline values; never the chart's own files (the next upgrade would lose them)."""
        dep = self.deployment
        why = dep.chart.why_third_party or f"chart {dep.chart.name} is third-party"
        env = dep.value_files[1:]
        if env:
            return env[-1], (), 0, f"{env[-1]} is the deployment's own values file; {why}"
        app = dep.app
        if app is not None and app.inline_path is not None:
            return (
                app.manifest,
                app.inline_path,
                app.document_index,
                f"inline values of {app.kind} {app.name} override the chart; {why}",
            )
        if app is not None and app.inline:  # values kube-remedy reads but does not edit
            raise ChartError(
                f"{why}; {app.kind} {app.name} ({app.manifest}) takes its values from "
                f"{app.read_only_why}, which kube-remedy does not edit; set it there by hand"
            )
        raise ChartError(
            f"{why} and its deployment has no values file or values object of its own to "
            "override it in; add one (never edit the vendored chart)"
        )

    def as_written(self, result: Fixed) -> Fixed:
        """``result`` as the last write realised it: where a switch of the chart stood in for
        the new NetworkPolicy, notes on the chart's policies instead of the fixer's own."""
        if not self._switch_notes or not any(isinstance(e, CreateManifest) for e in result.edits):
            return result
        return dataclasses.replace(result, notes=self._switch_notes, values_used=())

    def network_policies(self, overlay: FileOverlay) -> list[Mapping[str, Any]]:
        """The NetworkPolicies the deployment renders with the overlay (namespace as deployed),
        and those the kustomize overlay building its HelmRelease adds."""
        out = overlay_network_policies(self.deployment.app, overlay)
        try:
            docs = self.render_all(overlay, kind="NetworkPolicy")
        except RemedyError:
            return out
        for doc in docs:
            if doc.kind == "NetworkPolicy":
                meta = {
                    "namespace": self.deployment.namespace,
                    **(doc.document.get("metadata") or {}),
                }
                out.append({**doc.document, "metadata": meta})
        return out

    def api_accounts(self, overlay: FileOverlay) -> list[tuple[str | None, str]]:
        """The ServiceAccounts the chart's own RBAC bindings grant API access, as rendered."""
        return self._neighbours(overlay).api_accounts

    def _neighbours(self, overlay: FileOverlay) -> Neighbourhood:
        """The `Neighbourhood` the deployment renders with the overlay, but its chart's tests
        (``helm test`` runs them for a moment; a policy selecting them too breaks no
        workload)."""
        found = Neighbourhood()
        try:
            docs = self.render_all(overlay)
        except RemedyError:
            return found
        for doc in docs:
            if not is_test_hook(doc):
                found.add(doc.document, self.deployment.namespace)
        return found

    def _switch_for(self, edit: CreateManifest, overlay: FileOverlay) -> Edit:
        """A chart cannot take a new manifest through values; an existing switch that renders
        one selecting this pod (``networkPolicy.enabled``, ``networkPolicies.create`` ...) can.
        Without one: a template of an in-house chart's own."""
        kind = str(edit.document.get("kind", "")) if isinstance(edit.document, Mapping) else ""
        view = self.view
        effective = view.mapping.effective if isinstance(view, HelmPodView) else {}
        stem = kind.lower()
        candidates = [
            path
            for path in (view.mapping.probes.leaf_paths() if isinstance(view, HelmPodView) else [])
            if lookup(effective, path) is False
            and path[-1].lower() in SWITCH_NAMES
            and any(stem and stem in step.lower().rstrip("s").replace("ie", "y") for step in path)
        ]
        dep = self.deployment
        chart_dir = self.index.chart_dir_for(dep.chart, overlay)

        def rendered(paths: Sequence[YamlPath]) -> list[dict[str, Any]] | None:
            """The ``kind`` documents the chart renders with ``paths`` all on (None when it
            does not render so), each in its namespace."""
            values = copy.deepcopy(dep.render_values(overlay))
            for path in paths:
                _set_in(values, path[:-1], {path[-1]: True})
            try:
                docs = self.index.deployed(dep, chart_dir, values, overlay, kind=kind).docs
            except RemedyError:
                return None
            return [
                {
                    **d.document,
                    "metadata": {"namespace": dep.namespace, **(d.document.get("metadata") or {})},
                }
                for d in docs
                if d.kind == kind
            ]

        def selecting(policies: Sequence[Mapping[str, Any]]) -> bool:
            """Whether one of ``policies`` is a NetworkPolicy selecting this pod."""
            return kind == "NetworkPolicy" and bool(
                policies_selecting(policies, view.labels, view.namespace)
            )

        together = rendered(candidates) if len(candidates) > 1 else None
        if together is not None and not selecting(together):
            candidates = []  # every switch on at once renders none: none of them does alone
        for path in candidates:
            switched = rendered([path])
            if switched is not None and selecting(switched):
                before = {_named(d) for d in rendered([]) or []}
                added = [d for d in switched if _named(d) not in before]
                described = self._check_switched_policies(added, path, overlay)
                said = "; ".join(described) or "it renders no new policy"
                self._switch_why = (
                    f"chart {dep.chart.name} already renders a NetworkPolicy for this pod when "
                    f"{'.'.join(path)} is true: the existing switch is turned on. The chart's "
                    f"policy decides the traffic, not kube-remedy's: {said}"
                )
                self._switch_notes = (
                    f"no NetworkPolicy of kube-remedy's: chart {dep.chart.name}'s own switch "
                    f"{'.'.join(path)} is turned on, and the chart's policies decide the traffic",
                    *(f"chart {dep.chart.name}'s NetworkPolicy {d}" for d in described),
                    "the policy is enforced only when the cluster's CNI supports NetworkPolicy",
                )
                comment = (
                    f"Turned on by kube-remedy for {self.doc.kind} {self.doc.name}: chart "
                    f"{dep.chart.name}'s own NetworkPolicies then apply. "
                    + "\n".join(f"{d}." for d in described)
                )
                return Set(path, True, comment)
        if (
            kind == "NetworkPolicy"
            and not dep.chart.third_party
            and "networkPolicy" not in effective
        ):
            return self._policy_template(edit, overlay)
        raise ChartError(
            f"a new manifest ({edit.name}) cannot be added through chart values and chart "
            f"{dep.chart.name} has no switch that renders one; add it to the chart's templates"
        )

    def _check_switched_policies(
        self, added: Sequence[Mapping[str, Any]], path: YamlPath, overlay: FileOverlay
    ) -> list[str]:
        """What each NetworkPolicy a chart's switch adds does, in words (also those for the
        chart's other workloads: the switch turns them on too); `ChartError` when one selects
        a whole namespace (``podSelector: {}``), selects this pod together with another
        workload's, or restricts the egress of this pod while it calls the Kubernetes API
        (the chart cannot know the API server's addresses)."""
        neighbourhood = self._neighbours(overlay)
        chart, switch = self.deployment.chart.name, ".".join(map(str, path))
        api = calls_the_api(self.view, neighbourhood.api_accounts)
        said = []
        for policy in added:
            namespace, name = _named(policy)
            found = policy.get("spec")
            spec: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            found = spec.get("podSelector")
            selector: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            labels = selector.get("matchLabels")
            labels = labels if isinstance(labels, Mapping) else {}
            expressions = selector.get("matchExpressions")
            expressions = expressions if isinstance(expressions, list) else []
            if not labels and not expressions:
                raise ChartError(
                    f"chart {chart}'s NetworkPolicy {name}, which {switch} turns on, selects "
                    f"every pod of namespace {namespace}, whatever else runs there, not only "
                    f"{self.doc.kind} {self.doc.name}'s; turn it on by hand after checking them"
                )
            others = other_pods_selected(
                labels,
                namespace,
                neighbourhood.workloads,
                self.doc.kind,
                self.doc.name,
                expressions=expressions,
            )
            mine = label_selector_matches(
                {"matchLabels": labels, "matchExpressions": expressions}, self.view.labels
            )
            if mine and others:
                raise ChartError(
                    f"chart {chart}'s NetworkPolicy {name}, which {switch} turns on, also "
                    f"selects the pods of {', '.join(others)} and would restrict their traffic "
                    "too; turn it on by hand after checking them"
                )
            types = spec.get("policyTypes") or [
                "Ingress",
                *(["Egress"] if "egress" in spec else []),
            ]
            ingress = _rules_in_words(
                spec.get("ingress"), "Ingress" in types, "ingress", spec.get("podSelector")
            )
            egress = _rules_in_words(
                spec.get("egress"), "Egress" in types, "egress", spec.get("podSelector")
            )
            if (
                mine
                and api is not None
                and "Egress" in types
                and not _allows_all(spec.get("egress"))
            ):
                raise ChartError(
                    f"chart {chart}'s NetworkPolicy {name}, which {switch} turns on, restricts "
                    f"the egress of {self.doc.kind} {self.doc.name}, whose service account "
                    f"{api} is bound to call the Kubernetes API: the policy cannot know the API "
                    "server's addresses; turn it on by hand with an egress rule for them"
                )
            selected = ([f"{self.doc.kind}/{self.doc.name}"] if mine else []) + others
            egress_rules = spec.get("egress")
            if (
                selected
                and "Egress" in types
                and not _allows_all(egress_rules)
                and not _allows_dns(egress_rules)
            ):
                raise ChartError(
                    f"chart {chart}'s NetworkPolicy {name}, which {switch} turns on, restricts "
                    f"the egress of {', '.join(selected)} without allowing DNS (port 53): "
                    f"{'it' if len(selected) == 1 else 'they'} could no longer resolve "
                    f"Service names ({egress}); turn it on by "
                    "hand with a DNS egress rule"
                )
            if mine and "Ingress" in types:
                shut_out = [
                    f"{who} on port {port}"
                    for who, port in neighbourhood.outside_callers(self.view)
                    if not _admits_non_pods(spec.get("ingress"), port, _port_names(self.view))
                ]
                if shut_out:
                    raise ChartError(
                        f"chart {chart}'s NetworkPolicy {name}, which {switch} turns on, admits "
                        f"ingress to {self.doc.kind} {self.doc.name} only from pods ({ingress}), "
                        "but callers that are not pods reach it and would be cut off: "
                        f"{'; '.join(dict.fromkeys(shut_out))}; add an ipBlock (or an "
                        "any-source rule) for them to the chart's policy values and turn it "
                        "on by hand"
                    )
            serving, labelled = self._served_by_outsiders(
                spec, namespace, neighbourhood, mine, others
            )
            if serving and "Ingress" in types:
                if labelled:
                    raise ChartError(
                        f"chart {chart}'s NetworkPolicy {name}, which {switch} turns on, admits "
                        f"ingress to {serving} only from its own pods and pods labelled "
                        f"{' or '.join(labelled)}, which no pod of the chart carries ({ingress}): "
                        "every client would need that label first; label them, then turn it "
                        "on by hand"
                    )
                raise ChartError(
                    f"chart {chart}'s NetworkPolicy {name}, which {switch} turns on, admits "
                    f"ingress to {serving} only from the pods it selects ({ingress}): clients "
                    "and ingress controllers outside the chart could no longer reach it; add "
                    "their sources to the chart's policy values and turn it on by hand"
                )
            whose = "" if mine else f" (for {', '.join(others) or 'no workload rendered'})"
            said.append(f"{name}{whose}: {ingress}; {egress}")
        return said

    def _served_by_outsiders(
        self,
        spec: Mapping[str, Any],
        namespace: str,
        neighbourhood: Neighbourhood,
        mine: bool,
        others: Sequence[str],
    ) -> tuple[str, list[str]]:
        """The workload a policy selects that serves (declares ports, or a Service forwards
        to it) while every ingress rule admits only pods the policy itself selects or pods by
        labels no pod of the chart carries (clients must be labelled first), with its ports
        (``Kind name (8080/TCP)``), and those labels; empty when there is none."""
        rules = spec.get("ingress")
        labelled: list[str] = []
        for rule in rules if isinstance(rules, list) else []:
            peers = rule.get("from") if isinstance(rule, Mapping) else None
            if not isinstance(peers, list) or not peers:
                return "", []  # from anywhere
            for peer in peers:
                if (
                    not isinstance(peer, Mapping)
                    or "namespaceSelector" in peer
                    or "ipBlock" in peer
                ):
                    return "", []
                found = peer.get("podSelector")
                selector: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
                labels = selector.get("matchLabels")
                admitted = other_pods_selected(
                    labels if isinstance(labels, Mapping) else {},
                    namespace,
                    neighbourhood.workloads,
                    self.doc.kind,
                    self.doc.name,
                    expressions=selector.get("matchExpressions") or (),
                )
                admits_mine = label_selector_matches(selector, self.view.labels)
                if not set(admitted) <= set(others) or (admits_mine and not mine):
                    return "", []  # pods of another workload are admitted
                if not (admitted or admits_mine):
                    if not isinstance(labels, Mapping) or not labels:
                        return "", []  # an expression: who it admits is not known here
                    labelled.append(",".join(f"{k}={v}" for k, v in labels.items()))
        serving: list[tuple[str, list[dict[str, Any]]]] = []
        if mine:
            mine_ports = served_ports(self.view, neighbourhood.services)
            serving.append((f"{self.doc.kind} {self.doc.name}", mine_ports))
        for pods in neighbourhood.workloads:
            if f"{pods.kind}/{pods.name}" in others:
                ports = [
                    {"protocol": protocol, "port": target}
                    for service in neighbourhood.services
                    if service.selects(dict(pods.labels), namespace)
                    for _, protocol, target in service.ports
                ]
                serving.append((f"{pods.kind} {pods.name}", ports))
        for who, ports in serving:
            if ports:
                opened = ", ".join(f"{p['port']}/{p['protocol']}" for p in ports)
                return f"{who} ({opened})", labelled
        return "", []

    def _manifest_beside_release(
        self, edit: CreateManifest, overlay: FileOverlay
    ) -> tuple[str, str]:
        """A NetworkPolicy a chart has no switch for, as a new file beside its Flux HelmRelease
        (listed in that folder's kustomization when it lists the release): in the release's
        target namespace, selecting the controller's own selector labels. (file, why)"""
        dep, app = self.deployment, self.deployment.app
        assert app is not None
        manifest = real_relpath(self.index.root, app.manifest)
        folder = PurePosixPath(manifest).parent.as_posix()
        folder = "" if folder == "." else folder
        kust = find_kustomization(self.index.root, folder, overlay)
        if not _lists(overlay, kust, PurePosixPath(manifest).name, isinstance(app, OverlayRelease)):
            raise ChartError(
                f"a new manifest ({edit.name}) cannot be added through chart values, and a file "
                f"beside HelmRelease {app.name} would not be deployed with it: the "
                f"kustomization that builds {manifest} does not list its folder's files; add it "
                "by hand"
            )
        document = copy.deepcopy(dict(edit.document))
        spec = dict(document.get("spec") or {})
        selector = lookup(self.doc.document, ("spec", "selector", "matchLabels"))
        if self.doc.kind != "Pod" and isinstance(selector, Mapping) and selector:
            # the controller's own selector: stable across upgrades (no chart version label),
            # also where a rule names the pod's own pods
            spec = reselected(spec, {"matchLabels": self._shared_labels(dict(selector), overlay)})
        document["spec"] = spec
        meta = {**dict(document.get("metadata") or {}), "namespace": dep.namespace}
        said_ns = f"in its namespace {dep.namespace}"
        if isinstance(app, OverlayRelease):
            built = app.read(overlay).release
            target_ns = lookup(built.doc, ("spec", "targetNamespace"))
            own = built.original.get("metadata") or {}
            if not target_ns and not own.get("namespace"):
                # each overlay's kustomize namespace reaches it as it reaches the release
                meta.pop("namespace")
                said_ns = "in the namespace each overlay gives the release"
            if target_ns and built.namespace and target_ns != built.namespace:
                raise ChartError(
                    f"a new manifest ({edit.name}) beside HelmRelease {app.name} would be put in "
                    f"namespace {built.namespace} by kustomize, but the release's pods run in "
                    f"{target_ns}; add it by hand"
                )
        document["metadata"] = meta
        file_name = f"{edit.name}.yaml"
        relpath = f"{folder}/{file_name}" if folder else file_name
        content = render_manifest(document, edit.comment)
        if overlay.read(relpath) not in (None, content):
            raise ChartError(f"a new manifest ({edit.name}) cannot be added: {relpath} exists")
        overlay.write(relpath, content)
        why = (
            f"chart {dep.chart.name} has no values switch that renders a NetworkPolicy for "
            f"{self.doc.kind} {self.doc.name}: a new NetworkPolicy beside HelmRelease "
            f"{app.name}, {said_ns}"
        )
        if kust is not None:  # it lists the release (`_lists`): the new file joins it
            text = overlay.read(kust) or ""
            try:
                overlay.write(kust, apply_edits(text, [AppendUnique(("resources",), file_name)]))
            except EditError as exc:
                raise ChartError(f"cannot list {file_name} in {kust}: {exc}") from None
            why += f", listed in {kust} with the release"
        return relpath, why

    def _shared_labels(self, labels: dict[str, Any], overlay: FileOverlay) -> dict[str, Any]:
        """The selector labels every overlay building the same HelmRelease renders alike (a
        file beside a base release reaches them all; a release name may differ)."""
        app = self.deployment.app
        if not isinstance(app, OverlayRelease):
            return labels
        position = (self.doc.template, self.doc.kind, self.doc.index)
        for other in self.index.apps:
            if not isinstance(other, OverlayRelease) or other.overlay_dir == app.overlay_dir:
                continue
            if (other.manifest, other.document_index) != (app.manifest, app.document_index):
                continue
            try:
                docs = self._app_docs(other, overlay)
            except RemedyError:
                continue
            same = [d for d in docs if (d.template, d.kind, d.index) == position]
            there = lookup(same[0].document, ("spec", "selector", "matchLabels")) if same else {}
            there = there if isinstance(there, Mapping) else {}
            labels = {k: v for k, v in labels.items() if there.get(k) == v}
        if not labels:
            raise ChartError(
                f"the overlays building HelmRelease {app.name} select its pods by different "
                "labels; a NetworkPolicy beside the release cannot select them all: add it by hand"
            )
        return labels

    def _policy_template(self, edit: CreateManifest, overlay: FileOverlay) -> Edit:
        """An in-house chart with no NetworkPolicy switch gets a template of its own for this
        workload, rendered when ``networkPolicy.enabled`` is true (the switch other templates
        of the run share); release-dependent names and labels read ``.Release.Name``."""
        dep = self.deployment
        template = self.doc.template.split("/", 1)[1] if "/" in self.doc.template else ""
        if not template.startswith("templates/"):
            raise ChartError(
                f"a new manifest ({edit.name}) cannot be added through chart values: "
                f"{self.doc.kind} {self.doc.name} does not come from chart {dep.chart.name}'s "
                "own templates; add it by hand"
            )
        stem = PurePosixPath(template).with_suffix("").as_posix()
        suffix = f"-{self.doc.index}" if self.doc.index else ""
        relpath = f"{dep.chart.path}/{stem}{suffix}-networkpolicy.yaml".lstrip("/")
        spec = dict(edit.document.get("spec") or {})
        selector = lookup(self.doc.document, ("spec", "selector", "matchLabels"))
        if self.doc.kind != "Pod" and isinstance(selector, Mapping) and selector:
            # The controller's own selector: stable across upgrades (no chart version label),
            # also where a rule names the pod's own pods (members talking to each other).
            spec = reselected(spec, {"matchLabels": dict(selector)})
        neighbourhood = self._neighbours(overlay)
        others = other_pods_selected(
            spec["podSelector"].get("matchLabels") or {},
            self.view.namespace,
            neighbourhood.workloads,
            self.doc.kind,
            self.doc.name,
        )
        if others:
            raise ChartError(
                f"a new manifest ({edit.name}) would select the pods of {', '.join(others)} "
                "too (they share its labels) and cut their traffic; give this workload's pods "
                "a label of their own first"
            )
        account = calls_the_api(self.view, neighbourhood.api_accounts)
        if account is not None and "Egress" in (spec.get("policyTypes") or ()):
            raise ChartError(
                f"a new manifest ({edit.name}) would cut {self.doc.kind} {self.doc.name} off "
                f"from the Kubernetes API, which its service account {account} is bound to "
                "call (the chart's RBAC bindings): the API server's addresses (an ipBlock "
                "egress rule) are not in the repository; write the policy by hand"
            )
        release, token = dep.release, "__kr_release__"
        labels = dict(spec["podSelector"].get("matchLabels") or {})
        moved, renamed = self._release_dependent(labels, overlay)
        for key in moved:
            labels[key] = token + str(labels[key])[len(release) :]
        spec["podSelector"] = {"matchLabels": labels}
        name = str(edit.document.get("metadata", {}).get("name") or edit.name)
        if renamed:  # one policy per release (two releases may share a namespace)
            name = token + (name[len(release) :] if name.startswith(release) else f"-{name}")
        body = yaml.safe_dump(
            {"metadata": {"name": name}, "spec": spec}, sort_keys=False, default_flow_style=False
        )
        comment = "".join(f"# {line}\n" for line in (edit.comment or "").splitlines())
        if any(d in text for text in (body, comment) for d in ("{{", "}}")):
            raise ChartError(
                f"a new manifest ({edit.name}) cannot be written as a template: its fields "
                "contain template delimiters; add it by hand"
            )
        body = body.replace(token, "{{ .Release.Name }}")
        text = (
            "{{- if and .Values.networkPolicy .Values.networkPolicy.enabled }}\n"
            f"{comment}"
            "apiVersion: networking.k8s.io/v1\n"
            "kind: NetworkPolicy\n"
            f"{body}"
            "{{- end }}\n"
        )
        if overlay.read(relpath) not in (None, text):
            raise ChartError(
                f"a new manifest ({edit.name}) cannot be added: {relpath} already exists"
            )
        self._new_templates[relpath] = text
        self._switch_why = (
            f"chart {dep.chart.name} lives in this repository and had no NetworkPolicy for "
            f"this pod: the new template {relpath} renders one when networkPolicy.enabled is true"
        )
        return Set(("networkPolicy", "enabled"), True, edit.comment)

    def _release_dependent(
        self, labels: Mapping[str, Any], overlay: FileOverlay
    ) -> tuple[list[str], bool]:
        """The selector labels whose value follows the release name, and whether the resource
        name does: what changes when the same document is rendered under another release."""
        dep = self.deployment
        other = "krprobe" if dep.release != "krprobe" else "krprobe2"
        try:
            docs = self.index.cache.docs(
                self.index.chart_dir_for(dep.chart, overlay),
                dep.render_values(overlay),
                other,
                dep.namespace,
                only=self.doc.template,
            )
        except RemedyError:
            return [], False
        same = [d for d in docs if (d.kind, d.index) == (self.doc.kind, self.doc.index)]
        if not same:
            return [], False
        field_path = ("metadata", "labels") if self.doc.kind == "Pod" else ("spec", "selector")
        there = lookup(same[0].document, field_path)
        if self.doc.kind != "Pod" and isinstance(there, Mapping):
            there = there.get("matchLabels")
        there = there if isinstance(there, Mapping) else {}

        def follows(here: str, probed: Any) -> bool:
            return (here == dep.release or here.startswith(f"{dep.release}-")) and str(
                probed
            ) == other + here[len(dep.release) :]

        moved = [k for k, v in labels.items() if follows(str(v), there.get(k))]
        return moved, same[0].name != self.doc.name

    def _remove_as_set(self, edit: Remove) -> Edit:
        """A values key is set, never deleted, when deleting it changes what the template
        renders: a boolean a template prints renders null once gone; a list or map whose
        deletion leaves a null field (``add:`` with nothing under it) is set empty instead,
        checked by rendering both."""
        view = self.view
        if not isinstance(view, HelmPodView) or not edit.path or isinstance(edit.path[-1], int):
            return edit
        current = lookup(view.mapping.effective, edit.path)
        if isinstance(current, bool):
            return Set(edit.path, False, edit.comment)
        if not isinstance(current, list | dict):
            return edit
        empty: Any = type(current)()
        gone, emptied = (view.mapping.render_with(edit.path, v) for v in (None, empty))
        if gone is not None and emptied is not None and _nulls(emptied) < _nulls(gone):
            return Set(edit.path, empty, edit.comment)
        return edit

    def environments(self, relpath: str) -> list[str]:
        """The deployments (environments) a change to ``relpath`` affects."""
        chart = self.deployment.chart
        apps = [a for a in self.index.apps if a.chart == chart.path]
        # overlay releases are listed by the renders that change (`write`)
        apps = [a for a in apps if not isinstance(a, OverlayRelease)]
        if relpath == f"{chart.path}/values.yaml".lstrip("/"):
            hit = apps
        else:
            hit = [a for a in apps if relpath in a.value_files or relpath == a.manifest]
        return [f"{a.name} ({a.namespace or 'default'})" for a in hit]

    def write(self, edits: Sequence[AnyEdit], overlay: FileOverlay) -> None:
        """Apply values edits to the winning values files (and expose template keys). A
        release kustomize overlays build is written where its value comes from; when that
        shared place makes another overlay worse, into a patch of the finding's overlay."""
        app = self.deployment.app
        if not isinstance(app, OverlayRelease):
            self._write(edits, overlay)
            return
        siblings = [a for a in self.index.apps if a.chart == self.deployment.chart.path]
        worse: str | None = None
        for own_patch in (False, True):
            trial = overlay.fork()
            mode = dataclasses.replace(app, own_patch=own_patch)
            self.deployment = dataclasses.replace(self.deployment, app=mode)
            try:
                self._write(edits, trial)
            finally:
                self.deployment = dataclasses.replace(self.deployment, app=app)
            changed, worse = changed_overlays(
                siblings, trial, self._render_app, regressions.new_failures
            )
            if worse is None:
                break
        if worse is not None:
            raise ChartError(worse)
        overlay.adopt(trial)
        listed = ", ".join(changed) or "none"
        why = f"{self.location.why}; overlays whose rendered chart changes: {listed}"
        added = [c.path for c in trial.changes() if c.is_new]
        if added:  # a file beside the release reaches every overlay that builds it
            building = sorted(
                {
                    a.where
                    for a in siblings
                    if isinstance(a, OverlayRelease)
                    and (a.manifest, a.document_index) == (app.manifest, app.document_index)
                }
            )
            why += f"; overlays that get {', '.join(added)}: {', '.join(building)}"
        self.location = dataclasses.replace(self.location, why=why)

    def _render_app(self, app: HelmApp, overlay: FileOverlay) -> list[dict[str, Any]]:
        """What ``app`` (another deployment of this chart) renders with the overlay."""
        return [dict(d.document) for d in self._app_docs(app, overlay)]

    def _app_docs(self, app: HelmApp, overlay: FileOverlay) -> list[RenderedDoc]:
        dep = Deployment(
            self.deployment.chart,
            app.release,
            app.namespace or self.deployment.namespace,
            (self.deployment.value_files[0], *app.value_files),
            app,
        )
        chart_dir = self.index.chart_dir_for(dep.chart, overlay)
        return self.index.deployed(dep, chart_dir, dep.render_values(overlay), overlay).docs

    def _release_place(
        self, path: YamlPath, overlay: FileOverlay
    ) -> tuple[str, YamlPath, int, str] | None:
        """Where a release kustomize overlays build takes the fix of ``path`` (file, path in
        it, document, why); None when a values file of the chart holds more of ``path``."""
        dep, app = self.deployment, self.deployment.app
        if not isinstance(app, OverlayRelease):
            return None
        best: tuple[int, int, str | None] = (0, -1, None)
        for order, relpath in enumerate(dep.value_files):
            text = overlay.read(relpath)
            if text is not None:
                best = max(best, (_depth(load_values_text(text, relpath), path), order, relpath))
        vendored = dep.chart.third_party and best[2] in (None, dep.value_files[0])
        return app.place(path, overlay, best[0], vendored, _depth)

    def _write(self, edits: Sequence[AnyEdit], overlay: FileOverlay) -> None:
        # What a write adds besides values (a policy template, a switch turned on) is this
        # write's own: the target serves every change set of its resource.
        self._new_templates = {}
        self._switch_why = ""
        self._switch_notes = ()
        try:
            before: dict[tuple[Any, ...], RenderedDoc] | None = pod_specs(self.render_all(overlay))
        except RemedyError:
            before = None  # a chart that does not render now: verification says so
        groups: dict[tuple[str, int], list[Edit]] = {}
        post: list[Edit] = []
        whys: dict[str, str] = {}
        linked: dict[str, str] = {}
        values_edits: list[Edit] = []
        for edit in edits:
            if not isinstance(edit, CreateManifest):
                values_edits.append(edit)
                continue
            try:
                values_edits.append(self._switch_for(edit, overlay))
            except ChartError:
                if not (self.deployment.flux and edit.document.get("kind") == "NetworkPolicy"):
                    raise
                relpath, why = self._manifest_beside_release(edit, overlay)
                whys[relpath] = why
        for edit in values_edits:
            if isinstance(edit, Remove):
                edit = self._remove_as_set(edit)
            switch = next((str(s) for s in edit.path if str(s).startswith(SWITCH)), None)
            if switch is not None:
                at = [str(s) for s in edit.path].index(switch)
                switch_path = (*edit.path[:at], switch[len(SWITCH) :])
                edit = Set(switch_path, True, edit.comment)
                self._switch_why = (
                    f"chart {self.deployment.chart.name} renders the field when its existing "
                    f"switch {'.'.join(map(str, switch_path))} is on: it is turned on"
                )
            elif isinstance(edit, Set) and edit.value is True and edit.path in self.switched:
                self._switch_why = (
                    f"chart {self.deployment.chart.name} renders these keys only when its "
                    f"existing switch {'.'.join(map(str, edit.path))} is on: it is turned on"
                )
            if edit.path and edit.path[0] == POST_RENDER:
                post.append(edit)
                continue
            self._group(edit, overlay, groups, whys, linked)
        originals = self._write_groups(groups, overlay, {})
        if post:
            relpath, why = self._write_post_render(post, overlay)
            whys[relpath] = f"{whys[relpath]}; {why}" if relpath in whys else why
        for relpath, text in self._new_templates.items():
            if overlay.read(relpath) != text:
                overlay.write(relpath, text)
            whys[relpath] = f"new template: the chart had no NetworkPolicy for {self.doc.kind}"
        used = {e.path[0] for e in edits if not isinstance(e, CreateManifest) and e.path}
        for key, exposure in self._exposures.items():
            if key not in used:
                continue
            text = overlay.read(exposure.template) or ""
            if f".Values.{key} " not in text:
                try:
                    overlay.write(exposure.template, expose(text, exposure))
                except ValueError as exc:
                    raise RepositoryError(f"cannot expose .Values.{key}: {exc}") from exc
            whys[exposure.template] = (
                f"chart {self.deployment.chart.name} lives in this repository and had no values "
                f"key for {exposure.field}; the template now reads .Values.{key}"
            )
        # Once everything is written: the render it takes is the one `_collateral` compares.
        kept = self._kept_beside(values_edits, before, overlay)
        if kept:
            for edit in kept:
                self._group(edit, overlay, groups, whys, linked)
            self._write_groups(groups, overlay, originals)
            said = ", ".join(".".join(map(str, e.path)) for e in kept)
            first_file = next(iter(whys))
            whys[first_file] += (
                f"; kept what the chart rendered there before ({said}): it renders its own "
                "defaults for that mapping only while the values key is empty"
            )
        if self._switch_why:
            for relpath in whys:
                whys[relpath] += f"; {self._switch_why}"
        if self.deployed_as and whys:
            first_file = next(iter(whys))
            whys[first_file] += f"; {self.deployed_as}"
        if before is not None and whys:
            turned = [
                ".".join(map(str, e.path))
                for e in values_edits
                if isinstance(e, Set) and e.value is True and e.path in self.switched
            ]
            also = self._collateral(edits, before, bool(post), overlay, turned)
            if also:
                first_file = next(iter(whys))
                whys[first_file] += f"; {also}"
        external, app = self.deployment.chart.external, self.deployment.app
        if external:  # the MR names the chart version rendered and where it came from
            said = external.describe(app.remote.version if app and app.remote else "")
            general = self.deployment.chart.why_third_party
            for relpath, why in whys.items():
                whys[relpath] = why.replace(general, said) if general in why else f"{why}; {said}"
        for relpath in list(whys):
            envs = self.environments(linked.get(relpath, relpath))
            if envs:
                whys[relpath] += "; environments changed: " + ", ".join(envs)
        first = next(iter(whys), self.location.path)
        kind: Literal["helm-template", "helm-values", "helm-post-renderer"] = (
            "helm-template"
            if self._new_templates or any(k in used for k in self._exposures)
            else "helm-post-renderer"
            if post and not groups
            else "helm-values"
        )
        self.location = Location(
            kind,
            first,
            0,
            self.deployment.chart.path,
            "; ".join(f"{p}: {w}" for p, w in whys.items()) or self.location.why,
            chart_source=self.location.chart_source,
        )

    def _group(
        self,
        edit: Edit,
        overlay: FileOverlay,
        groups: dict[tuple[str, int], list[Edit]],
        whys: dict[str, str],
        linked: dict[str, str],
    ) -> None:
        """Place a values edit in the file and document it lands in (``groups``), with why."""
        placed = self._release_place(edit.path, overlay)
        if placed is None:
            link, prefix, doc_index, why = self._file_for(edit.path, overlay)
            where = (*prefix, *edit.path)
        else:
            link, where, doc_index, why = placed
        relpath = real_relpath(self.index.root, link)  # a link is fixed at its target
        if relpath != link:
            why, linked[relpath] = f"{why} (through the symlink {link})", link
        if isinstance(edit, AppendUnique):
            edit = self._append_in(edit, overlay.read(relpath), where, doc_index, overlay)
        moved = dataclasses.replace(edit, path=where)
        groups.setdefault((relpath, doc_index), []).append(moved)
        whys.setdefault(relpath, why)

    def _write_groups(
        self,
        groups: Mapping[tuple[str, int], list[Edit]],
        overlay: FileOverlay,
        originals: Mapping[str, str],
    ) -> dict[str, str]:
        """Write each group's edits into its values file (from ``originals``' text where it
        has the file: a second write starts again from the first's); the texts written on."""
        texts: dict[str, str] = {}
        for (relpath, doc_index), file_edits in groups.items():
            text = originals.get(relpath) if relpath in originals else overlay.read(relpath)
            if relpath in texts:
                text = overlay.read(relpath)  # a second document of the same file
            if text is None:
                raise RepositoryError(f"values file {relpath} does not exist")
            texts.setdefault(relpath, text)
            _refuse_stale_comments(relpath, text, doc_index, file_edits)
            try:
                overlay.write(relpath, apply_values_edits(text, file_edits, doc_index))
            except EditError as exc:
                raise RepositoryError(f"cannot edit {relpath}: {exc}") from exc
        return texts

    def _kept_beside(
        self,
        edits: Sequence[Edit],
        before: Mapping[tuple[Any, ...], RenderedDoc] | None,
        overlay: FileOverlay,
    ) -> list[Set]:
        """Values edits that keep what this resource rendered beside a written key and lost
        with the write: a template that renders its own defaults for a mapping only while the
        values key feeding it is empty (``{{ if .Values.x }}{{ toYaml .Values.x }}{{ else }}
        defaults{{ end }}``) renders one key alone once a fix writes it; each key the mapping
        had is written with it, as rendered before."""
        old = before.get(self.doc.ident) if before is not None else None
        if old is None:
            return []
        try:
            new = pod_specs(self.render_all(overlay)).get(self.doc.ident)
        except RemedyError:
            return []  # verification re-renders and says why
        if new is None:
            return []
        written = [e.path for e in edits if isinstance(e, Set | Remove)]
        kept: dict[YamlPath, Set] = {}
        for edit in edits:
            if not isinstance(edit, Set) or not edit.path or edit.path[0] == POST_RENDER:
                continue
            for asked, fields in self.asked.items():
                if edit.path[: len(asked)] != asked:
                    continue
                for rendered in fields:
                    # The deepest mapping both paths end in the same keys below.
                    if not asked or not rendered or asked[-1] != rendered[-1]:
                        continue
                    key, mapping = asked[:-1], rendered[:-1]
                    had, has = lookup(old.document, mapping), lookup(new.document, mapping)
                    if not key or not isinstance(had, Mapping):
                        continue
                    has = has if isinstance(has, Mapping) else {}
                    for name, value in had.items():
                        path = (*key, str(name))
                        if name in has or any(
                            w[: len(path)] == path or path[: len(w)] == w for w in written
                        ):
                            continue
                        kept.setdefault(path, Set(path, copy.deepcopy(value)))
        return list(kept.values())

    def _collateral(
        self,
        edits: Sequence[AnyEdit],
        before: dict[tuple[Any, ...], RenderedDoc],
        post: bool,
        overlay: FileOverlay,
        turned: Sequence[str] = (),
    ) -> str:
        """What the written edits change in the render besides the fields their fixes named
        ('' when nothing); `ChartError` when that is a risk the fixes do not carry, or a
        workload a post-renderer patch of this resource does not reach."""
        try:
            after = pod_specs(self.render_all(overlay))
        except RemedyError:
            return ""  # verification re-renders and says why
        # A fixer writes at the key it asked for or below it (``capabilities`` + ``drop``).
        named = [
            rendered
            for edit in edits
            if not isinstance(edit, CreateManifest)
            for asked, fields in self.asked.items()
            if edit.path[: len(asked)] == asked
            for rendered in fields
        ]
        own, other = collateral(changes(before, after), self.doc.ident, named)
        if not other:
            return ""
        problem = refused(own, other, turned)
        if problem is None and post:
            elsewhere = [c for c in other if c.ident != self.doc.ident]
            if elsewhere:
                problem = (
                    f"the values edit also changes {described(elsewhere)}, which the "
                    f"post-renderer patch of {self.doc.kind} {self.doc.name} does not reach"
                )
        if problem is not None:
            raise ChartError(problem)
        return f"the same values also change {described(other)}"

    def _append_in(
        self,
        edit: AppendUnique,
        text: str | None,
        where: YamlPath,
        doc_index: int,
        overlay: FileOverlay,
    ) -> Edit:
        """``edit`` for a values file that may not hold the list: Helm replaces a list a later
        file sets, so a file without it gets the whole list as it is merged so far, with the
        item appended (the items of the chart and of earlier files stay)."""
        try:
            held = lookup(load_documents(text or "")[doc_index], where)
        except (EditError, IndexError, yaml.YAMLError):
            return edit
        if isinstance(held, list):
            return edit
        merged = deep_merge(
            self.index.defaults(self.deployment.chart, overlay),
            self.deployment.render_values(overlay),
            drop_null=True,
        )
        items = lookup(merged, edit.path)
        if not isinstance(items, list) or not items:
            return edit
        if edit.key is not None and isinstance(edit.value, Mapping):
            present = any(
                isinstance(i, Mapping) and i.get(edit.key) == edit.value.get(edit.key)
                for i in items
            )
        else:
            present = edit.value in items
        return Set(edit.path, items if present else [*items, edit.value], edit.comment)

    def _write_post_render(self, edits: Sequence[Edit], overlay: FileOverlay) -> tuple[str, str]:
        """Write fields no values key feeds as a strategic-merge patch of the resource in its
        Flux HelmRelease's post-renderers: (file, why)."""
        dep, app = self.deployment, self.deployment.app
        assert app is not None
        current, touches = self._deployed_doc(overlay)
        if self._named_anew():
            raise ChartError(
                f"{self.doc.kind} {self.doc.name} is named anew by every render of chart "
                f"{dep.chart.name} (a random suffix): a post-renderer patch cannot target it "
                "by name"
            )
        # one entry per field: the patch sets each once, with what every edit made of it
        fields: dict[tuple[str, ...], Any] = {}
        for edit in edits:
            physical = edit.path[1:]
            said = ".".join(map(str, physical))
            logical = named_path(current, physical)
            if any(
                isinstance(step, int) and not logical[n].startswith("[")
                for n, step in enumerate(physical)
            ):
                raise ChartError(
                    f"{said}: a strategic-merge patch cannot name an item of a list without a "
                    "merge key; change it by hand (a Flux post-renderer JSON6902 patch)"
                )
            if isinstance(edit, Remove) and not logical:
                raise ChartError(f"{said} cannot be removed by a post-renderer patch")
            if isinstance(edit, Remove) and logical[-1].startswith("["):
                fields[(*logical, "$patch")] = "delete"  # an item of a merge-keyed list
                continue
            if isinstance(edit, AppendUnique):
                key = MERGE_KEYS.get(str(physical[-1])) if physical else None
                item = edit.value
                if key is not None and isinstance(item, Mapping) and key in item:
                    step = f"[{key}={item[key]}]"
                    fields.update(
                        ((*logical, step, str(k)), v) for k, v in item.items() if k != key
                    )
                    continue
                # A strategic merge replaces a list without a merge key (capabilities.add):
                # the patch carries the whole list, what an earlier edit of this patch made
                # of it, else what the resource holds, with the item appended.
                listed = _pending(fields, logical, lookup(current, physical))
                items = list(listed) if isinstance(listed, list) else []
                fields[logical] = items if item in items else [*items, item]
                continue
            # a null in a strategic-merge patch deletes the field
            fields[logical] = None if isinstance(edit, Remove) else edit.value
        relpath, at, doc_index, where = self._post_render_place(overlay)
        chart = dep.chart.name
        comment = f"kube-remedy: chart {chart} has no values key for these fields"
        new: list[tuple[tuple[str, ...], Any]] = []
        try:
            for logical, value in fields.items():
                # the patch that sets the field already would win over a new one: edit it
                touch = next(
                    (t for t in reversed(touches) if logical[: len(t.path)] == t.path), None
                )
                text = overlay.read(relpath)
                if text is None:
                    raise RepositoryError(f"{relpath} does not exist")
                if touch is None:
                    new.append((logical, value))
                    continue
                rest = self._rest_in_patch(text, doc_index, at, touch, logical)
                overlay.write(relpath, write_in_patch(text, doc_index, at, touch, rest, value))
            if new:
                text = overlay.read(relpath) or ""
                overlay.write(relpath, write_patch(text, doc_index, at, current, new, comment))
        except EditError as exc:
            raise ChartError(f"cannot write the post-renderer patch in {relpath}: {exc}") from exc
        said = f"{current.get('kind')} {(current.get('metadata') or {}).get('name')}"
        parts = []
        base = len(self.view.rendered.base) if isinstance(self.view, HelmPodView) else 0

        def label(logical: tuple[str, ...]) -> str:
            text = ".".join(logical[base:])
            return re.sub(r"\.\[[^=\]]+=([^\]]*)\]", r"[\1]", text)

        if new:
            listed = ", ".join(label(f) for f, _ in new)
            parts.append(
                f"a Flux post-renderer patch of {said} in HelmRelease {app.name} sets {listed}, "
                f"because chart {chart} has no values key for {'them' if len(new) > 1 else 'it'}"
            )
        routed = [label(f) for f, v in fields.items() if (f, v) not in new]
        if routed:
            parts.append(
                f"HelmRelease {app.name}'s post-renderer patch that sets {', '.join(routed)} on "
                f"{said} is changed (it wins over any values key)"
            )
        return relpath, f"{'; '.join(parts)}; {where}"

    def _post_render_place(self, overlay: FileOverlay) -> tuple[str, YamlPath, int, str]:
        """(file, path of its post-renderers list, document, why) for a post-renderer patch."""
        app = self.deployment.app
        assert app is not None
        if isinstance(app, OverlayRelease):
            relpath, at, document, why = app.post_render_place(overlay)
        else:
            relpath, at, document = app.manifest, POST_RENDERERS, app.document_index
            why = f"{app.manifest} deploys the chart"
        real = real_relpath(self.index.root, relpath)  # a link is fixed at its target
        return real, at, document, why if real == relpath else f"{why} (through the link {relpath})"

    def _deployed_doc(self, overlay: FileOverlay) -> tuple[dict[str, Any], list[Touch]]:
        """The resource as the deployment deploys it with the overlay's edits, and the fields
        its post-renderer patches set."""
        chart_dir, user, _ = self.render_inputs(overlay)
        deployed = self.index.deployed(
            self.deployment, chart_dir, user, overlay, only=self.doc.template
        )
        for doc in deployed.docs:
            if doc.ident == self.doc.ident:
                return dict(doc.document), deployed.touches.get(doc.ident, [])
        raise ChartError(f"{self.doc.kind} {self.doc.name} is no longer rendered")

    def _named_anew(self) -> bool:
        """Whether the resource's template draws a random name (``randAlphaNum``): a second
        render, outside the cache, names it otherwise (asked once per document)."""
        dep = self.deployment
        template = self.doc.template.split("/", 1)[-1]
        key = (str(self.chart_dir), self.doc.template, self.doc.kind, self.doc.index, dep.release)
        known = self.index.named_anew.get(key)
        if known is not None:
            return known
        source = _read_text(self.chart_dir / template)
        found = False
        if re.search(r"\brand(AlphaNum|Alpha|Numeric|Ascii)\b", source):
            user = dep.render_values(self.index.pristine(self.index.root))
            again = self.index.renderer.render(self.chart_dir, user, dep.release, dep.namespace)
            docs = parse_rendered(again, only=self.doc.template)
            same = [d for d in docs if (d.kind, d.index) == (self.doc.kind, self.doc.index)]
            found = not same or same[0].name != self.doc.name
        self.index.named_anew[key] = found
        return found

    @staticmethod
    def _rest_in_patch(
        text: str, document: int, at: YamlPath, touch: Touch, logical: tuple[str, ...]
    ) -> YamlPath:
        """Where ``logical`` lies below the value ``touch``'s patch writes."""
        source = touch.source
        key = (*at, *source.key[len(POST_RENDERERS) :])
        holder = load_documents(text)[document]
        patch = lookup(holder, key)
        if isinstance(patch, str):
            patch = load_documents(patch)[source.document]
        below = lookup(patch, touch.where) if touch.where is not None else None
        rest = physical_path(below, logical[len(touch.path) :])
        if rest is None:
            raise ChartError(
                f"cannot trace {'.'.join(logical)} inside the post-renderer patch "
                f"{'.'.join(map(str, key))}; change it by hand"
            )
        return rest

    def render_inputs(self, overlay: FileOverlay) -> tuple[Path, dict[str, Any], str]:
        """(chart directory, values, values digest) the deployment renders with the overlay's
        edits; worked out once per distinct set of edits (a batch's verifications, the
        change set's NetworkPolicies and re-reads all ask). Raises `RemedyError`."""
        key = (overlay.root, overlay.changes())
        found = self._inputs.get(key)
        if found is None:
            try:
                chart_dir = self.index.chart_dir_for(self.deployment.chart, overlay)
                user = self.deployment.render_values(overlay)
                found = (chart_dir, user, values_key(user))
            except RemedyError as exc:
                found = exc
            self._inputs[key] = found
        if isinstance(found, RemedyError):
            raise found
        return found

    def render_all(self, overlay: FileOverlay, kind: str | None = None) -> list[RenderedDoc]:
        """Every document the deployment renders with the overlay's values and templates
        (``kind``: only templates naming it are parsed)."""
        dep = self.deployment
        chart_dir, user, _ = self.render_inputs(overlay)
        return self.index.deployed(dep, chart_dir, user, overlay, kind=kind).docs

    def reread(self, overlay: FileOverlay) -> PodView | str:
        """Re-render the chart with the overlay's values and templates: the same resource's
        values-backed view (fixers re-plan on it; its paths are values keys again). One view
        per distinct overlay: verifying every finding of a batch renders once."""
        try:
            chart_dir, user, digest = self.render_inputs(overlay)
            renderers = self.deployment.post_renderers(overlay)
        except RemedyError as exc:
            return f"the chart no longer renders with the fix: {exc}"
        key = (str(chart_dir), digest + (values_key({"r": renderers}) if renderers else ""))
        if key not in self._views:
            self._views[key] = self._view(overlay, chart_dir, user)
        return self._views[key]

    def _view(self, overlay: FileOverlay, chart_dir: Path, user: dict[str, Any]) -> PodView | str:
        dep = self.deployment
        try:
            docs = self.index.deployed(dep, chart_dir, user, overlay, only=self.doc.template).docs
            defaults = self.index.defaults(dep.chart, overlay)
        except RemedyError as exc:
            return f"the chart no longer renders with the fix: {exc}"
        for doc in docs:
            if doc.ident == self.doc.ident:
                rendered = ManifestPodView.from_document(doc.document)
                if rendered is not None:
                    probes = self.index.probes(dep, chart_dir, user, defaults)
                    mapping = ValuesMap(
                        dep, chart_dir, self.index.cache, user, defaults, doc, probes
                    )
                    return HelmPodView(rendered, mapping, self)
        return f"{self.doc.kind} {self.doc.name} is no longer rendered by {dep.chart.name}"


def _pending(fields: Mapping[tuple[str, ...], Any], logical: tuple[str, ...], held: Any) -> Any:
    """What a strategic-merge patch with ``fields`` leaves at ``logical``: the value a field
    sets at it or at a mapping above it (mappings merge), else ``held``, the resource's."""
    for path in reversed(list(fields)):
        if logical[: len(path)] != path:
            continue
        node = fields[path]
        for step in logical[len(path) :]:
            if node is None:  # a null deletes the field and everything below it
                return None
            if step.startswith("[") or not isinstance(node, Mapping) or step not in node:
                return held
            node = node[step]
        return node
    return held


def _camel(name: str) -> str:
    parts = [p for p in name.replace("_", "-").split("-") if p]
    return parts[0].lower() + "".join(p.capitalize() for p in parts[1:]) if parts else "container"


# --------------------------------------------------------------------------- locate


def _deployments(finding: Finding, index: HelmIndex) -> list[Deployment]:
    chart_hint = finding.source.chart_path
    charts = list(index.charts.values())
    if not chart_hint and finding.source.path:
        # A scanner that names a chart's template or values file points at its chart.
        source = finding.source.path.strip("/")
        inside = [c for c in charts if c.path and source.startswith(f"{c.path}/")]
        chart_hint = max(inside, key=lambda c: len(c.path)).path if inside else None
    hint = _norm_hint(chart_hint)
    if hint:
        by_path = [c for c in charts if c.path == hint or hint.startswith(f"{c.path}/")]
        # A scanner's chart path is a hint: one that names no chart here never blocks matching
        # by chart, kind and name (`trivy config .`, Checkov's `/../x.yaml`).
        charts = by_path or [c for c in charts if c.name == Path(hint).name] or charts
    ns = finding.resource.namespace
    source = finding.source.path or ""
    out: list[Deployment] = []
    for chart in charts:
        base_values = f"{chart.path}/values.yaml".lstrip("/")
        apps = [a for a in index.apps if a.chart == chart.path]
        # The deployment the scanned path names first (one release built by two overlays
        # renders the same resource twice), then those whose namespace matches the finding.
        apps.sort(key=lambda a: (-_named_by(source, a), ns is not None and a.namespace != ns))
        for app in apps:
            out.append(
                Deployment(
                    chart,
                    app.release,
                    app.namespace or ns or "default",
                    (base_values, *app.value_files),
                    app,
                )
            )
        if not apps:
            guesses = _release_guesses(finding.resource.name, chart.name)
            known = index.guessed_release.get(chart.path)
            if known in guesses:
                guesses.insert(0, guesses.pop(guesses.index(known)))
            for release in guesses:
                out.append(Deployment(chart, release, ns or "default", (base_values,)))
    return out


def _named_by(source: str, app: HelmApp) -> int:
    """How specifically the scanned path ``source`` names ``app`` (0: not at all): its name,
    or the kustomize overlay folder that builds it, as a run of path segments."""
    if not source:
        return 0
    parts = [p for p in source.replace("\\", "/").split("/") if p]
    score = len(app.name) if app.name and app.name in source else 0
    folder = getattr(app, "overlay_dir", "")
    if folder:
        wanted = folder.split("/")
        runs = (parts[i : i + len(wanted)] for i in range(len(parts) - len(wanted) + 1))
        if any(run == wanted for run in runs):
            score = max(score, len(folder))
    return score


def _norm_hint(hint: str | None) -> str:
    """A scanner's chart path as a repository-relative path ('' when it says nothing usable)."""
    if not hint:
        return ""
    parts = [p for p in PurePosixPath(hint.replace("\\", "/")).parts if p not in ("/", ".", "..")]
    return "/".join(parts)


def _release_guesses(resource_name: str, chart_name: str) -> list[str]:
    parts = resource_name.split("-")
    # Scanners that render a chart themselves name the release after the chart: try it first.
    guesses = [chart_name, resource_name]
    guesses += ["-".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    guesses.append("release")
    return list(dict.fromkeys(g for g in guesses if g))


def locate_helm(finding: Finding, repo_root: Path, index: HelmIndex) -> HelmTarget | str:
    """The Helm target of ``finding``, or a one-line reason why none can be found."""
    overlay = index.pristine(repo_root)
    errors: list[str] = []
    near: list[str] = []
    cache = index.cache
    for dep in _deployments(finding, index):
        chart_dir = index.chart_root(dep.chart)
        if dep.chart.refused:
            errors.append(f"chart {dep.chart.path or '.'} is not rendered: {dep.chart.refused}")
            continue
        try:
            user = dep.render_values(overlay)
            deployed = index.deployed(dep, chart_dir, user, overlay, kind=finding.resource.kind)
            docs = deployed.docs
        except RemedyError as exc:
            errors.append(str(exc))
            continue
        # The namespace and release are the deployment's: a scanner that rendered the chart
        # itself (its own release name, no namespace) still names the same template's resource.
        for doc in _matching(finding, dep, index, docs, chart_dir):
            miss = _near_miss(finding, dep, doc)
            if miss is not None:
                near.append(miss)
                continue
            rendered = ManifestPodView.from_document(doc.document)
            if rendered is None:
                return f"{finding.resource} rendered by chart {dep.chart.name} has no pod spec"
            defaults = index.defaults(dep.chart, overlay)
            probes = index.probes(dep, chart_dir, user, defaults)
            mapping = ValuesMap(dep, chart_dir, cache, user, defaults, doc, probes)
            external = dep.chart.external
            chart_said = external.pinned_label if external else dep.chart.path or "."
            why = f"rendered by chart {chart_said} ({doc.template})" + (
                f" as deployed by {dep.app.kind} {dep.app.name}" if dep.app else ""
            )
            # Until a fix is written the location names the resource's template and document,
            # so two resources of one chart are two targets; `write` names the values file.
            template = f"{dep.chart.path}/{doc.template.split('/', 1)[-1]}".lstrip("/")
            location = Location(
                "helm-values",
                template,
                doc.index,
                dep.chart.path,
                why=why,
                chart_source=external.source if external else "",
            )
            target = HelmTarget(index, dep, doc, location)
            target.post_touches = tuple(deployed.touches.get(doc.ident, ()))
            target.deployed_as = _deployed_as(finding, dep, doc)
            target.attach(mapping, rendered)
            if dep.app is None:
                index.guessed_release.setdefault(dep.chart.path, dep.release)
            return target
    if near:
        return f"not in this repository: {'; '.join(dict.fromkeys(near))}"
    if errors:
        static = _static_reason(finding, index, _deployments(finding, index))
        return f"no chart renders {finding.resource}: {errors[0]}" + (
            f"; {static}" if static else ""
        )
    return f"no chart in the repository renders {finding.resource}"


def _matching(
    finding: Finding, dep: Deployment, index: HelmIndex, docs: list[RenderedDoc], chart_dir: Path
) -> list[RenderedDoc]:
    """The deployment's rendered documents that are the finding's resource: by kind and name,
    else by the template that makes it under the scanner's release name, else by a random
    suffix its template draws."""
    res = finding.resource
    matched = [d for d in docs if (d.kind, d.name) == (res.kind, res.name)]
    if not matched and dep.app is not None:
        matched = _same_template(finding, dep, index, docs)
    return matched or _random_named(finding, docs, chart_dir)


def overlay_network_policies(app: HelmApp | None, overlay: FileOverlay) -> list[Mapping[str, Any]]:
    """The NetworkPolicies the kustomize overlay building a HelmRelease deploys beside it
    (none for any other deployment, or an overlay the reader cannot build)."""
    if not isinstance(app, OverlayRelease):
        return []
    try:
        built = KustomizeReader(overlay).build(app.overlay_dir)
    except RemedyError:
        return []
    return [r.doc for r in built if r.kind == "NetworkPolicy"]


def _lists(overlay: FileOverlay, kust: str | None, file_name: str, built: bool) -> bool:
    """Whether a new file beside ``file_name`` is deployed with it: its folder's kustomization
    lists it by name, or (no kustomization, and no other kustomization ``built`` it) Flux or
    Argo CD apply the folder whole."""
    if kust is None:
        return not built  # built from a kustomization elsewhere that lists files one by one
    try:
        data = load_yaml(overlay.read(kust) or "", kust, error=RepositoryError)
    except RepositoryError:
        return False
    resources = data.get("resources") if isinstance(data, Mapping) else None
    return isinstance(resources, list) and file_name in {
        str(r).removeprefix("./") for r in resources if isinstance(r, str)
    }


def _deployed_docs(
    finding: Finding, dep: Deployment, index: HelmIndex, overlay: FileOverlay
) -> list[RenderedDoc]:
    """The finding's resource as ``dep`` renders it with ``overlay`` (`_matching`); raises
    `RemedyError` when the chart does not render."""
    chart_dir = index.chart_root(dep.chart)
    docs = index.deployed(
        dep, chart_dir, dep.render_values(overlay), overlay, kind=finding.resource.kind
    ).docs
    return _matching(finding, dep, index, docs, chart_dir)


TEST_HOOKS = frozenset({"test", "test-success", "test-failure"})
"""``helm.sh/hook`` values of a chart's tests: created by ``helm test`` only."""


HOOK_KINDS = frozenset({"Pod", "Job"})
"""What a chart's tests run in (the chart test convention); other kinds are not looked up."""


def is_test_hook(doc: RenderedDoc) -> bool:
    """Whether ``doc`` is one of its chart's tests (``helm.sh/hook: test``)."""
    annotations = (doc.document.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, Mapping) or "argocd.argoproj.io/hook" in annotations:
        return False  # an Argo CD hook of its own runs whatever Helm says
    hooks = annotations.get("helm.sh/hook")
    return isinstance(hooks, str) and bool(TEST_HOOKS & {h.strip() for h in hooks.split(",")})


def never_deployed(finding: Finding, repo_root: Path, index: HelmIndex) -> str | None:
    """Why the finding's resource never reaches the cluster, or None: a chart's test hook
    that no deployment rendering it runs (Flux creates test hooks only with
    ``spec.test.enable: true``, Argo CD never; scanners render them with the chart's other
    templates)."""
    if finding.resource.kind not in HOOK_KINDS:
        return None
    overlay = index.pristine(repo_root)
    deployers: list[str] = []
    for dep in _deployments(finding, index):
        if dep.chart.refused:
            continue
        try:
            matched = _deployed_docs(finding, dep, index, overlay)
        except RemedyError:
            return None
        if not matched:
            continue
        if dep.app is None or dep.app.runs_tests is not False:
            return None
        if not all(is_test_hook(d) for d in matched):
            return None
        deployers.append(f"{dep.app.kind} {dep.app.name}")
    if not deployers:
        return None
    return (
        f"{finding.resource} is a Helm test hook (helm.sh/hook: test) that "
        f"{', '.join(dict.fromkeys(deployers))} never creates (Flux runs a chart's tests only "
        "with spec.test.enable: true, Argo CD never): compliant as deployed"
    )


def _deployed_as(finding: Finding, dep: Deployment, doc: RenderedDoc) -> str:
    """'' when the finding names the resource as deployed; else what the deployment names it."""
    res = finding.resource
    namespace = str((doc.document.get("metadata") or {}).get("namespace") or dep.namespace)
    if (doc.name, namespace) == (res.name, res.namespace or namespace):
        return ""
    by = f"{dep.app.kind} {dep.app.name}" if dep.app else f"release {dep.release}"
    return (
        f"the scanner's {res.kind} {res.name} is {doc.kind} {doc.name} in namespace "
        f"{namespace} as {by} deploys it (the same template)"
    )


def _near_miss(finding: Finding, dep: Deployment, doc: RenderedDoc) -> str | None:
    """Why a rendered resource of the finding's kind and name is still not the finding's (its
    namespace as deployed, or its containers), or None when it is."""
    res = finding.resource
    chart = dep.chart.path or "."
    own = (doc.document.get("metadata") or {}).get("namespace")
    deployed = str(own or dep.namespace)
    wanted = res.namespace
    file_scan = finding.source.path is not None or finding.source.chart_path is not None
    # A scanner that rendered the chart itself names the namespace it rendered with (none, or
    # default); a cluster scan names the namespace the deployment gives it.
    if wanted is not None and wanted != deployed and not (file_scan and wanted == "default"):
        by = f" by {dep.app.kind} {dep.app.name}" if dep.app else ""
        return (
            f"chart {chart} renders {res.kind} {res.name} in namespace {deployed}{by}, "
            f"not in {wanted}"
        )
    names = _container_names(doc.document)
    if finding.container and names is not None and finding.container not in names:
        return (
            f"{res.kind} {res.name} rendered by chart {chart} has no container "
            f"{finding.container!r}; containers: {', '.join(names) or 'none'}"
        )
    return None


NAMESPACE_ONLY = frozenset({"C-0061"})
"""Controls a finding of which only says the resource sits in the default namespace."""


def compliant_as_deployed(finding: Finding, repo_root: Path, index: HelmIndex) -> bool:
    """Whether ``finding`` only exists because the scan rendered its chart without the
    deployment's namespace: every Application / HelmRelease that renders the resource puts it
    in a namespace of its own (the namespace is the deployment's, not the scanner's)."""
    if finding.control_id not in NAMESPACE_ONLY:
        return False
    overlay = index.pristine(repo_root)
    namespaces: set[str] = set()
    for dep in _deployments(finding, index):
        if dep.app is None or not dep.app.namespace:
            continue
        try:
            matched = _deployed_docs(finding, dep, index, overlay)
        except RemedyError:
            continue
        for doc in matched:
            meta = doc.document.get("metadata") or {}
            own = meta.get("namespace") if isinstance(meta, Mapping) else None
            namespaces.add(str(own or dep.namespace))
    return bool(namespaces) and "default" not in namespaces


def _random_named(finding: Finding, docs: list[RenderedDoc], chart_dir: Path) -> list[RenderedDoc]:
    """The one document of the finding's kind whose name differs from the finding's only in a
    random suffix its template draws (``-{{ randAlphaNum 5 }}``, Helm test pods): every render,
    the scanner's too, names it anew."""
    stem, _, suffix = finding.resource.name.rpartition("-")
    if not stem or not suffix:
        return []
    hits = []
    for doc in docs:
        other_stem, _, other_suffix = doc.name.rpartition("-")
        if (doc.kind, other_stem, len(other_suffix)) != (finding.resource.kind, stem, len(suffix)):
            continue
        try:
            source = (chart_dir / doc.template.split("/", 1)[-1]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if re.search(r"\brand(AlphaNum|Alpha|Numeric|Ascii)\b", source):
            hits.append(doc)
    return hits if len(hits) == 1 else []


def _same_template(
    finding: Finding, dep: Deployment, index: HelmIndex, docs: list[RenderedDoc]
) -> list[RenderedDoc]:
    """The deployment's document made by the template (and position) that makes the finding's
    resource when the chart is rendered the way scanners do (release named after the chart)."""
    kind = finding.resource.kind
    for release in _release_guesses(finding.resource.name, dep.chart.name):
        if release == dep.release:
            continue
        try:
            scanned = index.cache.docs(
                index.chart_root(dep.chart),
                dep.render_values(index.pristine(index.root)),
                release,
                finding.resource.namespace or dep.namespace,
                kind=kind,
            )
        except RemedyError:
            continue
        for doc in scanned:
            if (doc.kind, doc.name) != (kind, finding.resource.name):
                continue
            position = [d for d in scanned if (d.template, d.kind) == (doc.template, kind)]
            mine = [d for d in docs if (d.template, d.kind) == (doc.template, kind)]
            if len(position) == len(mine):
                return [mine[position.index(doc)]]
        if any(d.kind == kind for d in scanned):
            break  # the guess rendered the kind but not this name: later guesses are worse
    return []


def _static_reason(finding: Finding, index: HelmIndex, deps: list[Deployment]) -> str:
    """Template analysis when rendering fails: which template makes the kind, which keys it reads."""
    kind_line = re.compile(rf"^kind:\s*{re.escape(finding.resource.kind)}\s*$", re.M)
    for chart in {d.chart.path: d.chart for d in deps if not d.chart.refused}.values():
        templates = index.chart_root(chart) / "templates"
        for path in sorted(templates.rglob("*")) if templates.is_dir() else []:
            if not path.is_file() or path.suffix not in (".yaml", ".yml", ".tpl"):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if not kind_line.search(text):
                continue
            keys = [
                ".".join(k)
                for k in values_references(text)
                if any(w in k[-1].lower() for w in ("securitycontext", "resources", "automount"))
            ]
            rel = f"{chart.path}/{path.relative_to(index.chart_root(chart)).as_posix()}".lstrip("/")
            return (
                f"static analysis: {rel} makes the {finding.resource.kind} and reads "
                + (", ".join(f".Values.{k}" for k in keys) if keys else "no security values keys")
                + "; fix the chart so it renders, then re-run"
            )
    return ""
