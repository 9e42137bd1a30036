"""Findings read from a cluster: `remedy plan --from-cluster` and projects configured with
``report: {kind: kubescape-operator}`` or ``{kind: cluster, scanners: [...]}``, against a Kubernetes
API server on loopback holding the Kubescape operator's scans of tests/fixtures/manifests and
real Kyverno and Trivy-Operator reports from the corpus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.cluster import ClusterAccess
from bot.errors import ReportError
from bot.service import fetch_report
from bot.settings import ClusterReport, ProjectConfig, Settings
from bot.sources import fetch_from_cluster, kubescape_operator, kyverno, load_report, trivy
from tests.conftest import corpus_path
from tests.kube_apiserver import FakeKubeApiServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCANS = FIXTURES / "reports" / "kubescape-operator" / "workloadconfigurationscans.yaml"


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    server = FakeKubeApiServer()
    items = yaml.safe_load(SCANS.read_text(encoding="utf-8"))["items"]
    server.add(kubescape_operator.SCANS, items[0]["kind"], *items)
    with server.running():
        yield server.kubeconfig(tmp_path / "kubeconfig", context="prod-eu")


def test_plan_from_cluster(kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "plan",
            "--from-cluster",
            "--kubeconfig",
            str(kubeconfig),
            "--kube-context",
            "prod-eu",
            "--repo",
            str(FIXTURES / "manifests"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1  # the RBAC finding is left for people
    for branch in (
        "host-namespaces/node-agent-daemonset",
        "security-context/backend",
        "security-context/web-deployment",
        "service-account/web-deployment",
    ):
        assert branch in out
    assert "C-0015" in out and "rbac" in out
    assert "NSA 29.6 % -> " in out  # scores from the operator's per-workload statuses
    # a PostgreSQL StatefulSet gets a sizing recommendation, not the generic small default
    assert "runs PostgreSQL; recommendation" in " ".join(out.split())


def test_plan_needs_a_report_or_the_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--repo", str(FIXTURES / "manifests")])
    assert code == 2
    assert "give --report FILE or --from-cluster" in capsys.readouterr().err


def test_project_reads_its_report_from_the_cluster(kubeconfig: Path, tmp_path: Path) -> None:
    project = ProjectConfig(
        id="platform/cd-config",
        report=ClusterReport(
            kind="kubescape-operator", kubeconfig=str(kubeconfig), namespace="shop"
        ),
    )
    settings: Any = Settings(data_dir=str(tmp_path), projects=[project])
    report = fetch_report(settings, project, forge=None)  # type: ignore[arg-type]
    assert report.scanner == "kubescape-operator"
    assert {(f.control_id, f.resource.key) for f in report.findings} == {
        ("C-0013", "StatefulSet/shop/db"),
        ("C-0009", "StatefulSet/shop/db"),
    }


POLR = ("scans", "kyverno", "ocm-policy-collection__polr-openshift-authentication-operator.yaml")
CONFIG_AUDIT = ("scans", "trivy", "defectdojo__trivy-operator__configauditreport_many.json")


def _findings(report: Any) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(f.control_id, f.resource.key, f.scanner_ids) for f in report.findings}


def test_kyverno_policy_reports_from_the_cluster(tmp_path: Path) -> None:
    path = corpus_path(*POLR)
    polr = yaml.safe_load(path.read_text(encoding="utf-8"))
    namespace = polr["metadata"]["namespace"]
    server = FakeKubeApiServer()
    policy_reports, cluster_reports = kyverno.CLUSTER_RESOURCES[:2]
    server.add(policy_reports, "PolicyReport", polr)
    server.add(
        cluster_reports,
        "ClusterPolicyReport",
        {
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "ClusterPolicyReport",
            "metadata": {"name": "cpol-require-labels"},
            "results": [],
        },
    )
    with server.running():
        access = ClusterAccess(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")))
        everywhere = fetch_from_cluster("kyverno", access)
        requests = list(server.requests)
        server.requests.clear()
        one = fetch_from_cluster("kyverno", access, namespace)
    assert _findings(everywhere) == _findings(load_report(path))
    assert _findings(one) == _findings(everywhere)
    # openreports.io is not served by this cluster (Kyverno before 1.15): passed over
    assert sum("/openreports.io/" in r for r in requests) == 2
    assert any("/clusterpolicyreports?" in r for r in requests)
    # one namespace: no cluster-scoped reports
    assert not any("cluster" in r.split("?")[0] for r in server.requests)
    assert server.requests[0].startswith(
        f"GET /apis/wgpolicyk8s.io/v1alpha2/namespaces/{namespace}/policyreports?"
    )


def test_trivy_operator_reports_from_the_cluster(tmp_path: Path) -> None:
    path = corpus_path(*CONFIG_AUDIT)
    report = json.loads(path.read_text(encoding="utf-8"))
    server = FakeKubeApiServer()
    server.add(trivy.CLUSTER_RESOURCES[0], "ConfigAuditReport", report)
    with server.running():
        access = ClusterAccess(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")))
        fetched = fetch_from_cluster("trivy", access)
    assert fetched.findings
    assert _findings(fetched) == _findings(load_report(path))


def test_a_cluster_without_the_scanner_says_so(tmp_path: Path) -> None:
    server = FakeKubeApiServer()
    with server.running():
        access = ClusterAccess(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")))
        with pytest.raises(ReportError, match=r"serves none of policyreports\.wgpolicyk8s\.io, "):
            fetch_from_cluster("kyverno", access)
    with pytest.raises(
        ReportError, match=r"cannot be read from a cluster \(known: kubescape-operator"
    ):
        fetch_from_cluster("checkov", ClusterAccess())


def test_project_reads_several_scanners_from_the_cluster(tmp_path: Path) -> None:
    path = corpus_path(*POLR)
    server = FakeKubeApiServer()
    items = yaml.safe_load(SCANS.read_text(encoding="utf-8"))["items"]
    server.add(kubescape_operator.SCANS, "WorkloadConfigurationScan", *items)
    server.add(
        kyverno.CLUSTER_RESOURCES[0],
        "PolicyReport",
        yaml.safe_load(path.read_text(encoding="utf-8")),
    )
    with server.running():
        kubeconfig = str(server.kubeconfig(tmp_path / "kubeconfig"))
        project = ProjectConfig(
            id="platform/cd-config",
            report=ClusterReport(scanners=("kubescape-operator", "kyverno"), kubeconfig=kubeconfig),
        )
        settings: Any = Settings(data_dir=str(tmp_path), projects=[project])
        report = fetch_report(settings, project, forge=None)  # type: ignore[arg-type]
    assert report.scanner == "kubescape-operator+kyverno"
    assert {f.scanner for f in report.findings} == {"kubescape-operator", "kyverno"}
    assert report.summary["frameworks"]  # the operator's scores stay readable


def test_the_short_form_reads_the_operator_only() -> None:
    assert ClusterReport(kind="kubescape-operator").scanners == ("kubescape-operator",)
    with pytest.raises(ValueError, match="use kind: cluster"):
        ClusterReport(kind="kubescape-operator", scanners=("kyverno",))
