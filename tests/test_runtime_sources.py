"""Runtime evidence read from files and from a live cluster: real Kubescape objects from the
corpus (read in place), the project's own small objects in the shape of the Go types, Falco's
JSON output and falcosidekick payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.cluster import ClusterAccess
from bot.errors import ReportError
from bot.sources import runtime
from bot.sources.runtime import RuntimeEvidence, fetch_evidence, load_evidence, pod_of
from fixers.model import ResourceRef
from tests.conftest import corpus_path
from tests.kube_apiserver import FakeKubeApiServer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runtime"
EVIDENCE = sorted(p for p in FIXTURES.iterdir() if p.is_file() and p.suffix != ".md")
NP_TESTDATA = (
    "runtime/kubescape/storage/pkg/apis/softwarecomposition/v1beta1/networkpolicy/v2/testdata"
)


def _ref(name: str, namespace: str = "shop", kind: str = "Deployment") -> ResourceRef:
    return ResourceRef(kind=kind, namespace=namespace, name=name)


def test_real_container_profiles_only_completed_learning_is_used() -> None:
    folder = corpus_path("runtime/kubescape/storage/pkg/registry/file/testdata")
    evidence = load_evidence(sorted(folder.glob("p*.json")))
    # p11 and p12 are the only ones with status completed and completion complete.
    used = evidence.for_resource(
        _ref("multiple-containers-deployment", namespace="node-agent-test-hjjz")
    )
    assert used is not None
    assert {c.name for c in used.containers} == {"server", "nginx"}
    server = used.container("server")
    assert server is not None and server.capabilities == (
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
    )
    assert server.execs == 1 and server.opens == 5 and server.written == ()
    assert "last report 2025-06-24T10:35:50Z" in used.window
    assert evidence.for_resource(_ref("coredns", namespace="kube-system")) is None
    reasons = {s.reason for s in evidence.skipped}
    assert len(evidence.skipped) == 10
    assert any("status: ready" in r and "completion: partial" in r for r in reasons)
    assert any("status: completed" in r and "completion: partial" in r for r in reasons)


def test_real_application_profile_in_the_api_shape() -> None:
    path = corpus_path("runtime/kubescape/node-agent/mocks/testdata/nginx_applicationprofiles.json")
    evidence = load_evidence([path])
    found = evidence.for_resource(ResourceRef(kind="Deployment", name="nginx"))
    assert found is not None
    # The mock's container carries no name: it stands for the pod's only container.
    assert found.container("nginx", regular_containers=1) is not None
    assert found.container("nginx", regular_containers=2) is None
    observed = found.container("nginx", regular_containers=1)
    assert observed is not None
    assert observed.capabilities == (
        "CHOWN",
        "DAC_OVERRIDE",
        "NET_BIND_SERVICE",
        "SETGID",
        "SETUID",
    )


def test_real_network_neighborhood_and_generated_policy_join_their_workload() -> None:
    folder = corpus_path(NP_TESTDATA)
    evidence = load_evidence(
        [folder / "nn-operator.json", folder / "np-operator.json", folder / "known-servers.json"]
    )
    found = evidence.for_resource(_ref("operator", namespace="kubescape"))
    assert found is not None and found.network_observed
    assert (len(found.ingress), len(found.egress)) == (3, 10)
    assert found.generated_policy is not None
    assert found.generated_policy["kind"] == "NetworkPolicy"
    assert [k.cidr for k in found.known_servers] == ["16.170.0.0/15", "13.50.180.111/24"]
    assert found.window == "learning completed (profile created 2024-05-30T08:20:01Z)"


def test_generated_policy_without_completed_neighbourhood_is_not_used() -> None:
    evidence = load_evidence([corpus_path(NP_TESTDATA, "np-operator.json")])
    assert evidence.for_resource(_ref("operator", namespace="kubescape")) is None
    assert "no completed NetworkNeighborhood" in evidence.skipped[0].reason


def test_real_falco_outputs_without_k8s_fields_are_counted_not_joined() -> None:
    files = [
        corpus_path("runtime/falco/falco/test/output_files/single_rule_with_cat_write.json"),
        *sorted(corpus_path("runtime/falco/falcosidekick").glob("*.json")),
    ]
    evidence = load_evidence(files)
    assert evidence.unattributed_alerts == 8 + 3
    assert not evidence.alerts


def test_own_fixtures_join_profiles_neighbourhoods_and_alerts() -> None:
    evidence = load_evidence(EVIDENCE)
    web = evidence.for_resource(_ref("web"))
    pinger = evidence.for_resource(_ref("pinger"))
    assert web is not None and pinger is not None
    assert web.container("web") is not None and web.network_observed
    assert [a.rule for a in web.alerts].count("Terminal shell in container") == 2
    # Same pod name in another namespace, and an alert without k8s fields: not web's.
    assert len(web.alerts) == 3 and evidence.unattributed_alerts == 1
    # The stored Go shape (capitalised Spec, IPAddress, PodSelector) reads like the API shape.
    observed = pinger.container("pinger")
    assert observed is not None
    assert observed.capabilities == ("NET_RAW", "SETUID") and observed.reads_token
    assert observed.written == ("/etc/pinger/state.db",)
    assert pinger.talks_to_api_server()
    assert "last report 2026-11-03T08:00:00Z" in pinger.window
    assert evidence.for_resource(_ref("worker")) is None
    assert "kubescape.io/status: ready" in evidence.describe()


def test_alert_text_is_never_kept() -> None:
    evidence = load_evidence([FIXTURES / "falco-alerts.ndjson"])
    assert "hunter2" not in repr(evidence.alerts)


def test_intent_evidence_matches_the_trust_intent_record_fields() -> None:
    pinger = load_evidence(EVIDENCE).for_resource(_ref("pinger"))
    assert pinger is not None
    records = list(pinger.intent_evidence())
    assert {tuple(sorted(r)) for r in records} == {
        ("container", "detail", "needs", "paths", "source")
    }
    needs = {n for r in records for n in r["needs"]}
    assert {"capability:NET_RAW", "writableRoot", "apiServer"} <= needs


@pytest.mark.parametrize(
    ("kind", "name", "pod", "owned"),
    [
        ("Deployment", "web", "web-7d4b9c8f6d-x2x9z", True),
        ("Deployment", "web", "web-api-7d4b9c8f6d-x2x9z", False),
        ("StatefulSet", "db", "db-0", True),
        ("DaemonSet", "agent", "agent-x2x9z", True),
        ("CronJob", "report", "report-28618366-x2x9z", True),
        ("Pod", "debug", "debug", True),
        ("Service", "web", "web-x2x9z", False),
    ],
)
def test_pods_are_joined_to_their_controller_by_name(
    kind: str, name: str, pod: str, owned: bool
) -> None:
    assert pod_of(kind, name, pod) is owned


def test_bounded_and_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 60 + "]" * 60, encoding="utf-8")
    with pytest.raises(ReportError, match="nested deeper than"):
        load_evidence([deep])
    other = tmp_path / "scan.json"
    other.write_text(json.dumps({"kind": "Deployment"}), encoding="utf-8")
    with pytest.raises(ReportError, match="no Kubescape runtime object or Falco alert"):
        load_evidence([other])
    monkeypatch.setattr(runtime, "MAX_BYTES", 10)
    with pytest.raises(ReportError, match="over the limit"):
        load_evidence([FIXTURES / "falco-alerts.ndjson"])
    with pytest.raises(ReportError, match="not found"):
        load_evidence([tmp_path / "missing.json"])


def test_annotations_of_the_wrong_shape_are_no_traceback() -> None:
    profile = {
        "apiVersion": "spdx.softwarecomposition.kubescape.io/v1beta1",
        "kind": "ApplicationProfile",
        "metadata": {
            "name": "replicaset-web-5d9c7",
            "namespace": "shop",
            "labels": {
                "kubescape.io/workload-kind": "Deployment",
                "kubescape.io/workload-name": "web",
            },
            "annotations": "not a mapping",
        },
        "spec": {"containers": [{"name": "app"}]},
    }
    evidence = RuntimeEvidence()
    evidence.add([profile], "odd.json")
    evidence.finish()
    assert evidence.workloads == {}
    (skipped,) = evidence.skipped
    assert skipped.what == "ApplicationProfile shop/replicaset-web-5d9c7"
    assert "learning not complete" in skipped.reason


# --------------------------------------------------------------------------- live cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubeApiServer, Path]]:
    server = FakeKubeApiServer()
    for path in EVIDENCE:
        if path.suffix == ".ndjson" or path.name.startswith("pinger-containerprofile"):
            continue  # Falco alerts are no API objects; the stored shape is never served
        text = path.read_text(encoding="utf-8")
        server.add_runtime(json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))
    server.add_runtime(json.loads(corpus_path(NP_TESTDATA, "known-servers.json").read_text())[0])
    with server.running():
        yield server, server.kubeconfig(tmp_path / "kubeconfig")


def test_live_cluster_read_through_the_kubernetes_client(
    cluster: tuple[FakeKubeApiServer, Path],
) -> None:
    server, kubeconfig = cluster
    evidence = fetch_evidence(ClusterAccess(kubeconfig=str(kubeconfig)), page_size=1)
    web = evidence.for_resource(_ref("web"))
    assert web is not None and web.container("web") is not None and web.network_observed
    assert evidence.for_resource(_ref("pinger")) is not None  # its NetworkNeighborhood
    assert [k.cidr for k in evidence.known_servers] == ["16.170.0.0/15", "13.50.180.111/24"]
    assert any("worker" in s.what and "status: ready" in s.reason for s in evidence.skipped)
    paged = [r for r in server.requests if "applicationprofiles" in r and "continue=" in r]
    assert paged, "lists are read page by page"
    # Not installed: containerprofiles are unknown to this server, which is passed over.
    assert any("containerprofiles" in s.what for s in evidence.skipped)


def test_live_cluster_forbidden_is_one_clear_line(
    cluster: tuple[FakeKubeApiServer, Path],
) -> None:
    server, kubeconfig = cluster
    server.denied.add(("networkneighborhoods", "shop"))
    with pytest.raises(ReportError, match=r"403 Forbidden.*grant the bot's identity get and list"):
        fetch_evidence(ClusterAccess(kubeconfig=str(kubeconfig)), namespace="shop")


def test_live_cluster_without_kubescape_storage(tmp_path: Path) -> None:
    server = FakeKubeApiServer()
    with server.running():
        kubeconfig = server.kubeconfig(tmp_path / "kubeconfig")
        with pytest.raises(ReportError, match="serves none of Kubescape's runtime objects"):
            fetch_evidence(ClusterAccess(kubeconfig=str(kubeconfig)))


def test_evidence_accumulates_over_several_sources() -> None:
    evidence = RuntimeEvidence()
    load_evidence([FIXTURES / "web-applicationprofile.yaml"], evidence)
    load_evidence([FIXTURES / "falco-alerts.ndjson"], evidence)
    web = evidence.for_resource(_ref("web"))
    assert web is not None and web.profiled and len(web.alerts) == 3
