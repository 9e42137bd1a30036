"""Kubescape JSON results (``kubescape scan --format json``), file and cluster scans.

Reads the v2 results format written by Kubescape 2.x and 3.x: ``results[]`` (one per resource,
each with ``controls[].rules[].paths[]``), ``resources[]`` (the scanned objects, with where they
came from) and ``summaryDetails`` (per-control severity and per-framework scores).

One `Finding` per failed control per resource, and per container when the rule paths point into
``containers[i]`` / ``initContainers[i]`` (resolved to the container name through the embedded
object). Kubescape 2.x reported CIS items under ids like ``CIS-5.7.2``: those are mapped to their
canonical id through the catalog's aliases, or reported as `Skipped` with the reason.

``Report.summary`` keeps the report's own scores for `bot.score`: ``score`` and
``compliance_score`` overall, and ``frameworks``: a list of ``{name, score, compliance_score,
controls: {control id as reported: {name, status, score_factor, passed, failed, skipped,
excluded, score, compliance_score}}}``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bot import controls
from bot.errors import ReportError
from bot.safe_load import check_bounds
from bot.sources.base import PassedChecks, Report, Skipped
from fixers.model import CONTROL_ID, Finding, FixHint, ResourceRef, Severity, SourceHint

FORMAT = "kubescape"

_PLACEHOLDER = re.compile(r"\bYOUR_[A-Z0-9_]+")
"""Kubescape's stand-ins for values it cannot know (YOUR_VALUE, YOUR_NAMESPACE)."""
_CONTAINER = re.compile(
    r"^(?P<prefix>.*?\b(?:initContainers|containers|ephemeralContainers))\[(?P<index>\d+)\]"
)
_DOC_INDEX = re.compile(r"^(?P<path>.*):(?P<index>\d+)$")
_PATH_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_SHARED_UP_TO = 256
"""Paths and values up to this long are memoised as a report is read (every resource repeats
the same few); longer ones (a hostile report's) are never kept once it is read."""


# --------------------------------------------------------------------------- raw payload


class _Raw(BaseModel):
    # validators built on first use, as for every reader's payload (`bot.sources._payload`)
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class _FixPath(_Raw):
    path: str = ""
    value: Any = None


class _Path(_Raw):
    fixPath: _FixPath | None = None
    failedPath: str | None = None
    reviewPath: str | None = None
    deletePath: str | None = None


class _Rule(_Raw):
    name: str = ""
    status: str | None = None
    paths: list[_Path] | None = None
    # Kubescape before 2.0.160 put the paths in flat lists on the rule.
    failedPaths: list[str] | None = None
    fixPaths: list[_FixPath] | None = None
    reviewPaths: list[str] | None = None
    deletePaths: list[str] | None = None


class _Control(_Raw):
    controlID: str
    name: str = ""
    status: str | dict[str, Any] | None = None
    rules: list[_Rule] | None = None


class _Result(_Raw):
    resourceID: str
    controls: list[_Control] | None = None


class _Resource(_Raw):
    resourceID: str
    object: dict[str, Any] | None = None
    source: dict[str, Any] | None = None


# --------------------------------------------------------------------------- detection


def sniff(data: Any) -> bool:
    """A Kubescape JSON report: ``results`` of resources with ``controls``, or ``summaryDetails``."""
    if not isinstance(data, Mapping):
        return False
    results = data.get("results")
    if not isinstance(results, list):
        return False
    if isinstance(data.get("summaryDetails"), Mapping):
        return True
    return bool(results) and all(
        isinstance(r, Mapping) and "resourceID" in r and "controls" in r for r in results[:5]
    )


# --------------------------------------------------------------------------- helpers


def status_of(value: str | Mapping[str, Any] | None) -> str | None:
    """A Kubescape status, a string or a ``{"status": ...}`` object, lower-cased; None if empty."""
    if isinstance(value, Mapping):
        value = value.get("status")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _control_failed(control: _Control) -> bool:
    status = status_of(control.status)
    if status is not None:
        return status == "failed"
    # Kubescape 2.x left the control status empty in results: a failed rule fails the control.
    return any(status_of(rule.status) == "failed" for rule in control.rules or ())


def _control_passed(control: _Control) -> bool:
    status = status_of(control.status)
    if status is not None:
        return status == "passed"
    rules = control.rules or ()
    return bool(rules) and all(status_of(rule.status) == "passed" for rule in rules)


