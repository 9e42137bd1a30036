"""The Kubescape operator's WorkloadConfigurationScans: from files written here in the operator's
shape, and from a cluster (a Kubernetes API server on loopback, read with the kubernetes client),
including a real Kubescape cluster scan from the corpus stored the way the operator stores it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cluster import ClusterAccess
from bot.errors import ReportError
from bot.plan import dedupe
from bot.score import framework_scores
from bot.sources import fetch_from_cluster, kubescape_operator, load_report, parse_report
from bot.sources.base import Report
from bot.sources.merge import merge_reports
from fixers.model import Severity
from tests.conftest import corpus_path
from tests.kube_apiserver import FakeKubeApiServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports" / "kubescape-operator"
SCANS_FILE = FIXTURES / "workloadconfigurationscans.yaml"
SUMMARIES_FILE = FIXTURES / "workloadconfigurationscansummaries.json"
GROUP, VERSION = kubescape_operator.GROUP, kubescape_operator.VERSION


def _items(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["items"]


def _keys(report: Report) -> set[tuple[str, str]]:
    return {(f.control_id, f.resource.key) for f in report.findings}


@pytest.fixture(scope="module")
def scans() -> Report:
    return load_report(SCANS_FILE)


# --------------------------------------------------------------------------- files


def test_scans_become_findings_per_failed_control(scans: Report) -> None:
    assert scans.scanner == "kubescape-operator"
    assert _keys(scans) == {
        ("C-0016", "Deployment/default/web"),
        ("C-0017", "Deployment/default/web"),
        ("C-0009", "Deployment/default/web"),
        ("C-0034", "Deployment/default/web"),
        ("C-0013", "StatefulSet/shop/db"),
        ("C-0009", "StatefulSet/shop/db"),
        ("C-0038", "DaemonSet/monitoring/node-agent"),
        ("C-0041", "DaemonSet/monitoring/node-agent"),
        ("C-0057", "DaemonSet/monitoring/node-agent"),
        ("C-0015", "ServiceAccount/shop/report-writer"),
    }
    web = {f.control_id: f for f in scans.findings if f.resource.name == "web"}
    assert web["C-0016"].resource.api_version == "apps/v1"
    assert web["C-0016"].severity is Severity.MEDIUM
    assert web["C-0009"].severity is Severity.HIGH
    assert web["C-0017"].severity is Severity.LOW
    assert web["C-0016"].scanner_ids == ("C-0016",)
    assert web["C-0016"].message == "Allow privilege escalation"
    # the operator keeps no source path and no object: the locator finds the workload by name
    assert web["C-0016"].source.path is None
    assert scans.resources == {}


def test_rule_paths_become_hints_keeping_the_container_index(scans: Report) -> None:
    web = {f.control_id: f for f in scans.findings if f.resource.name == "web"}
    (hint,) = web["C-0016"].hints
    assert (hint.kind, hint.path, hint.value) == (
        "fix",
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
        "false",
    )
    assert web["C-0016"].container is None  # no embedded object to name the container
    assert [h.path for h in web["C-0017"].hints] == [
        "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem",
        "spec.template.spec.containers[1].securityContext.readOnlyRootFilesystem",
    ]
    assert all(h.placeholder and h.value is None for h in web["C-0009"].hints)  # YOUR_VALUE
    db = next(f for f in scans.findings if (f.control_id, f.resource.name) == ("C-0013", "db"))
    assert [(h.kind, h.path) for h in db.hints] == [
        ("failed", "spec.template.spec.securityContext.runAsUser"),
        ("fix", "spec.template.spec.containers[0].securityContext.runAsNonRoot"),
    ]


def test_workload_named_by_labels_annotation_or_neither(scans: Report) -> None:
    kinds = {f.resource.name: f.resource.kind for f in scans.findings}
    assert kinds["db"] == "StatefulSet"  # the label said "statefulset"
    assert kinds["node-agent"] == "DaemonSet"  # no labels: from the wlid annotation
    sa = next(f for f in scans.findings if f.control_id == "C-0015")
    # stored in the operator's namespace, named after the subject (the wlid names the binding)
    assert (sa.resource.kind, sa.resource.namespace, sa.resource.api_version) == (
        "ServiceAccount",
        "shop",
        "v1",
    )
    (orphan,) = scans.skipped
    assert orphan.what == "WorkloadConfigurationScan orphan"
    assert "names no workload" in orphan.reason


@pytest.mark.parametrize(
    ("labels", "wlid", "expected"),
    [
        (
            {"kind": "Deployment", "name": "web", "namespace": "a", "api-group": "apps"},
            None,
            "apps/v1/a/Deployment/web",
        ),
        ({"kind": "pod", "name": "p", "namespace": "a", "api-group": ""}, None, "v1/a/Pod/p"),
        (
            {"kind": "ClusterRole", "name": "admin", "api-group": "rbac.authorization.k8s.io"},
            None,
            "rbac.authorization.k8s.io/v1//ClusterRole/admin",
        ),
        # label values stop at 63 characters; the wlid annotation has the whole name
        (
            {"kind": "Deployment", "name": "a" * 63, "namespace": "n", "api-group": "apps"},
            "wlid://cluster-x/namespace-n/deployment-" + "a" * 70,
            "apps/v1/n/Deployment/" + "a" * 70,
        ),
        # an RBAC subject: the wlid is its RoleBinding's, never used for the subject's name
        (
            {"kind": "ServiceAccount", "name": "sa", "namespace": "n", "api-group": ""},
            "wlid://cluster-x/namespace-n/rolebinding-sa-binding",
            "v1/n/ServiceAccount/sa",
        ),
        ({}, "wlid://cluster-x/namespace-n/cronjob-nightly", "/n/CronJob/nightly"),
        ({"namespace": "n"}, None, None),
    ],
)
def test_workload_id(labels: dict[str, str], wlid: str | None, expected: str | None) -> None:
    full = {f"kubescape.io/workload-{k}": v for k, v in labels.items()}
    if labels:
        full["kubescape.io/workload-api-version"] = "v1"
    metadata: dict[str, Any] = {"name": "x", "labels": full}
    if wlid:
        metadata["annotations"] = {"kubescape.io/wlid": wlid}
    assert kubescape_operator.workload_id({"metadata": metadata}) == expected


def test_summaries_give_findings_without_hints() -> None:
    report = load_report(SUMMARIES_FILE)
    assert _keys(report) == {
        ("C-0009", "Deployment/default/web"),
        ("C-0016", "Deployment/default/web"),
        ("C-0017", "Deployment/default/web"),
        ("C-0034", "Deployment/default/web"),
    }
    assert all(f.hints == () for f in report.findings)
    assert {f.control_id: f.message for f in report.findings}["C-0016"] == (
        "Allow privilege escalation"  # the summary has no name: the catalog's
    )


def test_scan_and_summary_of_one_workload_give_one_finding(scans: Report) -> None:
    summaries = json.loads(SUMMARIES_FILE.read_text(encoding="utf-8"))["items"]
    both = parse_report({"kind": "List", "items": [*_items(SCANS_FILE), *summaries]}, "x")
    assert _keys(both) == _keys(scans)
    web = [f for f in both.findings if f.resource.name == "web" and f.control_id == "C-0016"]
    assert len(web) == 1
    assert web[0].hints  # the scan's hints survive
    # read as two reports, the planner makes one finding of them
    merged = merge_reports([scans, load_report(SUMMARIES_FILE)])
    assert len(dedupe(merged.findings)) == len(scans.findings)


def test_framework_scores_follow_kubescapes_formula(scans: Report) -> None:
    nsa = {f["name"]: f for f in scans.summary["frameworks"]}["NSA"]["controls"]
    assert nsa["C-0057"] == {
        "name": "Privileged container",
        "status": "failed",
        "passed": 2,
        "failed": 1,
        "skipped": 0,
        "excluded": 0,
    }
    assert nsa["C-0034"]["skipped"] == 1  # the CronJob's "manual review"
    assert nsa["C-0044"]["status"] == "passed"
    # mean of control compliance: C-0009 0, C-0013 50, C-0016 50, C-0017 0, C-0034 0,
    # C-0038 0, C-0041 0, C-0044 100, C-0057 66.7
    before = framework_scores(scans)
    assert before["NSA"] == pytest.approx((50 + 50 + 100 + 200 / 3) / 9)
    fixed = [f.identity for f in scans.findings if f.resource.name == "web"]
    after = framework_scores(scans, fixed)
    # web passes C-0009 (1 of 2: 50) and C-0016, C-0017, C-0034 (no failed workload left: the
    # control passes, 100); C-0013 50, C-0038 0, C-0041 0, C-0044 100, C-0057 66.7 as before
    assert after["NSA"] == pytest.approx((50 + 50 + 100 + 100 + 100 + 100 + 200 / 3) / 9)


def test_detected_among_other_formats() -> None:
    data = yaml.safe_load(SCANS_FILE.read_text(encoding="utf-8"))
    assert parse_report(data, "x").scanner == "kubescape-operator"
    assert parse_report(data["items"][0], "x").findings  # one object alone
    other = {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport", "results": []}
    assert not kubescape_operator.sniff(other)
    assert not kubescape_operator.sniff({"kind": "List", "items": [data["items"][0], other]})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o["spec"].update(controls=["C-0016"]), "spec.controls is not a mapping"),
        (lambda o: o["spec"]["controls"].update({"C-0016": "failed"}), "control C-0016 is not"),
    ],
)
def test_malformed_objects_are_named(mutate: Any, message: str) -> None:
    item = _items(SCANS_FILE)[0]
    mutate(item)
    with pytest.raises(ReportError, match=message) as error:
        parse_report(item, "scans.json")
    assert "apps-v1-deployment-web" in str(error.value)


def test_unknown_control_ids_are_skipped_not_lost() -> None:
    item = _items(SCANS_FILE)[0]
    item["spec"]["controls"]["C-9999"] = {
        "controlID": "C-9999",
        "name": "A control from a newer Kubescape",
        "status": {"status": "failed"},
        "rules": [],
    }
    report = parse_report(item, "x")
    assert ("C-9999", "Deployment/default/web") in _keys(report)  # canonical id: kept as is
    item["spec"]["controls"]["CIS-99.1"] = {"controlID": "CIS-99.1", "status": {"status": "failed"}}
    report = parse_report(item, "x")
    assert any(s.what.startswith("CIS-99.1 on Deployment") for s in report.skipped)


# --------------------------------------------------------------------------- cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubeApiServer, ClusterAccess]]:
    server = FakeKubeApiServer()
    server.add(kubescape_operator.SCANS, "WorkloadConfigurationScan", *_items(SCANS_FILE))
    with server.running():
        access = ClusterAccess(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")))
        yield server, access


def test_fetch_reads_every_namespace_page_by_page(cluster: Any, scans: Report) -> None:
    server, access = cluster
    report = fetch_from_cluster("kubescape-operator", access, page_size=2)
    assert _keys(report) == _keys(scans)
    assert report.summary == scans.summary
    assert len(server.requests) == 3  # 6 objects, 2 per page
    assert all(
        r.startswith(f"GET /apis/{GROUP}/{VERSION}/workloadconfigurationscans?")
        for r in server.requests
    )
    assert "continue=" in server.requests[1]
    assert report.origin.endswith(
        "workloadconfigurationscans.spdx.softwarecomposition.kubescape.io in all namespaces"
    )


def test_fetch_one_namespace(cluster: Any) -> None:
    server, access = cluster
    report = fetch_from_cluster("kubescape-operator", access, "shop")
    assert {f.resource.key for f in report.findings} == {"StatefulSet/shop/db"}
    assert server.requests[0].startswith(f"GET /apis/{GROUP}/{VERSION}/namespaces/shop/")


def test_forbidden_names_the_rbac_to_grant(cluster: Any) -> None:
    server, access = cluster
    server.denied.add(("workloadconfigurationscans", None))
    with pytest.raises(ReportError) as error:
        fetch_from_cluster("kubescape-operator", access)
    text = str(error.value)
    assert "403 Forbidden" in text
    assert 'cannot list resource "workloadconfigurationscans"' in text  # the server's words
    assert "get and list on workloadconfigurationscans in API group " + GROUP in text


def test_bad_token_missing_api_and_expired_listing(cluster: Any, tmp_path: Path) -> None:
    server, access = cluster
    stale = ClusterAccess(kubeconfig=str(server.kubeconfig(tmp_path / "old", token="expired")))
    with pytest.raises(ReportError, match=r"rejected the credentials \(401"):
        fetch_from_cluster("kubescape-operator", stale)

    server.collections.clear()
    with pytest.raises(
        ReportError, match=r"serves no workloadconfigurationscans.* is the component"
    ):
        fetch_from_cluster("kubescape-operator", access)


def test_listing_that_changes_between_pages_is_reported(tmp_path: Path) -> None:
    server = FakeKubeApiServer()
    items = _items(SCANS_FILE)
    collection = server.add(kubescape_operator.SCANS, "WorkloadConfigurationScan", *items)
    server.on_page = lambda c: server.add(
        c.resource, c.kind, dict(items[0], metadata={"name": "new"})
    )
    with server.running():
        access = ClusterAccess(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")))
        with pytest.raises(ReportError, match=r"expired while it was read page by page \(410"):
            fetch_from_cluster("kubescape-operator", access, page_size=2)
    assert collection.objects[-1]["metadata"]["name"] == "new"


def test_unreachable_server_and_missing_credentials(tmp_path: Path, monkeypatch: Any) -> None:
    server = FakeKubeApiServer()
    with server.running():
        kubeconfig = server.kubeconfig(tmp_path / "kubeconfig")
    # the server is gone: nothing listens on its port any more
    with pytest.raises(
        ReportError, match=r"cannot reach the cluster API server http://127\.0\.0\.1"
    ):
        fetch_from_cluster("kubescape-operator", ClusterAccess(kubeconfig=str(kubeconfig)))

    with pytest.raises(ReportError, match="cannot use context 'nope'"):
        fetch_from_cluster(
            "kubescape-operator", ClusterAccess(kubeconfig=str(kubeconfig), context="nope")
        )

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ReportError, match="no cluster credentials"):
        fetch_from_cluster("kubescape-operator", ClusterAccess())

    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{kubeconfig}")
    with pytest.raises(ReportError, match="cannot reach"):  # found in the $KUBECONFIG list
        fetch_from_cluster("kubescape-operator", ClusterAccess())


# --------------------------------------------------------------------------- a real scan


def _as_operator_objects(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Kubescape JSON report stored the way the operator stores it (kubescape's
    APIServerStore: one WorkloadConfigurationScan per result, labels from the scanned object,
    RulePath keeping only failedPath and the flat fixPath/fixPathValue)."""
    objects = {r["resourceID"]: r.get("object") or {} for r in report["resources"]}
    items = []
    for i, result in enumerate(report["results"]):
        obj = objects[result["resourceID"]]
        meta = obj.get("metadata") or obj  # a response vector names its subject at the top
        group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
        labels = {
            "kubescape.io/workload-api-group": group,
            "kubescape.io/workload-api-version": version,
            "kubescape.io/workload-kind": obj["kind"],
            "kubescape.io/workload-name": meta["name"],
        }
        if meta.get("namespace"):
            labels["kubescape.io/workload-namespace"] = meta["namespace"]
        controls = {}
        for control in result.get("controls") or ():
            rules = []
            for rule in control.get("rules") or ():
                paths = [
                    {
                        "failedPath": p.get("failedPath") or "",
                        "fixPath": (p.get("fixPath") or {}).get("path") or "",
                        "fixPathValue": (p.get("fixPath") or {}).get("value") or "",
                        "fixCommand": p.get("fixCommand") or "",
                    }
                    for p in rule.get("paths") or ()
                ]
                status = {
                    "status": rule.get("status") or "",
                    "subStatus": rule.get("subStatus") or "",
                }
                rules.append({"name": rule["name"], "status": status, "paths": paths})
            controls[control["controlID"]] = {
                "controlID": control["controlID"],
                "name": control["name"],
                "severity": {"severity": "", "scoreFactor": 0},
                "status": {"status": control["status"]["status"], "subStatus": "", "info": ""},
                "rules": rules,
            }
        items.append(
            {
                "metadata": {"name": f"scan-{i}", "namespace": "kubescape", "labels": labels},
                "spec": {"controls": controls, "relatedObjects": []},
            }
        )
    return items


def test_real_cluster_scan_read_back_from_the_operator(tmp_path: Path) -> None:
    path = corpus_path("scans", "kubescape", "scape-a-lyzer__sample.json")
    direct = load_report(path)
    server = FakeKubeApiServer()
    raw = json.loads(path.read_text(encoding="utf-8"))
    objects = _as_operator_objects(raw)
    server.add(kubescape_operator.SCANS, "WorkloadConfigurationScan", *objects)
    with server.running():
        access = ClusterAccess(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")))
        operator = fetch_from_cluster("kubescape-operator", access, page_size=50)
    assert len(server.requests) == 5  # 227 objects
    assert _keys(operator) == _keys(direct)
    assert len(_keys(direct)) > 100
    # the same hints, less those the operator does not store (review and delete paths)
    direct_hints = {(f.control_id, f.resource.key, h) for f in direct.findings for h in f.hints}
    for finding in operator.findings:
        for hint in finding.hints:
            assert (finding.control_id, finding.resource.key, hint) in direct_hints
