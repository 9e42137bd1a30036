"""Render a Helm chart offline into parsed manifests.

`Renderer` is the seam: `SdkRenderer` (default) binds Helm's Go SDK through helm-python-sdk, no
binary and no cluster; `BinaryRenderer` runs ``helm template`` when a helm binary is configured.
Every failure becomes a one-line `ChartError`.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml

from bot.errors import ChartError
from bot.safe_load import load_yaml, yaml_documents

MAX_VALUES_BYTES = 16 * 1024 * 1024


DocId = tuple[str, str, str]
"""(template, kind, name) of a rendered document (`RenderedDoc.ident`)."""


@dataclass(frozen=True)
class RenderedDoc:
    """One rendered manifest document and the template it came from."""

    template: str
    """Template path as Helm names it, e.g. ``demo/templates/deployment.yaml``."""
    index: int
    document: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.document.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.document.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        return (self.document.get("metadata") or {}).get("namespace")

    @property
    def ident(self) -> DocId:
        """Template, kind and name: which document of a chart this is, whatever its values."""
        return (self.template, self.kind, self.name)


class Renderer(Protocol):
    """Renders a chart directory with user-supplied values into ``{template path: text}``."""

    def render(
        self, chart_dir: Path, values: Mapping[str, Any], release: str, namespace: str
    ) -> dict[str, str]: ...


def _one_line(message: object) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= 400 else text[:397] + "..."


@dataclass
class _LoadedChart:
    """A chart loaded by `SdkRenderer`, with what tells whether it still renders every
    subchart a render's values enable."""

    chart: Any
    subcharts: int
    """Subcharts loaded (a render drops those its values disable)."""
    declared: list[dict[str, Any]]
    """The dependencies Chart.yaml declares."""
    defaults: dict[str, Any]
    """The chart's own default values, as loaded."""
    pruned: bool = False
    """Whether a render dropped subcharts from it."""


_UNKNOWN = object()
"""A dependency condition this module does not decide (Helm may enable the subchart)."""


def _condition_value(path: str, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    """The value Helm reads for one condition path: the user's (over the chart's defaults),
    None where neither has it, `_UNKNOWN` where the user's values replace a mapping on the
    way (a null deleting a default, a scalar) or the value is no boolean."""
    keys = path.split(".")
    node: Any = values
    for key in keys:
        if not isinstance(node, Mapping):
            return _UNKNOWN
        if key not in node:
            break
        node = node[key]
    else:
        return node if isinstance(node, bool) else _UNKNOWN
    node = defaults
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, bool) or node is None else _UNKNOWN


def _stays_disabled(loaded: _LoadedChart, values: Mapping[str, Any]) -> bool:
    """Whether ``values`` disable every dependency a render may have dropped: each has a
    condition (no tags) whose first boolean path is false (conservative: anything else, and
    the chart is loaded afresh)."""
    for dep in loaded.declared:
        condition = str(dep.get("condition") or "")
        if dep.get("tags"):
            return False
        if not condition:
            continue  # enabled always: never dropped
        decided: Any = None
        for path in (p.strip() for p in condition.split(",")):
            decided = _condition_value(path, values, loaded.defaults) if path else None
            if decided is not None:
                break
        if decided is not False:
            return False
    return True


class SdkRenderer:
    """helm-python-sdk: Helm v4's Go SDK in-process; charts are cached per directory.

    A render drops the subcharts its values disable from the loaded chart (Helm processes
    dependency conditions on the chart itself). A chart that lost subcharts renders the next
    values as it is only when they disable every subchart it may have lost; otherwise it is
    loaded afresh, so values enabling a subchart render it."""

    def __init__(self) -> None:
        self._charts: dict[Path, _LoadedChart] = {}

    def _load(self, key: Path) -> _LoadedChart:
        import helm_python

        try:
            helm_python.disable_logging()
            chart = helm_python.Chart.load(str(key))
        except helm_python.HelmError as exc:
            raise ChartError(f"cannot load chart {key}: {_one_line(exc)}") from exc
        subcharts = len(chart.dependencies)
        declared = list(chart.metadata.get("dependencies") or ()) if subcharts else []
        return _LoadedChart(chart, subcharts, declared, chart.values if subcharts else {})

    def _chart(self, chart_dir: Path, values: Mapping[str, Any]) -> _LoadedChart:
        key = chart_dir.resolve()
        loaded = self._charts.get(key)
        if loaded is not None and loaded.pruned and not _stays_disabled(loaded, values):
            loaded.chart.close()
            loaded = None
        if loaded is None:
            loaded = self._charts[key] = self._load(key)
        return loaded

    def render(
        self, chart_dir: Path, values: Mapping[str, Any], release: str, namespace: str
    ) -> dict[str, str]:
        import helm_python

        loaded = self._chart(chart_dir, values)
        try:
            return dict(loaded.chart.render(dict(values), name=release, namespace=namespace))
        except helm_python.HelmError as exc:
            raise ChartError(f"chart {chart_dir.name} does not render: {_one_line(exc)}") from exc
        finally:
            if loaded.subcharts and len(loaded.chart.dependencies) < loaded.subcharts:
                loaded.pruned = True


