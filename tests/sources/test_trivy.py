"""Trivy reports: real `trivy config` output (ours and Trivy's own goldens), `trivy k8s` and
Trivy-Operator reports from the corpus, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ReportError
from bot.sources import load_report, parse_report, trivy
from bot.sources.base import Report
from fixers.model import Finding, Severity
from tests.conftest import corpus_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"


def _one(
    report: Report, control: str, name: str, container: str | None, scanner_id: str
) -> Finding:
    found = [
        f
        for f in report.findings
        if f.control_id == control
        and f.resource.name == name
        and f.container == container
        and scanner_id in f.scanner_ids
    ]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def ours() -> Report:
    return load_report(FIXTURES / "trivy-config.json")


def test_own_manifests_container_findings(ours: Report) -> None:
    finding = _one(ours, "C-0016", "web", "app", "KSV-0001")
    assert finding.scanner == "trivy"
    assert finding.resource.kind == "Deployment"
    assert finding.resource.namespace is None  # Trivy's invented "default" is dropped
    assert finding.source.path == "web-deployment.yaml"
    assert finding.source.line == 19
    assert finding.severity is Severity.MEDIUM
    # the sidecar sets allowPrivilegeEscalation: false, so only the app container fails
    assert not [
        f for f in ours.findings if f.control_id == "C-0016" and f.container == "log-shipper"
    ]
    _one(ours, "C-0057", "node-agent", "agent", "KSV-0017")
    _one(ours, "C-0044", "node-agent", "agent", "KSV-0024")


def test_own_manifests_pod_level_and_namespaces(ours: Report) -> None:
    host_net = _one(ours, "C-0041", "node-agent", None, "KSV-0009")
    assert host_net.resource.namespace == "monitoring"
    assert {f.scanner_ids for f in ours.findings if f.control_id == "C-0038"} == {
        ("KSV-0008",),
        ("KSV-0010",),
    }
    # old-style messages omit the namespace; newer ones in the same file name it
    db = _one(ours, "C-0013", "db", "postgres", "KSV-0012")
    assert db.resource.key == "StatefulSet/shop/db"
    # "securityContext.runAsUser should be ..." names nothing: the file's only workload
    root = _one(ours, "C-0013", "db", None, "KSV-0105")
    assert root.resource.kind == "StatefulSet"
    assert root.source.line == 28


def test_unnamed_check_takes_container_of_same_lines(ours: Report) -> None:
    # "Either Pod or Container should set seccompProfile" points at the container's lines
    seccomp = _one(ours, "C-0210", "web", "log-shipper", "KSV-0030")
    assert seccomp.source.line == 27


def test_unmapped_checks_are_skipped_with_their_id(ours: Report) -> None:
    reasons = {s.what: s.reason for s in ours.skipped}
    assert "KSV-0020 on Deployment web" in reasons
    assert "KSV-0020" in reasons["KSV-0020 on Deployment web"]
    assert "Runs with UID <= 10000" in reasons["KSV-0020 on Deployment web"]
    assert not any(f.scanner_ids == ("KSV-0020",) for f in ours.findings)


def test_helm_golden_report() -> None:
    report = load_report(corpus_path("scans", "trivy", "trivy-integration__helm_testchart.json"))
    ape = _one(report, "C-0016", "testchart", "testchart", "KSV-0001")
    assert ape.source.path == "templates/deployment.yaml"
    assert ape.source.chart_path == "testdata/fixtures/repo/helm_testchart"
    assert ape.source.line == 28
    assert not [f for f in report.findings if f.control_id == "C-0013"]


def test_helm_overridden_adds_root_user() -> None:
    report = load_report(
        corpus_path("scans", "trivy", "trivy-integration__helm_testchart.overridden.json")
    )
    root = _one(report, "C-0013", "testchart", None, "KSV-0105")
    assert root.resource.kind == "Deployment"
    assert {s.what for s in report.skipped} >= {"KSV-0020 on Deployment testchart"}


def test_k8s_cluster_report() -> None:
    report = load_report(
        corpus_path("scans", "trivy", "defectdojo__trivy-k8s-cluster__kubernetes.json")
    )
    finding = _one(report, "C-0017", "redis-leader", "leader", "KSV014")
    assert (
        finding.resource.key == "Deployment/default/redis-leader"
    )  # a cluster keeps its namespace
    _one(report, "C-0270", "redis-follower", "follower", "KSV011")
    vulns = [s for s in report.skipped if s.reason == trivy.VULNERABILITY_REASON]
    assert len(vulns) == 2
    assert any(
        "redis-leader" in s.what and s.what.startswith("5 image vulnerabilities") for s in vulns
    )
    assert not [f for f in report.findings if f.resource.kind == "Service"]


def test_operator_config_audit_report() -> None:
    report = load_report(
        corpus_path("scans", "trivy", "defectdojo__trivy-operator__configauditreport_many.json")
    )
    finding = _one(report, "C-0271", "nginx-deployment", "nginx", "KSV018")
    # the audited ReplicaSet belongs to a Deployment: cd-config holds the Deployment
    assert finding.resource.key == "Deployment/default/nginx-deployment"
    assert "nginx-deployment-965685897" in finding.message
    assert finding.severity is Severity.LOW
    _one(report, "C-0210", "nginx-deployment", None, "KSV030")
    assert "KSV106 on Deployment default/nginx-deployment" in {s.what for s in report.skipped}


def test_operator_list_and_vulnerability_report() -> None:
    audit = {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "ConfigAuditReport",
        "metadata": {
            "name": "statefulset-db",
            "namespace": "shop",
            "labels": {
                "trivy-operator.resource.kind": "StatefulSet",
                "trivy-operator.resource.name": "db",
                "trivy-operator.resource.namespace": "shop",
            },
        },
        "report": {
            "checks": [
                {
                    "checkID": "KSV017",
                    "title": "Privileged",
                    "severity": "HIGH",
                    "success": False,
                    "messages": [
                        "Container 'pg' of StatefulSet 'db' should set 'securityContext.privileged' to false"
                    ],
                },
                {"checkID": "KSV001", "title": "x", "severity": "MEDIUM", "success": True},
            ]
        },
    }
    vulns = {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "VulnerabilityReport",
        "metadata": {"name": "statefulset-db-pg"},
        "report": {},
    }
    report = parse_report({"apiVersion": "v1", "kind": "List", "items": [audit, vulns]}, "crs")
    (finding,) = report.findings
    assert (finding.control_id, finding.resource.key, finding.container) == (
        "C-0057",
        "StatefulSet/shop/db",
        "pg",
    )
    assert finding.severity is Severity.HIGH
    assert [s.reason for s in report.skipped] == [trivy.VULNERABILITY_REASON]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Container 'app' of Deployment 'web' should set 'resources.limits.cpu'",
            trivy.Named("Deployment", "web", None, "app"),
        ),
        (
            "Container 'pg' of 'statefulset' 'db' in 'shop' namespace should set x",
            trivy.Named("StatefulSet", "db", "shop", "pg"),
        ),
        (
            'container "pg" of statefulset "db" in "shop" namespace should specify a seccomp profile',
            trivy.Named("StatefulSet", "db", "shop", "pg"),
        ),
        (
            "deployment web in default namespace should set metadata.namespace",
            trivy.Named("Deployment", "web", "default", None),
        ),
        (
            "Container 'keycloak' of 'statefulset' 'keycloakx' in 'null' namespace should set x",
            trivy.Named("StatefulSet", "keycloakx", "null", "keycloak"),
        ),
        (
            "Container agent in daemonset node-agent (namespace: monitoring) uses an image",
            trivy.Named("DaemonSet", "node-agent", "monitoring", "agent"),
        ),
        ("container should drop all", trivy.Named()),
    ],
)
def test_read_message(message: str, expected: trivy.Named) -> None:
    assert trivy.read_message(message) == expected


def test_detection() -> None:
    assert trivy.sniff(json.loads((FIXTURES / "trivy-config.json").read_text()))
    assert not trivy.sniff({"results": [], "summaryDetails": {}})  # Kubescape
    assert not trivy.sniff({"apiVersion": "v1", "kind": "List", "items": []})
    assert load_report(FIXTURES / "trivy-config.json").scanner == "trivy"


def test_malformed_misconfigurations_is_one_line_error() -> None:
    with pytest.raises(ReportError, match="Misconfigurations"):
        parse_report(
            {"SchemaVersion": 2, "Results": [{"Target": "a.yaml", "Misconfigurations": "x"}]}, "r"
        )


def test_every_mapped_title_is_trivys_title() -> None:
    """Real Trivy output names each check it ran; the titles in scanner_map.yaml agree."""
    from bot import scanner_map

    data = json.loads((FIXTURES / "trivy-config.json").read_text())
    seen = {
        scanner_map.normalize("trivy", m["ID"]): m["Title"]
        for r in data["Results"]
        for m in r.get("Misconfigurations") or ()
    }
    table = scanner_map.entries("trivy")
    checked = [i for i in table if i in seen]
    assert len(checked) >= 15
    for check_id in checked:
        assert table[check_id]["title"] == seen[check_id], check_id


def test_a_scan_that_found_nothing_is_an_empty_report(tmp_path: Path) -> None:
    """``trivy config`` of a directory with nothing it can scan writes the report's head and
    no Results: a scan with nothing to fix, not an input error that fails a CI gate."""
    head = {
        "SchemaVersion": 2,
        "Trivy": {"Version": "0.76.0"},
        "ArtifactName": ".",
        "ArtifactType": "repository",
        "Metadata": {"Branch": "main"},
    }
    path = tmp_path / "trivy.json"
    path.write_text(json.dumps(head))
    report = load_report(path)
    assert report.scanner == "trivy" and report.findings == () and report.skipped == ()


def _misconfig(check: str, message: str) -> dict[str, object]:
    return {
        "ID": check,
        "Message": message,
        "Severity": "MEDIUM",
        "Status": "FAIL",
        "CauseMetadata": {"StartLine": 33, "EndLine": 93},
    }


def test_a_chart_rendered_without_a_namespace_names_none() -> None:
    """Trivy renders a chart's templates with no namespace and says "in 'null' namespace"
    (some of its checks): like its "default" for manifests, that is no namespace, and the
    checks that name none do not borrow it."""
    report = parse_report(
        {
            "SchemaVersion": 2,
            "ArtifactName": ".",
            "ArtifactType": "repository",
            "Results": [
                {
                    "Target": "charts/keycloakx/templates/statefulset.yaml",
                    "Class": "config",
                    "Type": "helm",
                    "Misconfigurations": [
                        _misconfig(
                            "KSV-0104",
                            'container "keycloak" of statefulset "keycloakx" in "null" '
                            "namespace should specify a seccomp profile",
                        ),
                        _misconfig(
                            "KSV-0001",
                            "Container 'keycloak' of StatefulSet 'keycloakx' should set "
                            "'securityContext.allowPrivilegeEscalation' to false",
                        ),
                    ],
                }
            ],
        },
        "trivy.json",
    )
    assert {(f.control_id, f.resource.key, f.container) for f in report.findings} == {
        ("C-0210", "StatefulSet//keycloakx", "keycloak"),
        ("C-0016", "StatefulSet//keycloakx", "keycloak"),
    }
