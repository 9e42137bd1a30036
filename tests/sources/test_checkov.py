"""Checkov JSON: real output of Checkov 3.3.30 on our own manifests, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import scanner_map
from bot.errors import ReportError
from bot.plan import build_plan
from bot.sources import checkov, load_report, parse_report
from bot.sources.base import Report
from fixers.model import Finding
from tests.conftest import corpus_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"


@pytest.fixture(scope="module")
def report() -> Report:
    return load_report(FIXTURES / "checkov-kubernetes.json")


def _one(report: Report, check_id: str, key: str) -> Finding:
    found = [f for f in report.findings if f.scanner_ids == (check_id,) and f.resource.key == key]
    assert len(found) == 1, found
    return found[0]


def test_single_container_pod_names_its_container(report: Report) -> None:
    finding = _one(report, "CKV_K8S_16", "DaemonSet/monitoring/node-agent")
    assert finding.control_id == "C-0057"
    assert finding.scanner == "checkov"
    assert finding.container == "agent"
    assert finding.resource.api_version == "apps/v1"
    assert finding.source.path == "tests/fixtures/manifests/node-agent-daemonset.yaml"
    assert finding.source.line == 2
    assert finding.message == "Container should not be privileged"


def test_multi_container_pod_leaves_the_container_open(report: Report) -> None:
    # Checkov names only the first failing container; both containers of web lack CPU limits
    finding = _one(report, "CKV_K8S_11", "Deployment//web")
    assert finding.control_id == "C-0270"
    assert finding.container is None


def test_namespace_comes_from_the_manifest_not_checkovs_default(report: Report) -> None:
    assert _one(report, "CKV_K8S_20", "Deployment//web").resource.namespace is None
    db = _one(report, "CKV_K8S_23", "StatefulSet/shop/db")
    assert (db.control_id, db.container) == ("C-0013", "postgres")


def test_pod_level_checks_have_no_container(report: Report) -> None:
    assert _one(report, "CKV_K8S_19", "DaemonSet/monitoring/node-agent").container is None
    assert _one(report, "CKV_K8S_38", "StatefulSet/shop/db").control_id == "C-0034"
    # the graph check reports a synthetic Pod; the finding is on the manifest's workload
    netpol = _one(report, "CKV2_K8S_6", "StatefulSet/shop/db")
    assert netpol.control_id == "C-0260"


def test_compliant_checks_are_absent(report: Report) -> None:
    # the CronJob's container is hardened: no privilege escalation, no root, RO filesystem
    cron = {f.control_id for f in report.findings if f.resource.name == "nightly-report"}
    assert cron.isdisjoint({"C-0016", "C-0013", "C-0017", "C-0270", "C-0271"})


def test_unmapped_checks_are_skipped_with_their_id() -> None:
    data = json.loads((FIXTURES / "checkov-kubernetes.json").read_text())
    check = dict(data["results"]["failed_checks"][0], check_id="CKV_K8S_999", check_name="New")
    data["results"]["failed_checks"] = [check]
    (skipped,) = parse_report(data, "test").skipped
    assert skipped.what.startswith("CKV_K8S_999 on ")
    assert "CKV_K8S_999 (New)" in skipped.reason


def test_every_check_of_the_real_report_is_a_finding(report: Report) -> None:
    """Nothing dropped: each failed check Checkov ran on our manifests has a control."""
    assert report.skipped == ()
    assert _one(report, "CKV_K8S_15", "Deployment//web").control_id == "C-9004"


def test_every_mapped_title_is_checkovs_check_name() -> None:
    """Checkov's own names for the checks it ran agree with the titles in scanner_map.yaml."""
    names = {
        c["check_id"]: c["check_name"]
        for c in json.loads((FIXTURES / "checkov-kubernetes.json").read_text())["results"][
            "failed_checks"
        ]
    }
    table = scanner_map.entries("checkov")
    for check_id, name in names.items():
        if check_id in table:
            assert table[check_id]["title"] == name, check_id


def test_list_of_frameworks_and_helm_chart_path() -> None:
    check = {
        "check_id": "CKV_K8S_20",
        "check_name": "Containers should not run with allowPrivilegeEscalation",
        "file_path": "/charts/web/templates/deployment.yaml",
        "file_line_range": [3, 40],
        "resource": "Deployment.default.release-web",
    }
    runs = [
        {"check_type": "helm", "results": {"failed_checks": [check]}, "summary": {"failed": 1}},
        {"check_type": "kubernetes", "results": {"failed_checks": []}, "summary": {"failed": 0}},
    ]
    report = parse_report(runs, "list.json")
    (finding,) = report.findings
    assert finding.resource.key == "Deployment//release-web"
    assert finding.source.chart_path == "charts/web"
    assert finding.source.path == "charts/web/templates/deployment.yaml"
    assert set(report.summary) == {"helm", "kubernetes"}


