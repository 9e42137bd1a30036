"""Trivy misconfiguration reports: ``trivy config``, ``trivy k8s`` and Trivy-Operator CRs.

Three shapes are read:

- ``trivy config|fs|repo -f json`` (SchemaVersion 2): ``Results[]`` per scanned file
  (``Target``), each with ``Misconfigurations[]`` (``ID`` ``KSV-0001`` or ``KSV001``, ``Status``
  FAIL/PASS, ``Message``, ``CauseMetadata`` with the line range). Helm charts are rendered by
  Trivy: ``Type: helm``, ``Target`` is the template and ``ArtifactName`` the chart.
- ``trivy k8s -f json``: ``ClusterName`` with ``Resources[]`` (``Kind``/``Namespace``/``Name``
  and ``Results``), or the older split ``Misconfigurations[]``/``Vulnerabilities[]`` lists.
- Trivy-Operator ``ConfigAuditReport`` (and the cluster/RBAC/infra variants),
  ``aquasecurity.github.io/v1alpha1``: ``report.checks[]`` with ``checkID`` and ``success``,
  the scanned object in the ``trivy-operator.resource.*`` labels; a kubectl ``List`` of them.

Trivy names the resource and container in its messages (``Container 'app' of Deployment 'web'
should ...``); messages that name neither (``Either Pod or Container should ...``) take the
resource named by another check on the same lines of the same file, or the YAML document at that
line when the scanned file is readable. Vulnerabilities and secrets are reported as `Skipped`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field

from bot import controls, scanner_map
from bot.cluster import CustomResource
from bot.errors import ReportError
from bot.sources._payload import (
    ListOrEmpty,
    ListUnlessFalsy,
    ObjectsOnly,
    OrEmpty,
    OrNone,
    Payload,
    Raw,
    Str,
    Text,
    empty,
)
from bot.sources.base import KNOWN_KINDS, Report, Skipped
from fixers.model import Finding, ResourceRef, SourceHint

FORMAT = "trivy"

VULNERABILITY_REASON = "image vulnerabilities are fixed by rebuilding images, not in cd-config"
SECRET_REASON = "secrets found in files must be rotated and removed by a person"


_CONTAINER = re.compile(
    r"\b[Cc]ontainer (?:['\"](?P<quoted>[^'\"]+)['\"] of |(?P<bare>[a-z0-9][a-z0-9.-]*) in "
    r"(?=[A-Za-z]+ [a-z0-9][a-z0-9.-]* \(namespace: ))"
)
_QUOTED = re.compile(r"\b['\"]?(?P<kind>[A-Za-z]+)['\"]? ['\"](?P<name>[^'\"]+)['\"]")
_BARE_NS = re.compile(
    r"\b(?P<kind>[A-Za-z]+) (?P<name>[a-z0-9][a-z0-9.-]*) \(namespace: (?P<ns>[a-z0-9-]+)\)"
)
_UNQUOTED = re.compile(
    r"\b(?P<kind>[A-Za-z]+) (?P<name>[a-z0-9][a-z0-9.-]*) in ['\"]?(?P<ns>[a-z0-9-]+)['\"]? "
    r"namespace"
)
_NAMESPACE = re.compile(r"\bin ['\"]?(?P<ns>[a-z0-9-]+)['\"]? namespace\b")
UNSPECIFIED_NAMESPACES = frozenset({"default", "null"})
"""What a file scan says for a resource that sets no namespace: Trivy fills in "default" for
manifests (so does Checkov) and prints "null" for the templates of a chart it renders."""
_POD_TEMPLATE_HASH = re.compile(r"^(?P<owner>.+)-[bcdfghjklmnpqrstvwxz2456789]{5,10}$")
"""A ReplicaSet a Deployment made: ``<deployment>-<pod-template-hash>`` (safe alphabet)."""

_OPERATOR_KINDS = {
    "ConfigAuditReport",
    "ClusterConfigAuditReport",
    "RbacAssessmentReport",
    "ClusterRbacAssessmentReport",
    "InfraAssessmentReport",
    "ClusterInfraAssessmentReport",
}
CLUSTER_RESOURCES = tuple(
    CustomResource("aquasecurity.github.io", "v1alpha1", plural, namespaced=namespaced)
    for plural, namespaced in (
        ("configauditreports", True),
        ("clusterconfigauditreports", False),
        ("rbacassessmentreports", True),
        ("clusterrbacassessmentreports", False),
        ("infraassessmentreports", True),
        ("clusterinfraassessmentreports", False),
    )
)
"""The Trivy-Operator reports `bot.sources.fetch_from_cluster` reads (configuration only)."""
_OPERATOR_SKIPPED = {
    "VulnerabilityReport": VULNERABILITY_REASON,
    "ClusterVulnerabilityReport": VULNERABILITY_REASON,
    "ExposedSecretReport": SECRET_REASON,
    "SbomReport": "an SBOM lists image contents; it holds no configuration finding",
    "ClusterComplianceReport": "a compliance summary; read the per-resource reports instead",
}


# --------------------------------------------------------------------------- raw payload


class _Cause(Payload):
    StartLine: Raw = None
    EndLine: Raw = None
    Resource: Raw = None


class _Misconf(Payload):
    """One check of a scanned file or resource."""

    ID: Str = None
    Status: Text = ""
    Title: Text = ""
    Message: Text = ""
    Severity: Raw = None
    CauseMetadata: Annotated[_Cause, OrEmpty] = empty(_Cause)


def _objects_or_none(value: Any) -> Any:
    """A list of JSON objects as it is; None for a list with anything else in it."""
    return value if value is not None and all(isinstance(v, Mapping) for v in value) else None


class _Result(Payload):
    """What Trivy found in one target (a file, an image)."""

    Target: Raw = None
    Type: Text = ""
    Misconfigurations: Annotated[
        list[_Misconf] | None, BeforeValidator(_objects_or_none), ListUnlessFalsy
    ] = []
    """None when it is no list of objects."""
    Vulnerabilities: Raw = None
    Secrets: Raw = None


class _ConfigReport(Payload):
    ArtifactName: Text = ""
    Results: list[Annotated[_Result | None, OrNone]]


class _K8sResource(Payload):
    Kind: Raw = None
    Name: Raw = None
    Namespace: Raw = None
    Results: Annotated[list[_Result], ObjectsOnly] = []


class _K8sReport(Payload):
    Resources: Annotated[list[Annotated[_K8sResource | None, OrNone]], ListOrEmpty] = []
    Misconfigurations: Annotated[list[Annotated[_K8sResource | None, OrNone]], ListOrEmpty] = []
    Vulnerabilities: Annotated[list[Annotated[_K8sResource | None, OrNone]], ListOrEmpty] = []


class _Labels(Payload):
    kind: Raw = Field(None, alias="trivy-operator.resource.kind")
    name: Raw = Field(None, alias="trivy-operator.resource.name")
    namespace: Raw = Field(None, alias="trivy-operator.resource.namespace")


class _Owner(Payload):
    kind: Raw = None
    name: Raw = None


class _OperatorMeta(Payload):
    name: Raw = ""
    namespace: Raw = None
    labels: Annotated[_Labels, OrEmpty] = empty(_Labels)
    ownerReferences: Raw = None


class _Check(Payload):
    """One check of a Trivy-Operator report."""

    checkID: Raw = None
    ID: Raw = None
    success: Raw = False
    title: Text = ""
    severity: Raw = None
    messages: Raw = None


class _OperatorReport(Payload):
    kind: Text = ""
    metadata: Annotated[_OperatorMeta, OrEmpty] = empty(_OperatorMeta)
    report: Raw = None


# --------------------------------------------------------------------------- detection


def _is_operator_cr(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and str(item.get("apiVersion", "")).startswith("aquasecurity.github.io/")
        and str(item.get("kind")) in (_OPERATOR_KINDS | set(_OPERATOR_SKIPPED))
    )


def _nothing_scanned(data: Mapping[str, Any]) -> bool:
    """``trivy config -f json`` of a directory with nothing it could scan: the report's head
    (schema version, Trivy's version, the artifact) and no ``Results`` at all."""
    return (
        "Results" not in data
        and isinstance(data.get("SchemaVersion"), int)
        and isinstance(data.get("Trivy"), Mapping)
        and isinstance(data.get("ArtifactName"), str)
    )


def sniff(data: Any) -> bool:
    """A Trivy JSON report (config/fs/k8s) or Trivy-Operator report CRs (one or a List)."""
    if not isinstance(data, Mapping):
        return False
    if isinstance(data.get("Results"), list) and (
        "SchemaVersion" in data or "ArtifactName" in data
    ):
        return True
    if _nothing_scanned(data):
        return True
    if "ClusterName" in data and any(
        isinstance(data.get(k), list) for k in ("Resources", "Misconfigurations", "Vulnerabilities")
    ):
        return True
    if _is_operator_cr(data):
        return True
    items = data.get("items")
    return (
        data.get("kind") == "List"
        and isinstance(items, list)
        and bool(items)
        and all(_is_operator_cr(i) for i in items)
    )


# --------------------------------------------------------------------------- message parsing


@dataclass(frozen=True)
class Named:
    """What a Trivy message says about the failing object."""

    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    container: str | None = None


def read_message(message: str) -> Named:
    """Kind, name, namespace and container named by a Trivy (or Trivy-Operator) message."""
    container_match = _CONTAINER.search(message)
    container = None
    rest = message
    if container_match:
        container = container_match.group("quoted") or container_match.group("bare")
        rest = message[container_match.end() :]
    kind = name = namespace = None
    for pattern in (_QUOTED, _BARE_NS, _UNQUOTED):
        for m in pattern.finditer(rest):
            if m.group("kind").lower() in KNOWN_KINDS:
                kind, name = KNOWN_KINDS[m.group("kind").lower()], m.group("name")
                namespace = m.groupdict().get("ns")
                break
        if kind is not None:
            break
    if namespace is None:
        ns = _NAMESPACE.search(message)
        namespace = ns.group("ns") if ns else None
    return Named(kind, name, namespace, container)


def _resource_field(value: Any) -> Named:
    """``CauseMetadata.Resource`` when it reads ``Kind/name`` or ``Kind/namespace/name``."""
    if not isinstance(value, str) or "/" not in value:
        return Named()
    parts = value.split("/")
    if parts[0].lower() not in KNOWN_KINDS or not parts[-1]:
        return Named()
    namespace = parts[1] if len(parts) == 3 else None
    return Named(KNOWN_KINDS[parts[0].lower()], parts[-1], namespace or None)


# --------------------------------------------------------------------------- findings


class _Builder:
    """Collects findings and skipped results of one report."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.findings: list[Finding] = []
        self.skipped: list[Skipped] = []
        self.passed: set[tuple[str, str]] = set()

    def add_passed(self, checks: list[_Misconf], ref: ResourceRef | None) -> None:
        """Trivy's successes (``--include-non-failures``): evidence a fix was resolved."""
        for misconf in checks:
            if _failed(misconf):
                continue
            control = scanner_map.to_control(FORMAT, misconf.ID or "")
            named = _resource_field(misconf.CauseMetadata.Resource)
            own = _ref(named, file_scan=True) if named.kind else ref
            if control and own is not None:
                self.passed.add((control, own.key))

    def add(
        self,
        raw_id: str,
        title: str,
        severity: Any,
        message: str,
        ref: ResourceRef,
        container: str | None,
        source: SourceHint,
    ) -> None:
        control = scanner_map.to_control(FORMAT, raw_id)
        if control is None:
            self.skipped.append(
                Skipped(
                    f"{raw_id} on {ref}",
                    f"Trivy check {raw_id} ({title or 'untitled'}) has no equivalent Kubescape "
                    "control in bot/data/scanner_map.yaml",
                )
            )
            return
        self.findings.append(
            Finding(
                control_id=control,
                scanner=FORMAT,
                scanner_ids=(raw_id,),
                severity=controls.severity(control, severity),
                resource=ref,
                container=container,
                source=source,
                message=message or title,
            )
        )

    def report(self, summary: Mapping[str, Any] | None = None) -> Report:
        # A check Trivy reports twice on one object (once with lines, once without) is one.
        unique: dict[tuple[Any, ...], Finding] = {}
        for finding in self.findings:
            key = (*finding.identity, finding.source.path, finding.scanner_ids)
            if key not in unique or unique[key].source.line is None:
                unique[key] = finding
        return Report(
            scanner=FORMAT,
            origin=self.origin,
            findings=tuple(unique.values()),
            skipped=tuple(dict.fromkeys(self.skipped)),
            summary=dict(summary or {}),
            passed=frozenset(self.passed),
        )


def _failed(misconf: _Misconf) -> bool:
    return (misconf.Status or "FAIL").upper() == "FAIL"


def _skip_non_config(builder: _Builder, result: _Result, where: str) -> None:
    vulns = result.Vulnerabilities or []
    if vulns:
        builder.skipped.append(
            Skipped(f"{len(vulns)} image vulnerabilities in {where}", VULNERABILITY_REASON)
        )
    secrets = result.Secrets or []
    if secrets:
        builder.skipped.append(Skipped(f"{len(secrets)} secrets in {where}", SECRET_REASON))


def _checks(result: _Result, origin: str) -> list[_Misconf]:
    if result.Misconfigurations is None:
        raise ReportError(f"{origin}: malformed Trivy report: 'Misconfigurations' is not a list")
    return result.Misconfigurations


def _misconfigs(checks: list[_Misconf]) -> list[tuple[_Misconf, str]]:
    """The failed checks that have an id, with it."""
    return [(m, m.ID) for m in checks if _failed(m) and m.ID is not None]


def _lines(misconf: _Misconf) -> tuple[int | None, int | None]:
    start, end = misconf.CauseMetadata.StartLine, misconf.CauseMetadata.EndLine
    start = start if isinstance(start, int) and start > 0 else None
    end = end if isinstance(end, int) and end > 0 else start
    return start, end


def _documents_by_line(path: Path) -> list[tuple[int, int, Named]]:
    """(first line, last line, kind/name/namespace) of each document of a YAML file, 1-based."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return []
    spans = []
    for node in nodes:
        if not isinstance(node, yaml.MappingNode):
            continue
        doc = yaml.safe_load(yaml.serialize(node))
        meta = doc.get("metadata") if isinstance(doc, Mapping) else None
        if not isinstance(meta, Mapping) or not isinstance(doc.get("kind"), str):
            continue
        named = Named(str(doc["kind"]), str(meta.get("name", "")), meta.get("namespace"))
        spans.append((node.start_mark.line + 1, node.end_mark.line + 1, named))
    return spans


def _ref(named: Named, *, file_scan: bool) -> ResourceRef | None:
    if not named.kind or not named.name:
        return None
    namespace = named.namespace
    if file_scan and namespace in UNSPECIFIED_NAMESPACES:
        namespace = None
    return ResourceRef(kind=named.kind, namespace=namespace, name=named.name)


def _parse_config(data: _ConfigReport, builder: _Builder) -> None:
    artifact = data.ArtifactName
    for i, result in enumerate(data.Results):
        if result is None:
            raise ReportError(f"{builder.origin}: malformed Trivy report: Results[{i}]")
        target = str(result.Target or "")
        _skip_non_config(builder, result, target or artifact)
        checks = _checks(result, builder.origin)
        builder.add_passed(checks, None)
        misconfs = _misconfigs(checks)
        if not misconfs:
            continue
        helm = result.Type.lower() == "helm"
        # Resources the messages name, with the lines their checks point at: checks whose
        # message names nothing borrow the resource of the same lines.
        parsed: list[tuple[_Misconf, Named, int | None, int | None]] = []
        for misconf, _ in misconfs:
            named = _resource_field(misconf.CauseMetadata.Resource)
            said = read_message(misconf.Message)
            if not named.kind:
                named = Named(said.kind, said.name, said.namespace, said.container)
            else:
                named = Named(named.kind, named.name, named.namespace, said.container)
            if named.namespace in UNSPECIFIED_NAMESPACES:
                named = Named(named.kind, named.name, None, named.container)
            parsed.append((misconf, named, *_lines(misconf)))
        # Older checks omit the namespace that newer ones name: one resource, one namespace.
        namespaces = {(n.kind, n.name): n.namespace for _, n, _, _ in parsed if n.namespace}
        parsed = [
            (m, Named(n.kind, n.name, namespaces.get((n.kind, n.name)), n.container), a, b)
            for m, n, a, b in parsed
        ]
        named_spans = [(a, b, n) for _, n, a, b in parsed if n.kind]
        file_docs: list[tuple[int, int, Named]] | None = None
        for misconf, named, start, end in parsed:
            if not named.kind:
                named = _borrow(named_spans, start, end)
            if not named.kind and not helm:
                if file_docs is None:
                    file_docs = _documents_by_line(_scanned_file(artifact, target))
                named = _borrow([(a, b, n) for a, b, n in file_docs], start)
            raw_id = str(misconf.ID)
            title = misconf.Title
            ref = _ref(named, file_scan=True)
            if ref is None:
                builder.skipped.append(
                    Skipped(
                        f"{raw_id} in {target}",
                        "Trivy's message names no resource and the file could not be read to "
                        "tell which one failed",
                    )
                )
                continue
            source = SourceHint(
                path=target or None,
                chart_path=(artifact or None) if helm else None,
                line=start,
            )
            builder.add(
                raw_id, title, misconf.Severity, misconf.Message, ref, named.container, source
            )


def _borrow(
    spans: Iterable[tuple[int | None, int | None, Named]],
    line: int | None,
    end: int | None = None,
) -> Named:
    """The one named resource of a file, or the one whose lines hold ``line``; with the
    container of checks that point at exactly the same lines (one container's block)."""
    spans = list(spans)
    same_lines = {
        (n.kind, n.name, n.namespace, n.container)
        for a, b, n in spans
        if line is not None and (a, b) == (line, end) and n.container
    }
    if len(same_lines) == 1:
        return Named(*next(iter(same_lines)))
    distinct = {(n.kind, n.name, n.namespace): n for _, _, n in spans}
    if len(distinct) == 1:
        only = next(iter(distinct.values()))
        return Named(only.kind, only.name, only.namespace)
    if line is not None:
        holding = {
            (n.kind, n.name, n.namespace): n
            for a, b, n in spans
            if a is not None and b is not None and a <= line <= b
        }
        if len(holding) == 1:
            only = next(iter(holding.values()))
            return Named(only.kind, only.name, only.namespace)
    return Named()


def _scanned_file(artifact: str, target: str) -> Path:
    base = Path(artifact) if artifact else Path()
    try:
        is_dir = base.is_dir()
    except OSError:  # a name no file system takes (too long, ...): not a scanned directory
        is_dir = False
    return base / target if is_dir else Path(target)


def _parse_k8s(data: _K8sReport, builder: _Builder) -> None:
    resources = [*data.Resources, *data.Misconfigurations, *data.Vulnerabilities]
    for i, resource in enumerate(resources):
        if resource is None:
            raise ReportError(f"{builder.origin}: malformed Trivy k8s report: resource #{i}")
        kind, name, namespace = resource.Kind, resource.Name, resource.Namespace or None
        where = f"{kind}/{resource.Namespace or ''}/{name}"
        own = (
            ResourceRef(kind=str(kind), namespace=namespace, name=str(name))
            if kind and name
            else None
        )
        for result in resource.Results:
            _skip_non_config(builder, result, f"{where} ({result.Target})")
            checks = _checks(result, builder.origin)
            if own is not None:
                builder.add_passed(checks, own)
            for misconf, raw_id in _misconfigs(checks):
                said = read_message(misconf.Message)
                ref = own if own is not None else _ref(said, file_scan=False)
                if ref is None:
                    builder.skipped.append(
                        Skipped(f"{raw_id} in {where}", "no resource kind and name")
                    )
                    continue
                builder.add(
                    raw_id,
                    misconf.Title,
                    misconf.Severity,
                    misconf.Message,
                    ref,
                    said.container,
                    SourceHint(),
                )


def _parse_operator(cr: _OperatorReport, builder: _Builder) -> None:
    kind = cr.kind
    meta = cr.metadata
    if kind in _OPERATOR_SKIPPED:
        builder.skipped.append(Skipped(f"{kind} {meta.name}", _OPERATOR_SKIPPED[kind]))
        return
    labels = meta.labels
    owners = [
        _Owner.model_validate(o) for o in meta.ownerReferences or () if isinstance(o, Mapping)
    ]
    res_kind = labels.kind or (owners[0].kind if owners else None)
    res_name = labels.name or (owners[0].name if owners else None)
    namespace = labels.namespace or meta.namespace
    report = cr.report
    if not isinstance(report, Mapping) or not isinstance(report.get("checks") or [], list):
        raise ReportError(f"{builder.origin}: malformed {kind}: no 'report.checks' list")
    if not res_kind or not res_name:
        builder.skipped.append(
            Skipped(f"{kind} {meta.name}", "the report does not name the scanned object")
        )
        return
    res_kind, res_name, note = str(res_kind), str(res_name), ""
    hashed = _POD_TEMPLATE_HASH.match(res_name)
    if res_kind == "ReplicaSet" and hashed and any(o.kind == "ReplicaSet" for o in owners):
        # Trivy-Operator audits the ReplicaSet a Deployment rolled out; cd-config holds the
        # Deployment, whose name is the ReplicaSet's without the pod-template-hash.
        note = f" (seen on ReplicaSet {res_name})"
        res_kind, res_name = "Deployment", hashed.group("owner")
    ref = ResourceRef(
        kind=res_kind,
        namespace=(namespace or None) if not kind.startswith("Cluster") else None,
        name=res_name,
    )
    for raw in report.get("checks") or ():
        if not isinstance(raw, Mapping):
            continue
        check = _Check.model_validate(raw)
        if check.success is not False:
            continue
        raw_id = str(check.checkID or check.ID or "")
        if not raw_id:
            continue
        messages = [str(m) for m in check.messages or () if m] or [""]
        for message in messages:
            said = read_message(message)
            builder.add(
                raw_id,
                check.title,
                check.severity,
                (message or check.title) + note,
                ref,
                said.container,
                SourceHint(),
            )


# --------------------------------------------------------------------------- parse


def parse(data: Any, origin: str) -> Report:
    """Turn a Trivy report into findings (failed misconfiguration checks only)."""
    if not sniff(data):
        raise ReportError(f"{origin}: not a Trivy JSON report or Trivy-Operator report")
    builder = _Builder(origin)
    if _nothing_scanned(data):
        return builder.report()  # a scan that found nothing to check: no finding
    if isinstance(data.get("Results"), list):
        _parse_config(_ConfigReport.model_validate(data), builder)
    elif "ClusterName" in data:
        _parse_k8s(_K8sReport.model_validate(data), builder)
    else:
        for cr in data.get("items") if data.get("kind") == "List" else [data]:
            _parse_operator(_OperatorReport.model_validate(cr), builder)
    return builder.report()
