"""The synthetic cd-config used by benchmarks: deterministic, exact counts, readable report."""

from __future__ import annotations

import json
from pathlib import Path

from bench.synth import REPORT_NAME, build_cd_config
from bot.sources import kubescape
from fixers.edits import load_documents
from fixers.view import ManifestPodView


def _failed_pairs(report: dict) -> int:
    return sum(
        1
        for result in report["results"]
        for control in result["controls"]
        if control["status"]["status"] == "failed"
    )


def test_build_cd_config_is_deterministic_and_exact(tmp_path: Path) -> None:
    repo = build_cd_config(tmp_path / "a", n_manifests=40, n_findings=123, seed=7)
    again = build_cd_config(tmp_path / "b", n_manifests=40, n_findings=123, seed=7)
    files = sorted(p.relative_to(repo) for p in repo.rglob("*.yaml"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.yaml"))
    assert all((repo / f).read_bytes() == (again / f).read_bytes() for f in files)
    report = json.loads((tmp_path / "a" / REPORT_NAME).read_text())
    assert (tmp_path / "b" / REPORT_NAME).read_text() == (tmp_path / "a" / REPORT_NAME).read_text()
    assert len(report["results"]) == 40
    assert _failed_pairs(report) == 123
    kinds = set()
    for f in files:
        for doc in load_documents((repo / f).read_text()):
            kinds.add(doc["kind"])
    assert {"Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "Pod"} <= kinds


def test_report_findings_match_the_manifests(tmp_path: Path) -> None:
    repo = build_cd_config(tmp_path, n_manifests=30, n_findings=90, seed=1)
    report = kubescape.parse(json.loads((tmp_path / REPORT_NAME).read_text()), "synthetic")
    assert report.findings
    files: dict[str, list] = {}
    for finding in report.findings:
        path = str(finding.source.path)
        if path not in files:
            files[path] = load_documents((repo / path).read_text())
        doc = files[path][finding.source.document_index or 0]
        assert doc["metadata"]["name"] == finding.resource.name
        view = ManifestPodView.from_document(doc)
        assert view is not None
        if finding.control_id == "C-0057":
            privileged = [c.get("securityContext", "privileged") for c in view.containers]
            assert any(privileged), f"{finding.resource} should be privileged"
        if finding.control_id == "C-0016":
            ape = [c.get("securityContext", "allowPrivilegeEscalation") for c in view.containers]
            assert False not in ape, f"{finding.resource} should allow privilege escalation"