def test_detection_and_bad_input() -> None:
    assert checkov.sniff(json.loads((FIXTURES / "checkov-kubernetes.json").read_text()))
    assert not checkov.sniff({"SchemaVersion": 2, "Results": []})
    assert not checkov.sniff([])
    with pytest.raises(ReportError, match="failed_checks"):
        parse_report({"check_type": "kubernetes", "results": {"failed_checks": {}}}, "x")
    with pytest.raises(ReportError, match="no check_id"):
        parse_report({"check_type": "kubernetes", "results": {"failed_checks": [{}]}}, "x")


def test_code_block_running_into_the_next_document() -> None:
    """Checkov's graph checks quote past the workload into a following Service."""
    lines = [
        "apiVersion: apps/v1\n",
        "kind: Deployment\n",
        "metadata:\n",
        "  name: adservice\n",
        "spec:\n",
        "  template:\n",
        "    spec:\n",
        "      containers:\n",
        "      - name: server\n",
        "        image: adservice\n",
        "---\n",
        "apiVersion: v1\n",
        "kind: Service\n",
        "metadata:\n",
        "  name: adservice\n",
    ]
    check = {
        "check_id": "CKV2_K8S_6",
        "check_name": "Minimize the admission of pods which lack an associated NetworkPolicy",
        "file_path": "/adservice.yaml",
        "file_line_range": [15, 61],
        "resource": "Pod.default.adservice.app-adservice",
        "code_block": [[15 + i, text] for i, text in enumerate(lines)],
    }
    report = parse_report({"check_type": "kubernetes", "results": {"failed_checks": [check]}}, "r")
    (finding,) = report.findings
    assert (finding.control_id, finding.resource.key) == ("C-0260", "Deployment//adservice")