@dataclass
class BinaryRenderer:
    """``helm template`` through a configured helm binary."""

    helm: str = "helm"
    timeout: float = 120.0

    def render(
        self, chart_dir: Path, values: Mapping[str, Any], release: str, namespace: str
    ) -> dict[str, str]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(dict(values), handle)
            values_file = handle.name
        try:
            proc = subprocess.run(
                [
                    self.helm,
                    "template",
                    release,
                    str(chart_dir),
                    "-n",
                    namespace,
                    "-f",
                    values_file,
                ],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ChartError(f"cannot run {self.helm} template: {_one_line(exc)}") from exc
        finally:
            Path(values_file).unlink(missing_ok=True)
        if proc.returncode != 0:
            raise ChartError(f"chart {chart_dir.name} does not render: {_one_line(proc.stderr)}")
        return split_template_output(proc.stdout)


def make_renderer(helm_binary: str | None = None) -> Renderer:
    """The configured renderer: the helm binary when one is named, else the in-process SDK."""
    return BinaryRenderer(helm_binary) if helm_binary else SdkRenderer()


def split_template_output(text: str) -> dict[str, str]:
    """Split ``helm template`` output into ``{source template: text}`` by its Source comments."""
    out: dict[str, str] = {}
    current = ""
    for chunk in text.split("\n---"):
        for line in chunk.splitlines():
            if line.startswith("# Source: "):
                current = line[len("# Source: ") :].strip()
                break
        out[current] = (out.get(current, "") + "\n---\n" + chunk).strip()
    return out


_HELM_SEPARATOR = re.compile(r"(?:^|\s*\n)---\s*")
"""Where Helm splits a rendered template into manifests (``releaseutil.SplitManifests``): a
line that starts with ``---``, whatever follows it (``---# a comment`` is a separator to Helm
and to Trivy, not to a YAML parser)."""


def helm_documents(text: str) -> Iterator[Any]:
    """The documents of one rendered template, split where Helm splits them, then each read
    as YAML (empty ones skipped, as Helm skips them)."""
    for part in _HELM_SEPARATOR.split(text.strip()):
        if part.strip():
            yield from yaml_documents(part)


def parse_rendered(
    rendered: Mapping[str, str], only: str | None = None, kind: str | None = None
) -> list[RenderedDoc]:
    """Parse rendered templates into documents (NOTES.txt and empty documents skipped);
    ``only`` limits parsing to one template (probes look at one resource), ``kind`` to templates
    that mention that kind (big CRDs are not parsed to find a Deployment)."""
    docs: list[RenderedDoc] = []
    kind_re = re.compile(rf"^kind:\s*['\"]?{re.escape(kind)}\b", re.M) if kind else None
    for template in sorted(rendered):
        if only is not None and template != only:
            continue
        if kind_re is not None and not kind_re.search(rendered[template]):
            continue
        if not template.endswith((".yaml", ".yml", ".tpl", ".json")) or "/templates/" not in (
            "/" + template
        ):
            continue
        try:
            loaded = list(helm_documents(rendered[template]))
        except yaml.YAMLError as exc:
            raise ChartError(f"{template} renders invalid YAML: {_one_line(exc)}") from exc
        for index, document in enumerate(d for d in loaded if isinstance(d, Mapping)):
            docs.append(RenderedDoc(template, index, document))
    return docs


def deep_merge(
    base: Mapping[str, Any], over: Mapping[str, Any], *, drop_null: bool = False
) -> dict[str, Any]:
    """Helm-style coalescing: maps merge key by key, anything else replaces. With ``drop_null``
    a null deletes the key (the effective values); without, it is kept so Helm deletes the
    chart default itself."""
    out: dict[str, Any] = dict(base)
    for key, value in over.items():
        if value is None and drop_null:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value, drop_null=drop_null)
        else:
            out[key] = value
    return out


