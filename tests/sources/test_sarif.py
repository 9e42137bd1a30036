"""SARIF logs: real Trivy 0.76 and Checkov 3.3.30 SARIF of our own manifests (same scan as the
JSON fixtures), a small Kubescape-shaped log written here, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ReportError
from bot.sources import load_report, parse_report, sarif
from bot.sources.base import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"
MANIFESTS = FIXTURES.parent / "manifests"


def _identities(report: Report) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {(*f.identity, f.scanner_ids) for f in report.findings}


def test_trivy_sarif_reads_like_trivy_json() -> None:
    from_sarif = load_report(FIXTURES / "trivy-config.sarif")
    from_json = load_report(FIXTURES / "trivy-config.json")
    assert from_sarif.scanner == "trivy"
    assert _identities(from_sarif) == _identities(from_json)
    (ape,) = [
        f
        for f in from_sarif.findings
        if f.control_id == "C-0016" and f.resource.key == "Deployment//web"
    ]
    assert ape.container == "app"
    assert ape.source.path == "web-deployment.yaml"
    assert ape.source.line == 19
    assert {s.what for s in from_sarif.skipped} == {s.what for s in from_json.skipped}


def test_checkov_sarif_reads_resource_from_snippet() -> None:
    from_sarif = load_report(FIXTURES / "checkov-kubernetes.sarif")
    from_json = load_report(FIXTURES / "checkov-kubernetes.json")
    assert from_sarif.scanner == "checkov"
    assert _identities(from_sarif) == _identities(from_json)
    (privileged,) = [f for f in from_sarif.findings if f.scanner_ids == ("CKV_K8S_16",)]
    assert (privileged.control_id, privileged.resource.key, privileged.container) == (
        "C-0057",
        "DaemonSet/monitoring/node-agent",
        "agent",
    )


def _kubescape_log(uri: str, base: str, line: int) -> dict:
    return {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "kubescape", "rules": [{"id": "C-0041"}]}},
                "originalUriBaseIds": {"ROOTPATH": {"uri": base}},
                "results": [
                    {
                        "ruleId": "C-0041",
                        "level": "warning",
                        "message": {"text": "HostNetwork access"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": uri, "uriBaseId": "ROOTPATH"},
                                    "region": {"startLine": line},
                                }
                            }
                        ],
                    }
                ],
            },
            {"tool": {"driver": {"name": "SomeLinter"}}, "results": [{"ruleId": "X1"}]},
        ],
    }


def test_kubescape_sarif_reads_the_document_at_the_line() -> None:
    log = _kubescape_log("backend.yaml", MANIFESTS.as_uri() + "/", 20)
    report = parse_report(log, "ks.sarif")
    (finding,) = report.findings
    assert finding.control_id == "C-0041"
    assert finding.resource.key == "StatefulSet/shop/db"  # second document of the file
    assert finding.scanner == "kubescape"
    assert finding.source.path == "backend.yaml"
    (other,) = report.skipped
    assert other.what == "1 results of SomeLinter"


def test_unreadable_file_is_skipped_with_reason(tmp_path: Path) -> None:
    log = _kubescape_log("gone.yaml", tmp_path.as_uri() + "/", 3)
    report = parse_report(log, "ks.sarif")
    assert report.findings == ()
    assert any(s.what == "C-0041 in gone.yaml:3" for s in report.skipped)


def test_detection_and_bad_input() -> None:
    assert sarif.sniff(json.loads((FIXTURES / "trivy-config.sarif").read_text()))
    assert not sarif.sniff({"SchemaVersion": 2, "Results": []})
    with pytest.raises(ReportError, match=r"no tool\.driver"):
        parse_report({"version": "2.1.0", "runs": [{"results": []}]}, "bad.sarif")


def test_a_part_of_the_wrong_type_is_named_in_the_error(tmp_path: Path) -> None:
    log = _kubescape_log("gone.yaml", tmp_path.as_uri() + "/", 3)
    log["runs"][0]["results"][0]["message"] = "not an object"
    with pytest.raises(ReportError) as caught:
        parse_report(log, "ks.sarif")
    assert str(caught.value) == (
        "ks.sarif: malformed SARIF log: a result at message: should be a JSON object"
    )


def test_empty_optional_parts_read_as_absent(tmp_path: Path) -> None:
    log = _kubescape_log("gone.yaml", tmp_path.as_uri() + "/", 3)
    log["runs"][0]["results"][0]["message"] = ""
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"] = None
    report = parse_report(log, "ks.sarif")
    assert report.skipped[0].what == "C-0041 in gone.yaml"
