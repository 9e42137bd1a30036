"""Checkov JSON results (``checkov -d DIR --framework kubernetes|helm -o json``).

Checkov writes one mapping per framework, or a list of them when it ran several:
``{check_type, results: {failed_checks[], passed_checks[]}, summary}``. Each failed check names
``check_id`` (``CKV_K8S_20``, graph checks ``CKV2_K8S_6``), ``check_name``, ``file_path``,
``file_line_range``, ``resource`` (``Kind.namespace.name``, namespace ``default`` when the
manifest sets none) and ``code_block``: the resource's own lines.

Checkov reports a check once per resource, naming only the first failing container in
``evaluated_keys``; so a per-container control gets that container's name only when the pod has
one container, and otherwise no container (the fixer then looks at every container and leaves
the compliant ones alone). The resource's kind, name and namespace are read from ``code_block``
when it is present, as Checkov fills in ``default`` for a namespace the manifest does not set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot import controls, scanner_map
from bot.errors import RemedyError, ReportError
from bot.safe_load import load_yaml_all
from bot.sources._payload import Payload, Raw, Str, Text
from bot.sources.base import Report, Skipped
from fixers.model import Finding, ResourceRef, SourceHint

FORMAT = "checkov"

PER_CONTAINER = frozenset(
    {
        "C-0004",
        "C-0009",
        "C-0013",
        "C-0016",
        "C-0017",
        "C-0018",
        "C-0044",
        "C-0046",
        "C-0050",
        "C-0056",
        "C-0057",
        "C-0075",
        "C-0207",
        "C-0270",
        "C-0271",
        "C-9001",
        "C-9002",
        "C-9004",
        "C-9005",
    }
)
"""Controls Kubescape and Trivy report per container (the others are per pod or resource)."""


class _Check(Payload):
    """One passed or failed check."""

    check_id: Str = None
    check_name: Text = ""
    resource: Text = ""
    file_path: Raw = None
    repo_file_path: Raw = None
    file_line_range: Raw = None
    severity: Raw = None
    code_block: Raw = None


class _Results(Payload):
    passed_checks: Raw = None
    failed_checks: Raw = None


class _Run(Payload):
    """One framework's results (what `sniff` recognises)."""

    check_type: str
    results: _Results
    summary: Raw = None


def _is_run(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and isinstance(item.get("check_type"), str)
        and isinstance(item.get("results"), Mapping)
    )


_NOTHING_SCANNED = frozenset(
    {"passed", "failed", "skipped", "parsing_errors", "resource_count", "checkov_version"}
)


def _nothing_scanned(data: Any) -> bool:
    """Checkov's output when no framework found a resource to check: its summary alone
    (``{"passed": 0, "failed": 0, ..., "resource_count": 0, "checkov_version": ...}``)."""
    return (
        isinstance(data, Mapping)
        and set(data) == _NOTHING_SCANNED
        and isinstance(data["checkov_version"], str)
        and all(type(data[k]) is int for k in _NOTHING_SCANNED - {"checkov_version"})
        and data["failed"] == 0
        and data["resource_count"] == 0
    )


def sniff(data: Any) -> bool:
    """Checkov ``-o json`` output: one framework's results, a list of them, or the summary it
    prints when it scanned nothing."""
    if isinstance(data, list):
        return bool(data) and all(_is_run(i) for i in data)
    return _is_run(data) or _nothing_scanned(data)


def _document(check: _Check) -> Mapping[str, Any] | None:
    """The resource as Checkov quotes it in ``code_block``, parsed."""
    block = check.code_block
    if not isinstance(block, list):
        return None
    text = "".join(
        str(line[1]) for line in block if isinstance(line, list | tuple) and len(line) == 2
    )
    try:
        # the quoted lines can run past the document into a '---' and the next one
        docs = [d for d in load_yaml_all(text, "code_block") if isinstance(d, Mapping)]
    except RemedyError:
        return None
    return docs[0] if docs else None


