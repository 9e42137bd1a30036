"""The streaming Kubescape reader gives exactly the whole-file reader's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ReportError
from bot.sources import kubescape, load_report
from bot.sources.base import Report
from bot.sources.kubescape import _sniff_head
from tests.conftest import corpus_path


def same(a: Report, b: Report) -> None:
    assert a.findings == b.findings
    assert a.skipped == b.skipped
    assert dict(a.resources) == dict(b.resources)
    assert a.summary == b.summary
    assert (a.scanner, a.origin) == (b.scanner, b.origin)


@pytest.mark.parametrize(
    "name",
    [
        "defectdojo__many_findings.json",
        "defectdojo__results.json",
        "defectdojo__with_a_failure.json",
        "scape-a-lyzer__sample.json",
    ],
)
def test_corpus_reports_parse_the_same_streamed(name: str) -> None:
    path = corpus_path("scans", "kubescape", name)
    same(load_report(path), load_report(path, stream_above=0))


def synthetic(n: int) -> dict:
    """A real-shaped report: resources with embedded objects, results with rule paths."""
    resources, results = [], []
    for i in range(n):
        rid = f"apps/v1/shop/Deployment/web-{i}"
        obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"web-{i}", "namespace": "shop"},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": "x:1"}, {"name": "side"}]}
                }
            },
        }
        resources.append({"resourceID": rid, "object": obj, "source": {"relativePath": "a.yaml"}})
        results.append(
            {
                "resourceID": rid,
                "controls": [
                    {
                        "controlID": "C-0016",
                        "name": "Allow privilege escalation",
                        "status": {"status": "failed"},
                        "rules": [
                            {
                                "name": "r",
                                "status": "failed",
                                "paths": [
                                    {
                                        "fixPath": {
                                            "path": f"spec.template.spec.containers[{i % 2}]"
                                            ".securityContext.allowPrivilegeEscalation",
                                            "value": "false",
                                        }
                                    }
                                ],
                            }
                        ],
                    },
                    {"controlID": "C-0017", "status": {"status": "passed"}, "rules": []},
                    {"controlID": "CIS-9.9.9", "status": "failed"},
                ],
            }
        )
    results.append({"resourceID": "garbage", "controls": []})
    summary = {"controls": {"C-0016": {"scoreFactor": 6.5}}, "score": 71.25}
    return {"summaryDetails": summary, "resources": resources, "results": results}


def test_synthetic_report_parses_the_same_streamed(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text("\ufeff" + json.dumps(synthetic(300), indent=1), encoding="utf-8")
    whole, streamed = load_report(path), load_report(path, stream_above=0)
    same(whole, streamed)
    assert len(whole.findings) == 300
    assert {f.container for f in whole.findings} == {"app", "side"}
    assert whole.skipped


def test_other_big_json_falls_back_to_the_whole_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"results": {"a": 1}, "x": [1, 2]}))
    with pytest.raises(ReportError, match=r"not a .*report"):
        load_report(path, stream_above=0)


def test_broken_big_json_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    text = json.dumps(synthetic(20))
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ReportError) as info:
        load_report(path, stream_above=0)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_summary_after_the_results_streams_the_same(tmp_path: Path) -> None:
    """Kubescape itself may write ``summaryDetails`` last (after megabytes of results)."""
    report = synthetic(200)
    reordered = {"resources": report["resources"], "results": report["results"]}
    reordered["summaryDetails"] = report["summaryDetails"]
    path = tmp_path / "late-summary.json"
    path.write_text(json.dumps(reordered))
    whole, streamed = load_report(path), load_report(path, stream_above=0)
    same(whole, streamed)
    assert streamed.summary == whole.summary and whole.summary


def test_format_is_told_from_the_content_not_the_size() -> None:
    head = json.dumps(synthetic(3)).encode()[:400]
    assert _sniff_head(head) == (True, synthetic(3)["summaryDetails"])
    no_summary = json.dumps({"resources": synthetic(3)["resources"]}).encode()[:300]
    assert _sniff_head(no_summary) == (True, None)
    trivy = {"SchemaVersion": 2, "Results": [{"Target": "a.yaml", "Misconfigurations": []}]}
    assert _sniff_head(json.dumps(trivy).encode()) == (False, None)
    checkov = {"check_type": "kubernetes", "results": {"failed_checks": [{"check_id": "x"}]}}
    assert _sniff_head(json.dumps(checkov).encode()) == (False, None)


def test_big_json_of_another_scanner_is_not_streamed(tmp_path: Path) -> None:
    """A large report of another format is read by its own reader, in one whole read."""
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"results": [{"a": 1}], "x": list(range(50_000))}))
    assert kubescape.parse_file(path, str(path)) is None


def test_summary_of_the_wrong_type_is_one_line_error(tmp_path: Path) -> None:
    report = synthetic(5)
    report["summaryDetails"] = [1, 2]
    path = tmp_path / "bad-summary.json"
    path.write_text(json.dumps(report))
    with pytest.raises(ReportError, match="'summaryDetails' is not a mapping"):
        load_report(path, stream_above=0)
