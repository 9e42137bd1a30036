"""``remedy plan|apply --output json``: the plan as one JSON document for CI jobs.

The shape is documented in docs/output-schema.md and fixed by the JSON Schema
docs/output-schema.json (tests/test_cli_output.py validates real output against it). Every
finding of the report appears once per outcome it has: ``fixed`` (with the change set key),
``already-compliant``, ``waived`` (proposed by the bot from the workload's intent, or configured
in ``.remedy.yaml``) or ``not-fixed`` (with its category and reason); results no finding came from
(unmapped scanner checks) are listed under ``unmapped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.lifecycle import SyncDecision
from bot.model import Unfixable
from bot.plan import Plan
from bot.sources.base import Report
from fixers.intent import WAIVE_PREFIX
from fixers.model import Finding

SCHEMA_VERSION = 1


def _finding(finding: Finding, outcome: str, **fields: Any) -> dict[str, Any]:
    ref = finding.resource
    return {
        "control": finding.control_id,
        "scanner": finding.scanner,
        "scanner_ids": list(finding.scanner_ids),
        "severity": finding.severity.name.lower(),
        "resource": {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name},
        "container": finding.container,
        "file": finding.source.path,
        "outcome": outcome,
        **fields,
    }


def _left(item: Unfixable, waiver_key: str | None) -> dict[str, Any]:
    if item.reason.startswith(WAIVE_PREFIX):
        reason = item.reason.removeprefix(WAIVE_PREFIX)
        return _finding(
            item.finding, "waived", waiver="proposed", change_set=waiver_key, reason=reason
        )
    if item.category == "ignored":
        return _finding(item.finding, "waived", waiver="configured", reason=item.reason)
    return _finding(item.finding, "not-fixed", category=item.category, reason=item.reason)


def plan_document(
    command: str,
    report: Report,
    plan: Plan,
    exit_code: int,
    scores: Mapping[str, tuple[float, float]],
    decisions: Sequence[SyncDecision] | None = None,
) -> dict[str, Any]:
    """The JSON document of one ``plan`` or ``apply`` (``decisions``: what apply published)."""
    waiver_key = next((cs.key for cs in plan.change_sets if cs.meta.get("kind") == "waiver"), None)
    findings = [
        _finding(f, "fixed", change_set=cs.key) for cs in plan.change_sets for f in cs.fixed
    ]
    findings += [_finding(f, "already-compliant") for f in plan.already_compliant]
    findings += [_left(u, waiver_key) for u in plan.unfixable]
    counts = {name: 0 for name in ("fixed", "already-compliant", "waived", "not-fixed")}
    for entry in findings:
        counts[entry["outcome"]] += 1
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "exit_code": exit_code,
        "summary": {
            "findings": len(findings),
            **{name.replace("-", "_"): n for name, n in counts.items()},
            "unmapped": len(report.skipped),
            "change_sets": len(plan.change_sets),
        },
        "change_sets": [
            {
                "key": cs.key,
                "title": cs.title,
                "family": cs.family,
                "risk": cs.risk.label,
                "controls": list(cs.controls),
                "resources": sorted({f.resource.key for f in cs.findings}),
                "files": [{"path": c.path, "new": c.is_new} for c in cs.files],
                "waiver": cs.meta.get("kind") == "waiver",
            }
            for cs in plan.change_sets
        ],
        "findings": findings,
        "unmapped": [{"result": s.what, "reason": s.reason} for s in report.skipped],
        "scores": [
            {"framework": name, "now": now, "if_merged": merged}
            for name, (now, merged) in scores.items()
        ],
        "notes": list(plan.notes),
    }
    if decisions is not None:
        document["published"] = [
            {"action": d.action, "change_set": d.key, "branch": d.branch, "reason": d.reason}
            for d in decisions
        ]
    return document
