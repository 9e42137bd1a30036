"""Kyverno policy reports: ``PolicyReport`` / ``ClusterPolicyReport`` (wgpolicyk8s.io v1alpha2,
v1beta1) and their successors ``Report`` / ``ClusterReport`` (openreports.io), one report or a
kubectl ``List`` of them, JSON or YAML.

Each ``results[]`` entry names ``policy``, ``rule``, ``result`` (pass/fail/warn/error/skip) and
the resource: in ``resources[]`` (Kyverno before 1.11, one report per namespace) or in the
report's ``scope`` (one report per resource; ``ownerReferences`` when scope is absent).

A ``fail`` or ``warn`` result of a mapped policy is a `Finding`; the failing path in the message
(``failed at path /spec/template/spec/containers/0/resources/limits/``) picks the control when a
policy covers several, and becomes a ``failed`` hint naming the container index (Kyverno does not
name containers). ``error`` results are `Skipped` with Kyverno's message. A ``validate.podSecurity``
rule names the Pod Security Standards checks it failed in ``properties.controlsJSON`` /
``controls``: each check with an equivalent (scanner_map ``kyverno-pss``) is a finding, hinted by
the fields the message says are forbidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from bot import controls, scanner_map
from bot.cluster import CustomResource
from bot.errors import RemedyError, ReportError
from bot.safe_load import load_json
from bot.sources._payload import ListUnlessFalsy, OrEmpty, OrNone, Payload, Raw, Str, Text, empty
from bot.sources.base import Report, Skipped, one_or_list
from fixers.model import Finding, FixHint, ResourceRef

FORMAT = "kyverno"

_GROUPS = ("wgpolicyk8s.io/", "openreports.io/")
CLUSTER_RESOURCES = (
    CustomResource("wgpolicyk8s.io", "v1alpha2", "policyreports"),
    CustomResource("wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports", namespaced=False),
    CustomResource("openreports.io", "v1alpha1", "reports"),
    CustomResource("openreports.io", "v1alpha1", "clusterreports", namespaced=False),
)
"""Where Kyverno keeps its reports in a cluster (openreports.io from Kyverno 1.15 on, when
enabled); `bot.sources.fetch_from_cluster` reads whichever the cluster serves."""
_KINDS = {"PolicyReport", "ClusterPolicyReport", "Report", "ClusterReport"}
_FAILED = {"fail", "warn"}
_PATH = re.compile(r"failed at path (?P<path>/\S*)")
_JSON_POINTER_INDEX = re.compile(r"/(\d+)(?=/|$)")
_PSS_FIELD = re.compile(r"\b(spec\.[A-Za-z0-9_.\[\]]+?)\s+is forbidden")
PSS = "kyverno-pss"
"""The scanner_map table of Pod Security Standards check ids (``validate.podSecurity`` rules)."""


class _Subject(Payload):
    """A resource a result names (``resources[]``, ``scope`` or an owner reference)."""

    apiVersion: Text = ""
    kind: Text = ""
    namespace: Text = ""
    name: Text = ""


class _Properties(Payload):
    controlsJSON: Text = ""
    controls: Str = None


_Subjects = Annotated[list[Annotated[_Subject | None, OrNone]] | None, ListUnlessFalsy]
"""Resources named in a list: [] when missing or empty, None when it is no list."""


class _Result(Payload):
    policy: Text = ""
    rule: Text = ""
    result: Text = ""
    message: Text = ""
    severity: Raw = None
    resources: _Subjects = []
    properties: Annotated[_Properties | None, OrNone] = None


class _Metadata(Payload):
    namespace: Text = ""
    ownerReferences: _Subjects = []


class _Report(Payload):
    kind: Text = ""
    metadata: Annotated[_Metadata, OrEmpty] = empty(_Metadata)
    scope: Annotated[_Subject | None, OrNone] = None
    results: Annotated[list[Annotated[_Result | None, OrNone]] | None, ListUnlessFalsy] = []
    """None when it is no list; an item that is no mapping is None."""
    summary: Raw = None


def _is_report(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and str(item.get("apiVersion", "")).startswith(_GROUPS)
        and str(item.get("kind")) in _KINDS
    )


def sniff(data: Any) -> bool:
    """A policy report, or a kubectl ``List`` of policy reports."""
    return one_or_list(data, _is_report)


def failed_path(message: str) -> str:
    """The JSON pointer Kyverno names in ``failed at path /...``, or ''."""
    match = _PATH.search(message)
    return match.group("path") if match else ""


def _hint_path(pointer: str) -> str:
    """``/spec/template/spec/containers/0/resources/`` -> ``spec.template.spec.containers[0].resources``."""
    dotted = _JSON_POINTER_INDEX.sub(r"[\1]", pointer.strip("/")).replace("/", ".")
    return dotted.replace(".[", "[")


def _refs(result: _Result, report: _Report, origin: str) -> Iterable[ResourceRef]:
    meta = report.metadata
    default_ns = "" if report.kind.startswith("Cluster") else meta.namespace
    subjects = result.resources
    if subjects == []:
        owners = meta.ownerReferences
        subjects = [report.scope] if report.scope is not None else owners and owners[:1]
    if subjects is None:
        raise ReportError(f"{origin}: malformed policy report: 'resources' is not a list")
    for subject in subjects:
        if subject is None or not subject.kind or not subject.name:
            continue
        yield ResourceRef(
            api_version=subject.apiVersion,
            kind=subject.kind,
            namespace=subject.namespace or default_ns or None,
            name=subject.name,
        )


def _read(
    report: _Report,
    origin: str,
    findings: list[Finding],
    skipped: list[Skipped],
    passed: set[tuple[str, str]],
) -> None:
    if report.results is None:
        raise ReportError(f"{origin}: malformed policy report: 'results' is not a list")
    for i, result in enumerate(report.results):
        if result is None:
            raise ReportError(f"{origin}: malformed policy report: results[{i}] is not a mapping")
        outcome = result.result.lower()
        policy = result.policy
        if outcome == "pass":
            control = scanner_map.to_control(FORMAT, policy)
            if control is not None:  # policies covering several controls are no evidence
                entry = scanner_map.entries(FORMAT).get(policy, {})
                if not entry.get("by_path"):
                    passed.update((control, r.key) for r in _refs(result, report, origin))
            continue
        if outcome not in _FAILED and outcome != "error":
            continue
        rule = result.rule
        message = " ".join(result.message.split())
        refs = list(_refs(result, report, origin))
        where = f"{policy}/{rule}" if rule else policy
        if not refs:
            skipped.append(Skipped(where, "the result names no resource"))
            continue
        for ref in refs:
            if outcome == "error":
                skipped.append(
                    Skipped(
                        f"{where} on {ref}",
                        f"Kyverno could not evaluate the rule: {message or 'no message'}",
                    )
                )
                continue
            pointer = failed_path(message)
            control = scanner_map.to_control(FORMAT, policy, pointer)
            if control is not None:
                hints: tuple[FixHint, ...] = (
                    (FixHint(kind="failed", path=_hint_path(pointer)),) if pointer else ()
                )
                matched = [(control, where, hints)]
            else:
                matched = list(_pod_security(result, where, message))
            if not matched:
                pss = ", ".join(_pss_ids(result))
                skipped.append(
                    Skipped(
                        f"{where} on {ref}",
                        f"Kyverno policy {policy!r} has no equivalent Kubescape control in "
                        "bot/data/scanner_map.yaml"
                        + (f" (Pod Security Standards controls: {pss})" if pss else ""),
                    )
                )
                continue
            for control, scanner_id, hints in matched:
                findings.append(
                    Finding(
                        control_id=control,
                        scanner=FORMAT,
                        scanner_ids=(scanner_id,),
                        severity=controls.severity(control, result.severity),
                        resource=ref,
                        hints=hints,
                        message=message,
                    )
                )


def _pss_ids(result: _Result) -> list[str]:
    """The Pod Security Standards checks a ``validate.podSecurity`` result names."""
    properties = result.properties
    if properties is None:
        return []
    try:
        listed = load_json(properties.controlsJSON or "[]", "controlsJSON")
    except RemedyError:
        listed = []
    ids = [str(c["ID"]) for c in listed if isinstance(c, Mapping) and c.get("ID")]
    if not ids and properties.controls is not None:
        ids = [i.strip() for i in properties.controls.split(",") if i.strip()]
    return list(dict.fromkeys(ids))


def _pod_security(
    result: _Result, where: str, message: str
) -> Iterable[tuple[str, str, tuple[FixHint, ...]]]:
    """(control, scanner id, hints) per mapped PSS check of a podSecurity result; the fields the
    message names as forbidden pick the control (hostNetwork or hostPID) and become hints."""
    fields = list(dict.fromkeys(_PSS_FIELD.findall(message)))
    seen: set[str] = set()
    for pss in _pss_ids(result):
        entry = scanner_map.entries(PSS).get(pss)
        if not entry:
            continue
        own = [f for f in fields if any(part in f for part in entry.get("fields") or ())]
        by_control: dict[str, list[str]] = {}
        for field in own or [""]:
            control = scanner_map.to_control(PSS, pss, field)
            if control is not None:
                by_control.setdefault(control, []).extend([field] if field else [])
        for control, paths in by_control.items():
            if control not in seen:
                seen.add(control)
                hints = tuple(FixHint(kind="failed", path=p) for p in paths)
                yield control, f"{where} ({pss})", hints


def parse(data: Any, origin: str) -> Report:
    """Turn policy reports into findings (failed and warned results only)."""
    if not sniff(data):
        raise ReportError(f"{origin}: not a Kyverno PolicyReport or ClusterPolicyReport")
    reports = data["items"] if not _is_report(data) else [data]
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    totals: dict[str, int] = {}
    passed: set[tuple[str, str]] = set()
    for raw in reports:
        report = _Report.model_validate(raw)
        _read(report, origin, findings, skipped, passed)
        summary = report.summary
        if isinstance(summary, Mapping):
            for key, value in summary.items():
                if isinstance(value, int):
                    totals[str(key)] = totals.get(str(key), 0) + value
    return Report(
        scanner=FORMAT,
        origin=origin,
        findings=tuple(dict.fromkeys(findings)),
        skipped=tuple(dict.fromkeys(skipped)),
        summary=totals,
        passed=frozenset(passed),
    )