def _ref_from_id(resource_id: str) -> ResourceRef | None:
    """Parse ``path=N/api=group/version/namespace/Kind/name`` or ``group/version/ns/Kind/name``."""
    head = resource_id.split("/path=", 1)[0] if not resource_id.startswith("path=") else resource_id
    head = re.sub(r"^path=[^/]*/", "", head)
    head = head.removeprefix("api=")
    parts = head.split("/")
    if len(parts) < 2 or not parts[-1] or not parts[-2]:
        return None
    namespace = parts[-3] if len(parts) >= 3 else ""
    api_version = "/".join(parts[:-3]).strip("/")
    return ResourceRef(
        api_version=api_version, kind=parts[-2], namespace=namespace or None, name=parts[-1]
    )


def _ref_from_object(obj: Mapping[str, Any]) -> ResourceRef | None:
    kind = obj.get("kind")
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        name, namespace = metadata.get("name"), metadata.get("namespace")
    else:  # a rego response vector: the subject with its related objects
        name, namespace = obj.get("name"), obj.get("namespace")
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        return None
    api_version = obj.get("apiVersion")
    return ResourceRef(
        api_version=api_version if isinstance(api_version, str) else "",
        kind=kind,
        namespace=namespace if isinstance(namespace, str) and namespace else None,
        name=name,
    )


def _source_hint(resource: _Resource | None) -> SourceHint:
    if resource is None:
        return SourceHint()
    obj = resource.object or {}
    source = resource.source or {}
    source_path = obj.get("sourcePath") if isinstance(obj.get("sourcePath"), str) else None
    document_index: int | None = None
    if source_path and (match := _DOC_INDEX.match(source_path)):
        source_path, document_index = match["path"], int(match["index"])
    relative = source.get("relativePath")
    path = relative if isinstance(relative, str) and relative else source_path
    if path and document_index is None and (match := _DOC_INDEX.match(path)):
        path, document_index = match["path"], int(match["index"])
    chart_path = source.get("helmPath")
    if not (isinstance(chart_path, str) and chart_path):
        chart_path = None
        is_helm = "helm" in str(source.get("fileType", "")).lower() or source.get("helmChartName")
        if is_helm and path and "/templates/" in f"/{path}":
            chart_path = f"/{path}".split("/templates/", 1)[0].lstrip("/") or "."
    return SourceHint(path=path or None, document_index=document_index, chart_path=chart_path)


def _walk(obj: Any, path: str) -> Any:
    """Follow a Kubescape path (``spec.template.spec.containers[0]``) into an object."""
    node = obj
    for key, index in _segments(path) if len(path) <= _SHARED_UP_TO else _segments_of(path):
        if key:
            if not (type(node) is dict or isinstance(node, Mapping)) or key not in node:
                return None
            node = node[key]
        else:
            if not isinstance(node, list) or index >= len(node):
                return None
            node = node[index]
    return node


def _segments_of(path: str) -> tuple[tuple[str, int], ...]:
    """A Kubescape path's keys (index 0) and indexes (key '')."""
    return tuple((key, int(index) if index else 0) for key, index in _PATH_SEGMENT.findall(path))


_segments = lru_cache(maxsize=4096)(_segments_of)


_POD_SPEC_KEYS = frozenset({"spec", "template", "jobTemplate"})
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


def _skeleton(obj: Any) -> Any:
    """What the reader uses of an embedded object: kind, apiVersion, name, namespace, source
    path and container names. A big report's objects are cut to this as they are read."""
    if not isinstance(obj, Mapping):
        return obj
    kept: dict[str, Any] = {
        k: obj[k] for k in ("apiVersion", "kind", "name", "namespace", "sourcePath") if k in obj
    }
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        kept["metadata"] = {k: metadata[k] for k in ("name", "namespace") if k in metadata}
    spec = _spec_skeleton(obj.get("spec"))
    if spec:
        kept["spec"] = spec
    return kept


def _spec_skeleton(node: Any) -> dict[str, Any] | None:
    if not isinstance(node, Mapping):
        return None
    kept: dict[str, Any] = {}
    for key, value in node.items():
        if key in _POD_SPEC_KEYS:
            if (inner := _spec_skeleton(value)) is not None:
                kept[key] = inner
        elif key in _CONTAINER_LISTS and isinstance(value, list):
            kept[key] = [{"name": c.get("name")} if isinstance(c, Mapping) else None for c in value]
    return kept


def _container_of(path: str, obj: Mapping[str, Any] | None) -> str | None:
    """The name of the container a path points into, '' for a pod/resource-level path."""
    into = _container_path(path) if len(path) <= _SHARED_UP_TO else _container_path_of(path)
    if into is None:
        return ""
    container = _walk(obj, into) if obj is not None else None
    name = container.get("name") if isinstance(container, Mapping) else None
    return name if isinstance(name, str) else None


