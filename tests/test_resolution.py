"""A bot MR is closed as resolved only on evidence: the new report scanned it and it passed."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.forge.local import LocalForge
from bot.lifecycle import marker, parse_marker
from bot.resolution import marker_fixes, resolved
from bot.sources import kubescape, load_report
from bot.sources.base import PassedChecks, Report
from bot.sources.merge import merge_reports
from fixers.model import Finding, ResourceRef

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CHECKOV = FIXTURES / "reports" / "checkov-kubernetes.json"
WEB = ("C-0016", "Deployment/shop/web")


def failing(control: str, key: str) -> Finding:
    kind, namespace, name = key.split("/")
    return Finding(
        control_id=control,
        resource=ResourceRef(kind=kind, namespace=namespace or None, name=name),
    )


def test_resolved_needs_every_fix_passed_and_none_failing() -> None:
    other = ("C-0017", "Deployment/shop/web")
    assert resolved([WEB], Report("checkov", "t", (), passed=frozenset({WEB})))
    assert not resolved([WEB, other], Report("checkov", "t", (), passed=frozenset({WEB})))
    # absent from the report: unknown, not resolved
    assert not resolved([WEB], Report("checkov", "t", ()))
    # passed by one scanner, failed by another: not resolved
    both = Report("merged", "t", (failing(*WEB),), passed=frozenset({WEB}))
    assert not resolved([WEB], both)
    # an MR whose marker names no fixes (an older one) is never closed on a guess
    assert not resolved([], Report("checkov", "t", (), passed=frozenset({WEB})))


def test_marker_names_fixes_and_survives_angle_brackets() -> None:
    fixes = (WEB, ("C-0013", "Deployment/x/<!-- -->"))
    text = "body\n" + marker("security-context/web", "abc", fixes=fixes)
    assert parse_marker(text) == ("security-context/web", "abc")
    assert set(marker_fixes(text)) == set(fixes)
    assert marker_fixes(marker("k", "h")) == ()


def checkov_report(failed: list[Any], passed: list[Any]) -> dict[str, Any]:
    return {
        "check_type": "kubernetes",
        "results": {"failed_checks": failed, "passed_checks": passed},
        "summary": {"passed": len(passed), "failed": len(failed)},
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "cd-config"
    shutil.copytree(FIXTURES / "manifests", repo)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def apply(repo: Path, report: dict[str, Any], tmp_path: Path, name: str) -> dict[str, str]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    main(["apply", "--report", str(path), "--repo", str(repo)])
    return {c.branch: c.state for c in LocalForge(repo).find_changes()}


def test_apply_closes_only_what_the_report_shows_passing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = json.loads(CHECKOV.read_text(encoding="utf-8"))["results"]["failed_checks"]
    first = apply(repo, checkov_report(checks, []), tmp_path, "first")
    assert first and set(first.values()) == {"opened"}

    # A valid report with no failures and no passes scanned nothing: every MR stays.
    assert apply(repo, checkov_report([], []), tmp_path, "empty") == first

    # Only the web Deployment's checks, all passing now: only MRs fixing web alone close.
    web = [c for c in checks if c["file_path"].endswith("/web-deployment.yaml")]
    passed_web = [dict(copy.deepcopy(c), check_result={"result": "PASSED"}) for c in web]
    report = checkov_report([], passed_web)
    assert load_report(_write(tmp_path / "partial.json", report)).passed
    after = apply(repo, report, tmp_path, "partial")
    closed = {b for b, state in after.items() if state == "closed"}
    assert closed and all("web-deployment" in b for b in closed)
    assert {b for b in first if "web-deployment" not in b} <= {
        b for b, state in after.items() if state == "opened"
    }
    out = capsys.readouterr().out
    assert "kept" in out


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_kubescape_passed_controls_are_evidence() -> None:
    report = load_report(ROOT / "examples" / "kubescape-report.json")
    failing_pairs = {(f.control_id, f.resource.key) for f in report.findings}
    assert ("C-0044", "StatefulSet/shop/cart") in report.passed
    assert not report.passed & failing_pairs


def test_kubescape_passed_controls_are_one_set_per_resource_shared_by_equal_ones() -> None:
    pairs = [("C-0016", "Deployment/a/web"), ("C-0017", "Deployment/a/web")]
    pairs += [("C-0017", "Deployment/b/web"), ("C-0016", "Deployment/b/web"), WEB]
    passed = PassedChecks(pairs)
    assert passed == frozenset(pairs) and len(passed) == 5 and sorted(passed) == sorted(pairs)
    assert hash(passed) == hash(frozenset(pairs))
    assert passed._by_resource["Deployment/a/web"] is passed._by_resource["Deployment/b/web"]
    assert ("C-0017", "Deployment/shop/web") not in passed and "C-0016" not in passed
    assert passed & {WEB, ("C-0001", "x")} == {WEB} and {WEB} <= passed

    # a resource in two results (RBAC response vectors) passed the controls of both
    def result(**status: str) -> dict[str, Any]:
        controls = [{"controlID": c.replace("_", "-"), "status": s} for c, s in status.items()]
        return {"resourceID": "apps/v1/shop/Deployment/web", "controls": controls}

    twice = [result(C_0016="passed", C_0017="failed"), result(C_0034="passed")]
    report = kubescape.parse({"summaryDetails": {}, "results": twice}, "r.json")
    assert report.passed == {WEB, ("C-0034", WEB[1])}
    assert isinstance(report.passed, PassedChecks)
    merged = merge_reports([report, Report("checkov", "t", (), passed=frozenset({WEB}))])
    assert merged.passed == set(report.passed) | {WEB}


def test_kyverno_pass_results_are_evidence(tmp_path: Path) -> None:
    polr = {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "r", "namespace": "shop"},
        "results": [
            {
                "policy": "disallow-privilege-escalation",
                "rule": "privilege-escalation",
                "result": "pass",
                "resources": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "namespace": "shop",
                    }
                ],
            },
            {
                "policy": "require-requests-limits",
                "rule": "validate-resources",
                "result": "pass",
                "resources": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "namespace": "shop",
                    }
                ],
            },
        ],
    }
    report = load_report(_write(tmp_path / "polr.json", polr))
    # a policy covering several controls (by path) passing says nothing about one of them
    assert report.passed == {WEB}
