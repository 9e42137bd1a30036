"""Kubescape compliance scores per framework, before and after a merge request.

Kubescape 3 (kubescape/opa-utils ``score/score.go``: ``GetControlComplianceScore`` and
``GetFrameworkComplianceScore``) computes:

- control compliance score = 100 when the control's status is passed (this includes the
  "irrelevant" and "w/exceptions" sub-statuses), else ``passed / all`` resources x 100, where
  *all* counts passed, failed, skipped and excluded resources (0 when there are none: a skipped
  control with no resources scores 0);
- framework compliance score = the plain mean of its controls' compliance scores (scoreFactor
  does not weigh the compliance score; it weighs the separate *risk* score).

`framework_scores` applies exactly that to the per-framework control counters that the report
carries in ``summaryDetails.frameworks[].controls`` and, for the "after" numbers, moves each
resource whose findings for a control are all resolved from failed to passed (a control with no
failed resource left becomes passed). The tests reproduce the reports' own ``complianceScore``
for every framework of the Kubescape 3 reports in the corpus.

What cannot be reproduced, and why:

- Kubescape 2.x reports (e.g. the 2022 file scan in the corpus) carry only the *risk* score
  (``score``), no ``complianceScore``. For them we compute the compliance score with the same
  formula (status "irrelevant" counts as passed, as Kubescape 3 does), so before/after are
  comparable with each other, but there is no reported number to check it against.
- The risk score (scoreFactor x failed/all, weighted by replicas) is not returned: in the 2.x
  report its per-resource statuses in ``results`` do not agree with the summary counters
  (recomputing gives NSA 32.1 against the reported 27.0), and the report keeps no per-control list
  of passed resources, so an "after" risk score could not be checked either.
- A finding's identity is (control, Kind/namespace/name, container); two source files that
  define the same object are told apart by their source path, as Kubescape's resource ids do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.sources.base import Report
from fixers.model import Finding

Identity = tuple[str, str, str]


@dataclass(frozen=True)
class ControlCounts:
    """One control of one framework as the report counted it."""

    status: str | None
    passed: int
    failed: int
    skipped: int = 0
    excluded: int = 0

    @property
    def compliance(self) -> float:
        """Kubescape's control compliance score (0-100)."""
        if self.status in ("passed", "irrelevant"):
            return 100.0
        total = self.passed + self.failed + self.skipped + self.excluded
        return 100.0 * self.passed / total if total else 0.0

    def resolve(self, resources: int) -> ControlCounts:
        """The counts once ``resources`` failed resources pass."""
        moved = min(resources, self.failed)
        if moved == 0:
            return self
        failed = self.failed - moved
        status = "passed" if failed == 0 else self.status
        return ControlCounts(status, self.passed + moved, failed, self.skipped, self.excluded)


def _counts(entry: Mapping[str, Any]) -> ControlCounts:
    return ControlCounts(
        status=entry.get("status"),
        passed=int(entry.get("passed", 0)),
        failed=int(entry.get("failed", 0)),
        skipped=int(entry.get("skipped", 0)),
        excluded=int(entry.get("excluded", 0)),
    )


def _report_id(finding: Finding) -> str:
    """The control id as the report's framework tables spell it (e.g. CIS-5.7.2 in 2.x)."""
    return finding.scanner_ids[0] if finding.scanner_ids else finding.control_id


def _fixed_resources(findings: Iterable[Finding], resolved: set[Identity]) -> dict[str, int]:
    """Per report control id: how many failed resources have every finding resolved."""
    open_by_resource: dict[tuple[str, str, str | None], bool] = {}
    for finding in findings:
        key = (_report_id(finding), finding.resource.key, finding.source.path)
        still_failing = finding.identity not in resolved
        open_by_resource[key] = open_by_resource.get(key, False) or still_failing
    fixed: dict[str, int] = {}
    for (control_id, _, _), failing in open_by_resource.items():
        if not failing:
            fixed[control_id] = fixed.get(control_id, 0) + 1
    return fixed


def framework_scores(report: Report, resolved: Iterable[Identity] = ()) -> dict[str, float]:
    """Compliance score (0-100) per framework of the report, with ``resolved`` findings fixed.

    With nothing resolved this is the report's own ``complianceScore`` per framework.
    """
    resolved_set = set(resolved)
    fixed = _fixed_resources(report.findings, resolved_set) if resolved_set else {}
    scores: dict[str, float] = {}
    for framework in report.summary.get("frameworks") or ():
        table = framework.get("controls") or {}
        if not table:
            continue
        total = sum(
            _counts(entry).resolve(fixed.get(control_id, 0)).compliance
            for control_id, entry in table.items()
        )
        scores[framework["name"]] = total / len(table)
    return scores


def framework_label(name: str) -> str:
    """The short name people use: ``cis-v1.23-t1.0.1`` -> ``CIS``, ``nsa`` -> ``NSA``."""
    lowered = name.lower()
    for prefix, label in (("cis", "CIS"), ("nsa", "NSA"), ("mitre", "MITRE")):
        if lowered.startswith(prefix):
            return label
    return name


def format_delta(framework: str, before: float, after: float) -> str:
    """``format_delta("NSA", 61.1, 78.4) -> "NSA 61.1 % -> 78.4 %"``."""
    return f"{framework} {before:.1f} % -> {after:.1f} %"