def _container_path_of(path: str) -> str | None:
    """The part of ``path`` that leads to a container (``spec.containers[0]``), if any."""
    match = _CONTAINER.match(path)
    return None if match is None else match.group(0)


# Every resource repeats the same few paths, and the pattern backtracks over each of them.
_container_path = lru_cache(maxsize=4096)(_container_path_of)


def _hint(kind: str, path: str, value: Any = None) -> FixHint:
    if kind != "fix":
        return _made_hint(kind, path, None, False)
    text = None if value is None else str(value)
    if text is not None and _PLACEHOLDER.search(text):
        return _made_hint("fix", path, None, True)
    return _made_hint("fix", path, text, False)


def _made_hint(kind: str, path: str, value: str | None, placeholder: bool) -> FixHint:
    """The hint; validated once for the short paths and values every resource repeats (a
    report of 2,000 workloads holds 47,000 hints of a few hundred kinds)."""
    if len(path) <= _SHARED_UP_TO and (value is None or len(value) <= _SHARED_UP_TO):
        return _shared_hint(kind, path, value, placeholder)
    return _new_hint(kind, path, value, placeholder)


def _new_hint(kind: str, path: str, value: str | None, placeholder: bool) -> FixHint:
    return FixHint(kind=kind, path=path, value=value, placeholder=placeholder)  # type: ignore[arg-type]


_shared_hint = lru_cache(maxsize=4096)(_new_hint)


def _rule_hints(rule: _Rule) -> Iterable[FixHint]:
    for entry in rule.paths or ():
        if entry.failedPath:
            yield _hint("failed", entry.failedPath)
        if entry.fixPath is not None and entry.fixPath.path:
            yield _hint("fix", entry.fixPath.path, entry.fixPath.value)
        if entry.reviewPath:
            yield _hint("review", entry.reviewPath)
        if entry.deletePath:
            yield _hint("delete", entry.deletePath)
    for failed in rule.failedPaths or ():
        yield _hint("failed", failed)
    for fix in rule.fixPaths or ():
        if fix.path:
            yield _hint("fix", fix.path, fix.value)
    for review in rule.reviewPaths or ():
        yield _hint("review", review)
    for delete in rule.deletePaths or ():
        yield _hint("delete", delete)


def _by_container(
    hints: Iterable[FixHint], obj: Mapping[str, Any] | None
) -> dict[str | None, list[FixHint]]:
    """Hints per container name; pod-level hints go with every container (or alone: None)."""
    per_container: dict[str, list[FixHint]] = {}
    shared: list[FixHint] = []
    for hint in dict.fromkeys(hints):  # dedupe, keep order
        name = _container_of(hint.path, obj)
        if name:
            per_container.setdefault(name, []).append(hint)
        else:
            # '' (resource-level) or None (a container index the object does not have)
            shared.append(hint)
    if not per_container:
        return {None: shared}
    return {name: [*shared, *own] for name, own in per_container.items()}


def _severities(summary: Mapping[str, Any]) -> dict[str, Severity]:
    found: dict[str, Severity] = {}
    table = summary.get("controls")
    if isinstance(table, Mapping):
        for cid, entry in table.items():
            if isinstance(entry, Mapping):
                raw = entry.get("severity", entry.get("scoreFactor"))
                severity = Severity.parse(raw)
                if severity is not Severity.UNKNOWN:
                    found[str(cid)] = severity
    return found


