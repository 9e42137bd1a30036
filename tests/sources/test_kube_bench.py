"""kube-bench JSON (a hand-written report in kube-bench's documented shape, see the README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ReportError
from bot.sources import kube_bench, load_report, parse_report
from bot.sources.base import Report

REPORT = Path(__file__).resolve().parent.parent / "fixtures" / "reports" / "kube-bench.json"


@pytest.fixture(scope="module")
def report() -> Report:
    return load_report(REPORT)


def test_mapped_failure_is_a_node_finding(report: Report) -> None:
    (finding,) = report.findings
    assert finding.control_id == "C-0069"
    assert finding.scanner == "kube-bench"
    assert finding.scanner_ids == ("CIS-4.2.1",)
    assert finding.resource.key == "Node//node"
    assert "authentication: anonymous: enabled" in finding.message


def test_unmapped_failures_are_skipped_with_the_remediation(report: Report) -> None:
    skipped = {s.what.split(":")[0]: s.reason for s in report.skipped}
    assert set(skipped) == {"CIS 1.1.1 on master", "CIS 4.1.1 on node"}
    assert (
        "chmod 600 /etc/kubernetes/manifests/kube-apiserver.yaml" in skipped["CIS 1.1.1 on master"]
    )


def test_pass_and_warn_are_ignored_and_totals_kept(report: Report) -> None:
    ids = {f.scanner_ids for f in report.findings}
    assert ("CIS-4.2.3",) not in ids and ("CIS-5.1.6",) not in ids
    assert report.summary["total_fail"] == 3


def test_section_5_numbers_use_the_catalog_aliases() -> None:
    control = {
        "id": "5",
        "node_type": "policies",
        "tests": [
            {
                "section": "5.1",
                "results": [
                    {
                        "test_number": "5.1.6",
                        "test_desc": "SA tokens",
                        "status": "FAIL",
                        "remediation": "disable automount",
                    }
                ],
            }
        ],
    }
    (finding,) = parse_report([control], "old-kube-bench.json").findings  # bare list, older shape
    assert finding.control_id == "C-0190"


def test_detection_and_bad_input() -> None:
    assert not kube_bench.sniff({"Controls": []})
    assert not kube_bench.sniff({"results": []})
    with pytest.raises(ReportError, match="results is not a list"):
        parse_report({"Controls": [{"node_type": "node", "tests": [{"results": "x"}]}]}, "x")
