"""Kubescape JSON reports (real ones from the corpus) and bad input (small files written here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ReportError
from bot.sources import kubescape, load_report, parse_report
from bot.sources.base import Report
from fixers.model import Finding, FixHint, Severity
from tests.conftest import corpus_path


def _load(name: str) -> Report:
    return load_report(corpus_path("scans", "kubescape", name))


def _find(report: Report, control: str, name: str, container: str | None = None) -> list[Finding]:
    return [
        f
        for f in report.findings
        if f.control_id == control
        and f.resource.name == name
        and (container is None or f.container == container)
    ]


@pytest.fixture(scope="module")
def file_scan() -> Report:
    return _load("defectdojo__many_findings.json")


@pytest.fixture(scope="module")
def cluster_scan() -> Report:
    return _load("scape-a-lyzer__sample.json")


# --------------------------------------------------------------------------- v2 file scan


def test_file_scan_reports_privilege_escalation_per_container(file_scan: Report) -> None:
    (finding,) = _find(file_scan, "C-0016", "adservice")
    assert finding.resource.kind == "Deployment"
    assert finding.resource.api_version == "apps/v1"
    assert finding.resource.namespace is None
    assert finding.container == "server"
    assert finding.source.path == "examples/online-boutique/adservice.yaml"
    assert finding.scanner_ids == ("C-0016",)
    assert finding.severity is Severity.MEDIUM  # scoreFactor 6
    (hint,) = finding.hints
    assert hint.kind == "fix"
    assert hint.path == "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation"
    assert hint.value == "false"
    assert not hint.placeholder


def test_file_scan_passed_controls_are_not_findings(file_scan: Report) -> None:
    # paymentservice sets CPU and memory limits: C-0050 passed for it.
    assert _find(file_scan, "C-0050", "paymentservice") == []
    assert _find(file_scan, "C-0004", "paymentservice") == []
    # ... and its writable root filesystem failed.
    assert [f.container for f in _find(file_scan, "C-0017", "paymentservice")] == ["server"]


def test_file_scan_maps_kubescape2_cis_ids_to_canonical_ids(file_scan: Report) -> None:
    (seccomp,) = _find(file_scan, "C-0210", "paymentservice")
    assert seccomp.scanner_ids == ("CIS-5.7.2",)
    assert seccomp.hints[0].value == "RuntimeDefault"
    assert not any(f.control_id.startswith("CIS") for f in file_scan.findings)
    assert file_scan.skipped == ()


def test_file_scan_placeholders_are_flagged_never_values(file_scan: Report) -> None:
    (labels,) = _find(file_scan, "C-0076", "adservice")
    assert labels.container is None  # metadata.labels is resource level
    assert [(h.path, h.value, h.placeholder) for h in labels.hints] == [
        ("metadata.labels", None, True)
    ]
    (namespace,) = [f for f in _find(file_scan, "C-0061", "adservice")]
    assert namespace.hints[0].placeholder and namespace.hints[0].value is None
    values = [h.value for f in file_scan.findings for h in f.hints if h.value]
    assert not any("YOUR_" in v for v in values)


def test_file_scan_helm_chart_source(file_scan: Report) -> None:
    role = [f for f in file_scan.findings if f.resource.kind == "Role"]
    assert role
    assert {f.source.chart_path for f in role} == {"examples/helm_chart"}
    assert {f.source.path for f in role} == {"examples/helm_chart/templates/role.yaml"}


def test_file_scan_network_policy_and_failed_paths(file_scan: Report) -> None:
    (netpol,) = _find(file_scan, "C-0030", "cartservice")
    assert netpol.container is None and netpol.hints == ()
    (registry,) = _find(file_scan, "C-0078", "adservice")
    assert [(h.kind, h.path) for h in registry.hints] == [
        ("failed", "spec.template.spec.containers[0].image")
    ]


def test_file_scan_resources_and_framework_scores(file_scan: Report) -> None:
    deployment = file_scan.resources["Deployment//paymentservice"]
    # Kept cut to what the reader uses (identity and container names), not the whole object.
    assert deployment["metadata"] == {"name": "paymentservice"}
    assert deployment["spec"]["template"]["spec"]["containers"] == [{"name": "server"}]
    frameworks = {f["name"]: f for f in file_scan.summary["frameworks"]}
    assert frameworks["NSA"]["score"] == pytest.approx(26.9876)
    assert frameworks["MITRE"]["score"] == pytest.approx(10.858586)
    assert "C-0016" in frameworks["NSA"]["controls"]


def test_file_scan_covers_the_online_boutique_manifests(file_scan: Report) -> None:
    folder = corpus_path("manifests", "kubescape-online-boutique")
    scanned = {
        Path(f.source.path).name
        for f in file_scan.findings
        if f.source.path and "online-boutique" in f.source.path
    }
    on_disk = {p.name for p in folder.glob("*.yaml")} - {"invalid.yaml"}
    assert scanned == on_disk


# --------------------------------------------------------------------------- v3 cluster scan


def test_cluster_scan_one_finding_per_failing_container(cluster_scan: Report) -> None:
    findings = _find(cluster_scan, "C-0016", "svclb-traefik-bf26f129")
    assert sorted(f.container for f in findings) == ["lb-tcp-443", "lb-tcp-80"]
    by_container = {f.container: f for f in findings}
    assert by_container["lb-tcp-443"].hints[0].path.startswith("spec.template.spec.containers[1]")
    assert all(f.resource.namespace == "kube-system" for f in findings)
    assert all(f.resource.kind == "DaemonSet" for f in findings)
    assert all(f.source.path is None for f in findings)  # cluster scan: no file


def test_cluster_scan_exceptions_are_not_findings(cluster_scan: Report) -> None:
    # kube-system service accounts pass C-0034 "w/exceptions" (system exception policy).
    assert _find(cluster_scan, "C-0034", "service-account-controller") == []


def test_cluster_scan_review_and_delete_paths(cluster_scan: Report) -> None:
    kinds = {h.kind for f in cluster_scan.findings for h in f.hints}
    assert kinds == {"fix", "failed", "review", "delete"}


def test_cluster_scan_summary_has_both_frameworks(cluster_scan: Report) -> None:
    names = {f["name"]: f for f in cluster_scan.summary["frameworks"]}
    assert set(names) == {"cis-v1.23-t1.0.1", "AllControls"}
    assert names["AllControls"]["compliance_score"] == pytest.approx(72.1609)


# --------------------------------------------------------------------------- v3.0.3 single file


def test_single_file_status_objects_and_document_index() -> None:
    report = _load("defectdojo__with_a_failure.json")
    assert sorted(f.control_id for f in report.findings) == ["C-0030", "C-0055", "C-0260"]
    (hardening,) = [f for f in report.findings if f.control_id == "C-0055"]
    assert hardening.container == "nginx"
    assert hardening.source.path == "nginx.yaml"
    assert hardening.source.document_index == 0
    assert all(h.placeholder and h.value is None for h in hardening.hints)
    assert {f.resource.name for f in report.findings} == {"nginx-deployment"}


def test_clean_scan_has_no_findings() -> None:
    report = _load("defectdojo__results.json")
    assert report.findings == ()
    assert {f["name"]: f["compliance_score"] for f in report.summary["frameworks"]}["NSA"] == 100


# --------------------------------------------------------------------------- small reports


def _report(controls: list[dict], resource: dict | None = None) -> dict:
    rid = "path=1/api=apps/v1/shop/Deployment/web"
    resources = [{"resourceID": rid, "object": resource}] if resource else []
    return {
        "summaryDetails": {"controls": {}},
        "resources": resources,
        "results": [{"resourceID": rid, "controls": controls}],
    }


def test_unknown_non_canonical_id_is_skipped_with_reason() -> None:
    data = _report([{"controlID": "CIS-9.9.9", "status": {"status": "failed"}, "rules": []}])
    report = parse_report(data, "mem")
    assert report.findings == ()
    (skip,) = report.skipped
    assert "CIS-9.9.9" in skip.what and "no equivalent" in skip.reason


def test_resource_from_id_when_object_missing_and_catalog_severity() -> None:
    data = _report([{"controlID": "C-0057", "status": "failed", "rules": []}])
    (finding,) = parse_report(data, "mem").findings
    assert finding.resource.key == "Deployment/shop/web"
    assert finding.resource.api_version == "apps/v1"
    assert finding.severity is Severity.HIGH  # catalog scoreFactor 8


def test_skipped_and_excluded_controls_are_not_findings() -> None:
    data = _report(
        [
            {"controlID": "C-0016", "status": {"status": "skipped"}, "rules": []},
            {"controlID": "C-0017", "status": "excluded", "rules": []},
            {"controlID": "C-0013", "rules": [{"name": "r", "status": "passed"}]},
        ]
    )
    assert parse_report(data, "mem").findings == ()


def test_unresolvable_container_index_keeps_the_hint_without_a_name() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}},
    }
    path = "spec.template.spec.containers[3].securityContext.privileged"
    rule = {
        "name": "r",
        "status": "failed",
        "paths": [{"fixPath": {"path": path, "value": "false"}}],
    }
    data = _report([{"controlID": "C-0057", "rules": [rule]}], obj)
    (finding,) = parse_report(data, "mem").findings
    assert finding.container is None
    assert finding.hints[0].path == path


def test_sniff() -> None:
    assert kubescape.sniff(_report([]))
    assert not kubescape.sniff({"results": "x"})
    assert not kubescape.sniff([])


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="report file not found"):
        load_report(tmp_path / "nope.json")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("  \n")
    with pytest.raises(ReportError, match="report file is empty"):
        load_report(path)


def test_truncated_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('{"results": [\n  {"resourceID": "x",\n')
    with pytest.raises(ReportError, match=r"truncated JSON at line 3, column 1"):
        load_report(path)


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"results": [}\n')
    with pytest.raises(ReportError, match=r"malformed JSON at line 1, column 14"):
        load_report(path)


def test_unknown_document_says_what_it_looks_like(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
    with pytest.raises(
        ReportError,
        match=r"not a Kubescape.* report: looks like a Kubernetes object of kind Deployment",
    ):
        load_report(path)


def test_yaml_report_is_accepted(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(_report([{"controlID": "C-0057", "status": "failed"}])))
    assert [f.control_id for f in load_report(path).findings] == ["C-0057"]


def test_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_report([])) + " " * 2048)
    with pytest.raises(ReportError, match="over the limit"):
        load_report(path, max_bytes=1024)


def test_malformed_structure_is_a_report_error(tmp_path: Path) -> None:
    path = tmp_path / "shape.json"
    path.write_text(json.dumps({"summaryDetails": {}, "results": [{"controls": []}]}))
    with pytest.raises(
        ReportError, match=r"malformed Kubescape report at results\[0\]\.resourceID"
    ):
        load_report(path)


def test_hints_are_shared_when_short_and_never_kept_when_long() -> None:
    """The reader validates each short hint once and hands out the same one (hints are
    frozen); a long path or value (a hostile report's) is made afresh and not remembered."""
    path = "spec.template.spec.containers[0].securityContext.privileged"
    first, again = kubescape._hint("fix", path, False), kubescape._hint("fix", path, False)
    assert first is again
    assert first == FixHint(kind="fix", path=path, value="False")
    assert kubescape._hint("fix", path, "YOUR_VALUE").placeholder
    assert kubescape._hint("failed", path) == FixHint(kind="failed", path=path)
    kept = kubescape._shared_hint.cache_info().currsize
    long = "spec." + "x" * 5000
    assert kubescape._hint("failed", long) == FixHint(kind="failed", path=long)
    assert kubescape._hint("fix", path, "v" * 5000).value == "v" * 5000
    assert kubescape._shared_hint.cache_info().currsize == kept