def _pod_spec(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    spec: Any = doc.get("spec")
    if doc.get("kind") == "CronJob":
        path: tuple[str, ...] = ("jobTemplate", "spec", "template", "spec")
    elif doc.get("kind") == "Pod":
        path = ()
    else:
        path = ("template", "spec")
    for key in path:
        spec = spec.get(key) if isinstance(spec, Mapping) else None
    return spec if isinstance(spec, Mapping) else None


def only_container(doc: Mapping[str, Any] | None) -> str | None:
    """The name of the pod's only container (regular or init), or None."""
    spec = _pod_spec(doc) if doc else None
    if spec is None:
        return None
    names = [
        c.get("name")
        for key in ("containers", "initContainers")
        for c in spec.get(key) or ()
        if isinstance(c, Mapping)
    ]
    return str(names[0]) if len(names) == 1 and names[0] else None


def resource_of(doc: Mapping[str, Any] | None) -> ResourceRef | None:
    """The identity of a manifest document, or None when it has no kind and name."""
    meta = doc.get("metadata") if doc else None
    if doc and isinstance(meta, Mapping) and doc.get("kind") and meta.get("name"):
        return ResourceRef(
            api_version=str(doc.get("apiVersion") or ""),
            kind=str(doc["kind"]),
            namespace=str(meta["namespace"]) if meta.get("namespace") else None,
            name=str(meta["name"]),
        )
    return None


def _ref(check: _Check, doc: Mapping[str, Any] | None) -> ResourceRef | None:
    ref = resource_of(doc)
    if ref is not None:
        return ref
    parts = check.resource.split(".")
    if len(parts) < 3 or not parts[0] or not parts[2]:
        return None
    namespace = parts[1] if parts[1] != "default" else None  # Checkov's stand-in for "unset"
    return ResourceRef(kind=parts[0], namespace=namespace, name=".".join(parts[2:]))


def _source(check: _Check, check_type: str) -> SourceHint:
    path = str(check.file_path or "").lstrip("/") or None
    fuller = str(check.repo_file_path or "").lstrip("/")
    if check_type == "kustomize" and path and fuller.endswith("/" + path):
        # the kustomize framework names the built folder's kustomization relative to that
        # folder when run inside it; the path from the repository's root says which overlay
        path = fuller
    lines = check.file_line_range
    line = lines[0] if isinstance(lines, list) and lines and isinstance(lines[0], int) else None
    chart = None
    if check_type == "helm" and path and "/templates/" in f"/{path}":
        chart = f"/{path}".split("/templates/", 1)[0].lstrip("/") or None
    return SourceHint(path=path, chart_path=chart, line=line)


def _passed(checks: Any) -> set[tuple[str, str]]:
    """(control, resource key) of each mapped passed check: evidence of a resolved fix."""
    out = set()
    for raw in checks if isinstance(checks, list) else ():
        if not isinstance(raw, Mapping):
            continue
        check = _Check.model_validate(raw)
        if check.check_id is None:
            continue
        control = scanner_map.to_control(FORMAT, check.check_id)
        ref = _ref(check, _document(check)) if control else None
        if control and ref is not None:
            out.add((control, ref.key))
    return out


def _empty(summary: Mapping[str, Any], origin: str) -> Report:
    """The report of a scan that found no resource: no finding to fix, and the files Checkov
    could not parse named rather than passed over."""
    errors = summary["parsing_errors"]
    unread = Skipped(f"{errors} file(s) Checkov could not parse", "not scanned by Checkov")
    return Report(
        scanner=FORMAT,
        origin=origin,
        findings=(),
        skipped=(unread,) if errors else (),
        summary={"": dict(summary)},
    )


def parse(data: Any, origin: str) -> Report:
    """Turn Checkov JSON output into findings (failed checks; passed ones as evidence)."""
    if not sniff(data):
        raise ReportError(f"{origin}: not a Checkov JSON report (no 'check_type' and 'results')")
    if _nothing_scanned(data):
        return _empty(data, origin)
    runs = data if isinstance(data, list) else [data]
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    summary: dict[str, Any] = {}
    passed: set[tuple[str, str]] = set()
    for run in (_Run.model_validate(r) for r in runs):
        check_type = run.check_type
        if isinstance(run.summary, Mapping):
            summary[check_type] = dict(run.summary)
        passed.update(_passed(run.results.passed_checks))
        failed = run.results.failed_checks
        failed = [] if failed is None else failed
        if not isinstance(failed, list):
            raise ReportError(f"{origin}: malformed Checkov report: 'failed_checks' is not a list")
        for i, raw in enumerate(failed):
            check = _Check.model_validate(raw) if isinstance(raw, Mapping) else None
            if check is None or check.check_id is None:
                raise ReportError(
                    f"{origin}: malformed Checkov report: {check_type} failed_checks[{i}] "
                    "has no check_id"
                )
            check_id = check.check_id
            doc = _document(check)
            ref = _ref(check, doc)
            if ref is None:
                skipped.append(
                    Skipped(f"{check_id} in {check.file_path}", "no resource kind and name")
                )
                continue
            control = scanner_map.to_control(FORMAT, check_id)
            name = check.check_name
            if control is None:
                skipped.append(
                    Skipped(
                        f"{check_id} on {ref}",
                        f"Checkov check {check_id} ({name or 'unnamed'}) has no equivalent "
                        "Kubescape control in bot/data/scanner_map.yaml",
                    )
                )
                continue
            findings.append(
                Finding(
                    control_id=control,
                    scanner=FORMAT,
                    scanner_ids=(check_id,),
                    severity=controls.severity(control, check.severity),
                    resource=ref,
                    container=only_container(doc) if control in PER_CONTAINER else None,
                    source=_source(check, check_type),
                    message=name,
                )
            )
    return Report(
        scanner=FORMAT,
        origin=origin,
        findings=tuple(dict.fromkeys(findings)),
        skipped=tuple(dict.fromkeys(skipped)),
        summary=summary,
        passed=frozenset(passed),
    )
