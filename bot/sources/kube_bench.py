"""kube-bench JSON results (``kube-bench run --json``): CIS benchmark checks of the nodes.

``{"Controls": [{id, version, text, node_type, tests: [{section, desc, results: [{test_number,
test_desc, status, remediation, scored, ...}]}]}], "Totals": {...}}``; older releases wrote the
list of controls (or one control) without the wrapper.

kube-bench checks node and control-plane configuration (file permissions, kubelet and API
server flags): nothing in cd-config changes them. A ``FAIL`` becomes a `Finding` on the node
role (``Node`` named by ``node_type``) only when a Kubescape control is the same check (the CIS
number as a catalog alias, or `bot.scanner_map`), so the dashboard counts it with the other
scanners' findings; every other failure is `Skipped` with kube-bench's remediation text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError

from bot import controls, scanner_map
from bot.errors import ReportError
from bot.sources._payload import ObjectsOnly, Payload, Raw, Text
from bot.sources.base import Report, Skipped
from fixers.model import Finding, ResourceRef, Severity

FORMAT = "kube-bench"


class _Result(Payload):
    test_number: Text = ""
    test_desc: Text = ""
    status: Raw = None
    remediation: Text = ""


def _results(value: Any) -> list[Any]:
    if not value:
        return []
    if not isinstance(value, list):
        raise ValueError("results is not a list")
    return value


class _Group(Payload):
    results: Annotated[list[_Result], ObjectsOnly, BeforeValidator(_results)] = []


class _Control(Payload):
    node_type: Text = ""
    tests: list[_Group]


def _is_control(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and isinstance(item.get("tests"), list)
        and ("node_type" in item or "detected_version" in item)
    )


def _controls(data: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(data, Mapping) and isinstance(data.get("Controls"), list):
        items = data["Controls"]
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    return items if items and all(_is_control(i) for i in items) else None


def sniff(data: Any) -> bool:
    """kube-bench ``--json`` output: ``Controls`` with ``tests``, or the bare control list."""
    return _controls(data) is not None


def _canonical(test_number: str) -> str | None:
    return controls.canonical_id(f"CIS-{test_number}") or scanner_map.to_control(
        FORMAT, test_number
    )


def parse(data: Any, origin: str) -> Report:
    """Turn kube-bench results into findings (mapped FAILs) and skipped results (the rest)."""
    items = _controls(data)
    if items is None:
        raise ReportError(f"{origin}: not a kube-bench JSON report (no 'Controls' with 'tests')")
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    for item in items:
        try:
            control = _Control.model_validate(item)
        except ValidationError:
            raise ReportError(
                f"{origin}: malformed kube-bench report: a test's results is not a list"
            ) from None
        node_type = control.node_type or "node"
        for result in (r for group in control.tests for r in group.results):
            if str(result.status).upper() != "FAIL":
                continue
            number = result.test_number
            desc = " ".join(result.test_desc.split())
            remediation = " ".join(result.remediation.split())
            canonical = _canonical(number) if number else None
            if canonical is None:
                skipped.append(
                    Skipped(
                        f"CIS {number} on {node_type}: {desc}",
                        "node configuration is not in cd-config; kube-bench says: "
                        + (remediation or "no remediation given"),
                    )
                )
                continue
            known = controls.get(canonical)
            findings.append(
                Finding(
                    control_id=canonical,
                    scanner=FORMAT,
                    scanner_ids=(f"CIS-{number}",),
                    severity=known.severity_level if known else Severity.UNKNOWN,
                    resource=ResourceRef(api_version="v1", kind="Node", name=node_type),
                    message=f"{desc} (kube-bench remediation: {remediation})"
                    if remediation
                    else desc,
                )
            )
    totals = data.get("Totals") if isinstance(data, Mapping) else None
    return Report(
        scanner=FORMAT,
        origin=origin,
        findings=tuple(findings),
        skipped=tuple(skipped),
        summary=dict(totals) if isinstance(totals, Mapping) else {},
    )
