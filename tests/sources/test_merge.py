"""Several reports as one: real Trivy and Checkov output of the same manifests end in one edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.errors import ReportError
from bot.plan import build_plan
from bot.sources import load_report
from bot.sources.merge import merge_reports
from fixers.edits import load_documents
from tests.conftest import corpus_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_merge_keeps_everything_and_joins_names() -> None:
    trivy = load_report(FIXTURES / "reports" / "trivy-config.json")
    checkov = load_report(FIXTURES / "reports" / "checkov-kubernetes.json")
    merged = merge_reports([trivy, checkov])
    assert merged.scanner == "trivy+checkov"
    assert merged.findings == trivy.findings + checkov.findings
    assert merged.skipped == trivy.skipped + checkov.skipped
    assert (
        "checkov (" + str(FIXTURES / "reports" / "checkov-kubernetes.json") + ")"
        in (merged.summary["scanners"])
    )


def test_merge_keeps_kubescape_scores_where_score_reads_them() -> None:
    kubescape = load_report(corpus_path("scans", "kubescape", "defectdojo__many_findings.json"))
    trivy = load_report(FIXTURES / "reports" / "trivy-config.json")
    merged = merge_reports([trivy, kubescape])
    assert merged.summary["frameworks"] == kubescape.summary["frameworks"]
    assert merged.resources == kubescape.resources


def test_no_report_is_an_error() -> None:
    with pytest.raises(ReportError, match="at least one"):
        merge_reports([])


def test_same_container_and_control_from_two_scanners_is_one_edit(tmp_path: Path) -> None:
    repo = tmp_path / "cd-config"
    shutil.copytree(FIXTURES / "manifests", repo)
    trivy = load_report(FIXTURES / "reports" / "trivy-config.json")
    checkov = load_report(FIXTURES / "reports" / "checkov-kubernetes.json")
    merged = merge_reports([trivy, checkov])
    key = ("C-0016", "StatefulSet/shop/db", "postgres")
    # Checkov reports it twice: no allowPrivilegeEscalation (CKV_K8S_20), no securityContext (30)
    scanners = [f.scanner for f in merged.findings if f.identity == key]
    assert scanners == ["trivy", "checkov", "checkov"]

    plan = build_plan(merged, repo)
    fixes = [fix for cs in plan.change_sets for fix in cs.fixes if fix.finding.identity == key]
    assert len(fixes) == 1
    (fix,) = fixes
    assert set(fix.finding.scanner_ids) == {"KSV-0001", "CKV_K8S_20", "CKV_K8S_30"}
    assert len(fix.edits) == 1
    (change_set,) = [cs for cs in plan.change_sets if fix in cs.fixes]
    (changed,) = [f for f in change_set.files if f.path == "backend.yaml"]
    after = load_documents(changed.after)
    container = after[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert changed.after.count("allowPrivilegeEscalation") == 1


def _documents() -> dict[str, Path]:
    return {
        "trivy": FIXTURES / "reports" / "trivy-config.json",
        "checkov": FIXTURES / "reports" / "checkov-kubernetes.json",
        "sarif": FIXTURES / "reports" / "trivy-config.sarif",
        "kyverno": corpus_path(
            "scans", "kyverno", "ocm-policy-collection__polr-openshift-authentication-operator.yaml"
        ),
        "kubescape": corpus_path("scans", "kubescape", "defectdojo__results.json"),
    }


def test_each_format_is_claimed_by_exactly_its_reader() -> None:
    import json

    import yaml

    from bot.sources import sources

    for expected, path in _documents().items():
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
        claimed = [s.format for s in sources() if s.sniff(data)]
        assert claimed == [expected], path.name