def _framework_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Framework and control scores as Kubescape reported them (for `bot.score`)."""

    def control_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
        counters = entry.get("ResourceCounters") or {}
        return {
            "name": entry.get("name", ""),
            "status": status_of(entry.get("statusInfo")) or status_of(entry.get("status")),
            "score_factor": entry.get("scoreFactor"),
            "passed": int(counters.get("passedResources", 0) or 0),
            "failed": int(counters.get("failedResources", 0) or 0),
            "skipped": int(counters.get("skippedResources", 0) or 0),
            "excluded": int(counters.get("excludedResources", 0) or 0),
            "score": entry.get("score"),
            "compliance_score": entry.get("complianceScore"),
        }

    frameworks = []
    for framework in summary.get("frameworks") or ():
        if not isinstance(framework, Mapping) or not isinstance(framework.get("name"), str):
            continue
        table = framework.get("controls")
        frameworks.append(
            {
                "name": framework["name"],
                "score": framework.get("score"),
                "compliance_score": framework.get("complianceScore"),
                "controls": {
                    str(cid): control_entry(entry)
                    for cid, entry in (table.items() if isinstance(table, Mapping) else ())
                    if isinstance(entry, Mapping)
                },
            }
        )
    return {
        "frameworks": frameworks,
        "score": summary.get("score"),
        "compliance_score": summary.get("complianceScore"),
    }


def _validated(model: type[BaseModel], item: Any, where: str, origin: str) -> Any:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ReportError(
            f"{origin}: malformed Kubescape report at {where}.{loc}: {first['msg']}"
        ) from None


def _merge_duplicates(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """One finding per identity and source; RBAC response vectors repeat the same subject."""
    merged: dict[tuple[Any, ...], Finding] = {}
    for finding in findings:
        key = (*finding.identity, finding.source.path, finding.source.document_index)
        first = merged.get(key)
        if first is None:
            merged[key] = finding
        else:
            hints = tuple(dict.fromkeys((*first.hints, *finding.hints)))
            merged[key] = dataclasses.replace(first, hints=hints)
    return tuple(merged.values())


# --------------------------------------------------------------------------- parse


def parse(data: Any, origin: str) -> Report:
    """Turn a Kubescape JSON report into findings (failed controls only)."""
    if not sniff(data):
        raise ReportError(f"{origin}: not a Kubescape JSON report (no 'results' list)")
    raw_resources = data.get("resources") or []
    if not isinstance(raw_resources, list):
        raise ReportError(f"{origin}: malformed Kubescape report: 'resources' is not a list")
    summary = data.get("summaryDetails") or {}
    if not isinstance(summary, Mapping):
        raise ReportError(
            f"{origin}: malformed Kubescape report: 'summaryDetails' is not a mapping"
        )

    return build_report(raw_resources, data["results"], summary, origin)


def build_report(
    raw_resources: Iterable[Any],
    raw_results: Iterable[Any],
    summary: Mapping[str, Any],
    origin: str,
    *,
    scanner: str = FORMAT,
    severities: Mapping[str, Severity] | None = None,
) -> Report:
    """The findings of a report's resources and results, consumed once each, in that order (so
    a streaming reader never holds the raw results). Other Kubescape carriers (the operator's
    CRDs) hand their results over in this report's shape, with ``severities`` by control id
    (looked up as each result is read, so a streaming caller may fill it as it goes)."""
    by_id: dict[str, _Resource] = {}
    for i, item in enumerate(raw_resources):
        resource = _validated(_Resource, item, f"resources[{i}]", origin)
        if resource.resourceID not in by_id:
            by_id[resource.resourceID] = resource.model_copy(
                update={"object": _skeleton(resource.object)}
            )

    if severities is None:
        severities = _severities(summary)
    # Equal immutable values (hints, ids, names) repeat on every resource of a big report:
    # findings share one copy of each instead of holding their own.
    pool: dict[Any, Any] = {}

    def shared(value: Any) -> Any:
        return pool.setdefault(value, value)

    findings: list[Finding] = []
    skipped: list[Skipped] = []
    objects: dict[str, Mapping[str, Any]] = {}
    passed: dict[str, frozenset[str]] = {}  # the controls each resource passed (shared sets)

    for i, item in enumerate(raw_results):
        result = _validated(_Result, item, f"results[{i}]", origin)
        resource = by_id.get(result.resourceID)
        obj = resource.object if resource is not None else None
        ref = (_ref_from_object(obj) if obj else None) or _ref_from_id(result.resourceID)
        if ref is None:
            skipped.append(Skipped(result.resourceID, "cannot tell kind and name of this resource"))
            continue
        key = ref.key  # one string per resource: most of its controls pass
        if (obj and isinstance(obj.get("metadata"), Mapping)) or obj:
            objects.setdefault(key, obj)
        source = _source_hint(resource)
        passing: list[str] = []
        for control in result.controls or ():
            if not _control_failed(control):
                if _control_passed(control):
                    canonical_passed = controls.canonical_id(control.controlID)
                    if canonical_passed:
                        passing.append(canonical_passed)
                continue
            raw_id = control.controlID.strip()
            canonical = raw_id.upper() if CONTROL_ID.match(raw_id.upper()) else None
            canonical = canonical or controls.canonical_id(raw_id)
            if canonical is None:
                skipped.append(
                    Skipped(
                        f"{raw_id} on {ref}",
                        f"control id {raw_id!r} is not a Kubescape C-NNNN id and the control "
                        "catalog knows no equivalent",
                    )
                )
                continue
            known = controls.get(canonical)
            severity = severities.get(raw_id) or severities.get(canonical)
            if severity is None:
                severity = known.severity_level if known else Severity.UNKNOWN
            hints = [
                hint
                for rule in control.rules or ()
                if status_of(rule.status) in (None, "failed")
                for hint in _rule_hints(rule)
            ]
            name = shared(control.name or (known.name if known else ""))
            for container, own_hints in _by_container(hints, obj).items():
                findings.append(
                    Finding(
                        control_id=shared(canonical),
                        scanner=scanner,
                        scanner_ids=shared((raw_id,)),
                        severity=severity,
                        resource=ref,
                        container=container,
                        source=source,
                        hints=shared(tuple(shared(h) for h in own_hints)),
                        message=name,
                    )
                )
        if passing:
            passed[key] = shared(frozenset(passing).union(passed.get(key, ())))

    # Prefer real objects over rego response vectors that reuse the subject's identity.
    for resource in by_id.values():
        obj = resource.object
        if obj and isinstance(obj.get("metadata"), Mapping):
            ref = _ref_from_object(obj)
            if ref is not None and not isinstance(
                objects.get(ref.key, {}).get("metadata"), Mapping
            ):
                objects[ref.key] = obj

    return Report(
        scanner=scanner,
        origin=origin,
        findings=_merge_duplicates(findings),
        skipped=tuple(skipped),
        resources=objects,
        summary=_framework_summary(summary),
        passed=PassedChecks.of(passed),
    )


# --------------------------------------------------------------------------- streaming


SNIFF_BYTES = 1024 * 1024
"""How much of a large report `parse_file` reads to tell whether it is a Kubescape report."""

_KUBESCAPE_KEYS = frozenset({"summaryDetails", "resources", "results"})


def _sniff_head(head: bytes) -> tuple[bool, Any]:
    """Whether the start of a JSON file reads as a Kubescape report, by its content: top-level
    ``resources`` / ``results`` items keyed by ``resourceID``, or a ``summaryDetails``
    mapping. Also the ``summaryDetails`` value when it is complete within ``head`` (None when
    not: it comes later, or it is absent)."""
    import ijson

    keys: set[str] = set()
    item_keyed = False
    summary: Any = None
    builder: Any = None
    try:
        for prefix, event, value in ijson.parse(head, use_float=True):
            if prefix == "" and event == "map_key":
                keys.add(value)
            elif event == "map_key" and value == "resourceID":
                item_keyed = item_keyed or prefix in ("resources.item", "results.item")
            if builder is not None:
                builder.event(event, value)
                if prefix == "summaryDetails" and event in ("end_map", "end_array"):
                    summary, builder = builder.value, None
            elif prefix == "summaryDetails" and event in ("start_map", "start_array"):
                builder = ijson.ObjectBuilder()
                builder.event(event, value)
            elif prefix == "summaryDetails" and event != "map_key":
                summary = value  # a scalar where a mapping belongs: the caller says so
    except ijson.IncompleteJSONError:
        pass  # the head ends mid-document, as it should
    if summary is not None and not isinstance(summary, Mapping):
        return True, summary
    return bool(keys & _KUBESCAPE_KEYS) and (item_keyed or isinstance(summary, Mapping)), summary


def parse_file(path: Path, origin: str) -> Report | None:
    """`parse` of a large JSON report file without holding the whole document: ``resources``
    and ``results`` are read item by item (ijson), one pass each, after the format is told
    from the file's first megabyte. None when that does not read as a Kubescape report (the
    caller then reads it whole, with the usual errors)."""
    try:
        import ijson
    except ImportError:
        return None

    def items(prefix: str) -> Iterator[Any]:
        with path.open("rb") as stream:
            if stream.read(3) != b"\xef\xbb\xbf":  # utf-8-sig, as the whole-file reader
                stream.seek(0)
            for item in ijson.items(stream, prefix, use_float=True):
                check_bounds(item, origin, error=ReportError, where=f" in one of {prefix}")
                yield item

    try:
        with path.open("rb") as stream:
            head = stream.read(SNIFF_BYTES).removeprefix(b"\xef\xbb\xbf")
        looks_kubescape, summary = _sniff_head(head)
        if not looks_kubescape:
            return None
        if summary is None:  # written after the results (Kubescape does that too), or absent
            summary = next(items("summaryDetails"), None)
        else:
            check_bounds(summary, origin, error=ReportError, where=" in summaryDetails")
        if summary is not None and not isinstance(summary, Mapping):
            raise ReportError(
                f"{origin}: malformed Kubescape report: 'summaryDetails' is not a mapping"
            )
        return build_report(items("resources.item"), items("results.item"), summary or {}, origin)
    except ijson.JSONError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid JSON"
        raise ReportError(f"{origin}: malformed JSON: {detail}") from None
