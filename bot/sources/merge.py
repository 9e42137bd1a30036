"""Several reports read as one (``remedy plan --report A --report B``).

Findings are concatenated as they are: the planner's `bot.plan.dedupe` makes one finding of the
same control on the same resource and container, whichever scanners reported it, and keeps
every scanner's id. Skipped results are kept, embedded resources merged (first report wins) and
the Kubescape framework scores, when one report has them, stay where `bot.score` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.errors import ReportError
from bot.sources.base import PassedChecks, Report


def merge_reports(reports: Sequence[Report]) -> Report:
    """One `Report` of all ``reports``; scanner and origin are joined with ``+``."""
    if not reports:
        raise ReportError("no report to read: give at least one --report")
    if len(reports) == 1:
        return reports[0]
    resources: dict[str, Mapping[str, Any]] = {}
    for report in reports:
        for key, obj in report.resources.items():
            resources.setdefault(key, obj)
    scored = next((r for r in reports if r.summary.get("frameworks")), None)
    summary: dict[str, Any] = dict(scored.summary) if scored else {}
    summary["scanners"] = {
        f"{r.scanner} ({r.origin})": dict(r.summary) for r in reports if r.summary
    }
    return Report(
        scanner="+".join(dict.fromkeys(r.scanner for r in reports)),
        origin="+".join(r.origin for r in reports),
        findings=tuple(f for r in reports for f in r.findings),
        skipped=tuple(s for r in reports for s in r.skipped),
        resources=resources,
        summary=summary,
        passed=PassedChecks(pair for r in reports for pair in r.passed),
    )