def _before_after():  # type: ignore[no-untyped-def]
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "checkov_before_after.py"
    spec = importlib.util.spec_from_file_location("checkov_before_after", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_before_after_table_counts_mapped_checks_only() -> None:
    script = _before_after()
    output = json.loads((FIXTURES / "checkov-kubernetes.json").read_text())
    before = script.failures(output)
    assert before["CKV_K8S_20"] == 3  # web, db and the node agent; not the hardened CronJob
    lines = script.table(before, before - before)
    assert any(line.startswith("CKV_K8S_20  C-0016") and " 3 -> 0 " in line for line in lines)
    assert lines[-1].split()[-3:] == [
        str(sum(n for c, n in before.items() if c in scanner_map.entries("checkov"))),
        "->",
        "0",
    ]


@pytest.mark.slow
def test_before_after_on_own_manifests_with_real_checkov() -> None:
    script = _before_after()
    if not script.CHECKOV.exists():
        pytest.skip("run `bash scripts/setup-scanners.sh` to install Checkov")
    before = script.failures(script.run_checkov(FIXTURES.parent / "manifests"))
    assert before == script.failures(json.loads((FIXTURES / "checkov-kubernetes.json").read_text()))


@pytest.mark.slow
def test_fixes_clear_every_fixable_mapped_failure_by_real_checkov(tmp_path: Path) -> None:
    """The issue's independent check on the online-boutique corpus: after the fixes, Checkov
    finds no new failure, and what still fails is explained as needing a person or a registry."""
    script = _before_after()
    if not script.CHECKOV.exists():
        pytest.skip("run `bash scripts/setup-scanners.sh` to install Checkov")
    source = corpus_path("manifests", "kubescape-online-boutique")
    before = script.failures(script.run_checkov(source))
    fixed, applied = script.fix_copy(source, [], tmp_path)
    after_output = script.run_checkov(fixed)
    after = script.failures(after_output)

    assert applied > 0
    # Dropping ALL adds back what redis's entrypoint uses as root (it chowns /data and steps
    # down to the redis user): CKV_K8S_25 flags any added capability, on purpose here.
    grown = after - before
    assert set(grown) <= {"CKV_K8S_25"}, f"a fix introduced a failure: {grown}"
    added = [
        r["resource"]
        for r in after_output["results"]["failed_checks"]
        if r["check_id"] == "CKV_K8S_25"
    ]
    assert grown["CKV_K8S_25"] == 0 or added == ["Deployment.default.redis-cart"], added
    mapped = scanner_map.entries("checkov")
    cleared = {c for c in before if c in mapped and not after[c]}
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_29", "CKV_K8S_31"} <= cleared
    # redis-cart keeps root once its drop-ALL change set adds back SETUID and SETGID (it
    # steps down itself): a waiver, not a fix; every other container runs as non-root
    root = [
        r["resource"]
        for r in after_output["results"]["failed_checks"]
        if r["check_id"] == "CKV_K8S_23"
    ]
    assert root in ([], ["Deployment.default.redis-cart"]), root
    remaining = build_plan(parse_report(after_output, "checkov after"), fixed)
    assert remaining.change_sets == ()
    assert {u.category for u in remaining.unfixable} <= {"needs-human", "image"}
    assert len(remaining.unfixable) == sum(n for c, n in after.items() if c in mapped)


@pytest.mark.slow
def test_a_file_repeating_an_object_is_fixed_where_checkov_points(tmp_path: Path) -> None:
    """Regolibrary's linux-hardening input repeats Pod audit-pod four times in one file; real
    Checkov points at the last copy's lines, and that copy (the one Kubernetes keeps) is fixed."""
    script = _before_after()
    if not script.CHECKOV.exists():
        pytest.skip("run `bash scripts/setup-scanners.sh` to install Checkov")
    source = corpus_path(
        "manifests", "regolibrary-rule-tests", "rules", "linux-hardening", "test", "passed", "input"
    )
    repo = tmp_path / "input"
    repo.mkdir()
    (repo / "pod.yaml").write_bytes((source / "pod.yaml").read_bytes())
    report = parse_report(script.run_checkov(repo), "checkov")
    escalation = [f for f in report.findings if f.control_id == "C-0016"]
    assert {f.source.line for f in escalation} == {51}

    plan = build_plan(report, repo)
    fixes = [fix for change_set in plan.change_sets for fix in change_set.fixes]
    assert any(fix.finding.control_id == "C-0016" for fix in fixes)
    assert {(fix.location.path, fix.location.document_index) for fix in fixes} == {("pod.yaml", 3)}
    assert not [u for u in plan.unfixable if "several places" in u.reason]


def test_a_scan_that_found_nothing_is_an_empty_report(tmp_path: Path) -> None:
    """Checkov prints only its summary when no framework found a resource (a chart directory
    without a helm binary, say): that is a scan with nothing to fix, not a malformed input
    that fails a CI gate. Files it could not parse are named; a summary that claims failures
    without results stays refused."""
    summary = {
        "passed": 0,
        "failed": 0,
        "skipped": 0,
        "parsing_errors": 0,
        "resource_count": 0,
        "checkov_version": "3.3.30",
    }
    path = tmp_path / "checkov.json"
    path.write_text(json.dumps(summary))
    report = load_report(path)
    assert report.scanner == "checkov" and report.findings == () and report.skipped == ()
    path.write_text(json.dumps({**summary, "parsing_errors": 2}))
    (unread,) = load_report(path).skipped
    assert "2 file(s) Checkov could not parse" in unread.what
    path.write_text(json.dumps({**summary, "failed": 3}))
    with pytest.raises(ReportError):
        load_report(path)


def test_real_checkov_on_a_directory_with_nothing_to_scan_plans_nothing(tmp_path: Path) -> None:
    """The summary real Checkov prints for a directory without Kubernetes objects (here a
    README alone) is read as an empty report, and a plan of it exits clean."""
    from tests.scanners import checkov_json

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "README.md").write_text("nothing to deploy\n")
    report_path = tmp_path / "checkov.json"
    report_path.write_text(checkov_json(tmp_path / "repo"))
    report = load_report(report_path)
    assert report.scanner == "checkov" and report.findings == ()
    plan = build_plan(report, tmp_path / "repo")
    assert not plan.change_sets and not plan.unfixable


def test_a_kustomize_scan_run_inside_an_overlay_names_the_overlay_from_the_repository() -> None:
    """`checkov -d overlays/prod --framework kustomize` names the built folder's
    kustomization as "/kustomization.yaml"; the path from the repository's root says which
    overlay it was (a bare kustomization file could be any of them)."""
    check = {
        "check_id": "CKV_K8S_20",
        "check_name": "Containers should not run with allowPrivilegeEscalation",
        "resource": "overlay:prod:Deployment.shop.web",
        "file_path": "/kustomization.yaml",
        "repo_file_path": "/cd-config/overlays/prod/kustomization.yaml",
    }
    raw = {"check_type": "kustomize", "results": {"failed_checks": [check]}}
    (finding,) = parse_report(raw, "checkov kustomize").findings
    assert finding.source.path == "cd-config/overlays/prod/kustomization.yaml"
    as_kubernetes = {"check_type": "kubernetes", "results": {"failed_checks": [check]}}
    (finding,) = parse_report(as_kubernetes, "checkov").findings
    assert finding.source.path == "kustomization.yaml"
