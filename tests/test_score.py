"""Compliance scores: reproduce Kubescape's own numbers, then predict the effect of fixes."""

from __future__ import annotations

import pytest

from bot.score import ControlCounts, format_delta, framework_label, framework_scores
from bot.sources import load_report
from bot.sources.base import Report
from tests.conftest import corpus_path


def _load(name: str) -> Report:
    return load_report(corpus_path("scans", "kubescape", name))


@pytest.mark.parametrize(
    "name",
    ["scape-a-lyzer__sample.json", "defectdojo__with_a_failure.json", "defectdojo__results.json"],
)
def test_reproduces_the_reported_compliance_scores(name: str) -> None:
    report = _load(name)
    reported = {f["name"]: f["compliance_score"] for f in report.summary["frameworks"]}
    computed = framework_scores(report)
    assert set(computed) == set(reported)
    for framework, score in reported.items():
        assert computed[framework] == pytest.approx(score, abs=0.1), framework


def test_known_values_of_the_cluster_scan() -> None:
    scores = framework_scores(_load("scape-a-lyzer__sample.json"))
    assert round(scores["cis-v1.23-t1.0.1"], 1) == 58.9
    assert round(scores["AllControls"], 1) == 72.2


def test_fixing_every_finding_of_one_file_scan_passes_its_failed_controls() -> None:
    report = _load("defectdojo__with_a_failure.json")
    before = framework_scores(report)
    after = framework_scores(report, {f.identity for f in report.findings})
    assert round(before["NSA"], 1) == 88.9
    assert after == {"ClusterScan": 100.0, "MITRE": 100.0, "NSA": 100.0}


def test_fixing_one_control_moves_the_score_by_its_share() -> None:
    report = _load("scape-a-lyzer__sample.json")
    framework = next(f for f in report.summary["frameworks"] if f["name"] == "AllControls")
    c16 = framework["controls"]["C-0016"]
    assert c16["status"] == "failed"
    old = ControlCounts(c16["status"], c16["passed"], c16["failed"], c16["skipped"]).compliance
    resolved = {f.identity for f in report.findings if f.control_id == "C-0016"}
    before = framework_scores(report)["AllControls"]
    after = framework_scores(report, resolved)["AllControls"]
    assert after - before == pytest.approx((100 - old) / len(framework["controls"]))


def test_a_resource_counts_as_fixed_only_when_all_its_containers_are() -> None:
    report = _load("scape-a-lyzer__sample.json")
    svclb = [
        f.identity
        for f in report.findings
        if f.control_id == "C-0016" and f.resource.name == "svclb-traefik-bf26f129"
    ]
    assert len(svclb) == 2
    before = framework_scores(report)
    assert framework_scores(report, svclb[:1]) == before
    assert framework_scores(report, svclb)["AllControls"] > before["AllControls"]


def test_kubescape2_report_maps_cis_findings_back_to_framework_ids() -> None:
    report = _load("defectdojo__many_findings.json")
    before = framework_scores(report)
    assert set(before) == {"DevOpsBest", "ArmoBest", "MITRE", "CIS", "NSA", "AllControls"}
    seccomp = {f.identity for f in report.findings if f.scanner_ids == ("CIS-5.7.2",)}
    assert seccomp
    after = framework_scores(report, seccomp)
    assert after["CIS"] > before["CIS"]
    assert after["NSA"] == before["NSA"]  # CIS-5.7.2 is not an NSA control


def test_control_counts() -> None:
    assert ControlCounts("passed", 0, 0).compliance == 100
    assert ControlCounts("skipped", 0, 0, skipped=7).compliance == 0
    assert ControlCounts("failed", 3, 1).compliance == 75
    assert ControlCounts("failed", 3, 1).resolve(1) == ControlCounts("passed", 4, 0)
    assert ControlCounts("failed", 3, 2).resolve(5).failed == 0


def test_format_delta() -> None:
    assert format_delta("NSA", 61.1, 78.4) == "NSA 61.1 % -> 78.4 %"
    assert format_delta("MITRE", 73, 73.04) == "MITRE 73.0 % -> 73.0 %"


def test_framework_label() -> None:
    assert framework_label("cis-v1.23-t1.0.1") == "CIS"
    assert framework_label("NSA") == "NSA"
    assert framework_label("MITRE") == "MITRE"
    assert framework_label("AllControls") == "AllControls"