def load_values_text(text: str, origin: str) -> dict[str, Any]:
    """A values document as a mapping (empty file = {}); `ChartError` when it is not one.
    Parsed once per distinct text: the result is shared, so callers never mutate it."""
    data = _parse_values(text, f"values file {origin}")
    if isinstance(data, ChartError):
        raise data
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ChartError(f"values file {origin} is not a mapping")
    return data  # type: ignore[return-value]


@lru_cache(maxsize=256)
def _parse_values(text: str, origin: str) -> Any:
    try:
        return load_yaml(text, origin, max_bytes=MAX_VALUES_BYTES, error=ChartError)
    except ChartError as exc:
        return exc


def values_key(values: Mapping[str, Any]) -> str:
    """A stable digest of a values overlay (the render cache's key)."""
    blob = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


@dataclass
class RenderCache:
    """Every render of a run, keyed by (chart, values overlay digest, release, namespace).

    One cache serves the whole run: locating, probing, re-reading after a fix and verifying all
    ask it, so a values overlay is rendered once per chart. Rendered templates are parsed lazily
    and once per distinct text (a probe that changes one template re-parses only that one)."""

    renderer: Renderer
    renders: int = 0
    _raw: dict[tuple[str, str, str, str], dict[str, str] | ChartError] = field(default_factory=dict)
    _parsed: dict[tuple[str, str], list[RenderedDoc] | ChartError] = field(default_factory=dict)
    _kinds: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def rendered(
        self, chart_dir: Path, values: Mapping[str, Any], release: str, namespace: str
    ) -> dict[str, str]:
        """The chart's rendered templates (``{template: text}``) for these values."""
        key = (str(chart_dir), values_key(values), release, namespace)
        result = self._raw.get(key)
        if result is None:
            self.renders += 1
            try:
                result = dict(self.renderer.render(chart_dir, values, release, namespace))
            except ChartError as exc:
                result = exc
            self._raw[key] = result
        if isinstance(result, ChartError):
            raise result
        return result

    def has(self, chart_dir: Path, values: Mapping[str, Any], release: str, namespace: str) -> bool:
        """Whether these values of the chart were rendered already (successfully or not)."""
        return (str(chart_dir), values_key(values), release, namespace) in self._raw

    def docs(
        self,
        chart_dir: Path,
        values: Mapping[str, Any],
        release: str,
        namespace: str,
        only: str | None = None,
        kind: str | None = None,
    ) -> list[RenderedDoc]:
        """Parsed documents of a render; ``only`` one template, ``kind`` templates naming it."""
        rendered = self.rendered(chart_dir, values, release, namespace)
        out: list[RenderedDoc] = []
        for template in [only] if only is not None else sorted(rendered):
            text = rendered.get(template)
            if text is None or (kind is not None and kind not in self.kinds_in(template, text)):
                continue
            out.extend(self._parse(template, text))
        return out

    def kinds_in(self, template: str, text: str) -> frozenset[str]:
        """The top-level kinds a rendered template names, found once per distinct text (a CRD
        template is megabytes: scanning it again for every lookup is slow)."""
        key = (template, text)
        kinds = self._kinds.get(key)
        if kinds is None:
            kinds = frozenset(_KIND.findall(text))
            if len(self._kinds) > 20_000:
                self._kinds.clear()
            self._kinds[key] = kinds
        return kinds

    def _parse(self, template: str, text: str) -> list[RenderedDoc]:
        key = (template, text)
        result = self._parsed.get(key)
        if result is None:
            try:
                result = parse_rendered({template: text})
            except ChartError as exc:
                result = exc
            if len(self._parsed) > 20_000:
                self._parsed.clear()
            self._parsed[key] = result
        if isinstance(result, ChartError):
            raise result
        return result


_KIND = re.compile(r"^kind:\s*['\"]?([A-Za-z0-9]+)\b", re.M)


def render_chart_findings(
    chart_dir: Path,
    values_files: list[Path] | tuple[Path, ...] = (),
    *,
    release: str = "release",
    namespace: str = "default",
    renderer: Renderer | None = None,
) -> list[Mapping[str, Any]]:
    """Render ``chart_dir`` with ``values_files`` (later wins) and return the documents to scan."""
    values: dict[str, Any] = {}
    for path in values_files:
        if not path.is_file():
            raise ChartError(f"values file {path} does not exist")
        values = deep_merge(values, load_values_text(path.read_text(encoding="utf-8"), str(path)))
    rendered = (renderer or SdkRenderer()).render(chart_dir, values, release, namespace)
    return [doc.document for doc in parse_rendered(rendered)]
