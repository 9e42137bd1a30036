"""The static fix and the evidence-based fix of the same workload side by side, contradictions
declined with the evidence, the corpus pair NetworkNeighborhood -> GeneratedNetworkPolicy, and
the plan/MR/CLI wiring (window in the MR, Falco alerts ranked first and summarised)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.plan import build_plan
from bot.render import describe_change_set
from bot.sources import load_report
from bot.sources.runtime import RuntimeEvidence, load_evidence
from fixers.model import CreateManifest, Finding, Fixed, NeedsHuman, ResourceRef
from fixers.policy import FixContext
from fixers.registry import fixer_for, run_fixer
from fixers.runtime_evidence import VOLATILE_LABELS, observed_policy
from fixers.view import ManifestPodView
from tests.conftest import corpus_path
from tests.fixers._support import apply_plain

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runtime"
EVIDENCE = sorted(p for p in FIXTURES.iterdir() if p.is_file() and p.suffix != ".md")
REPO = FIXTURES / "cd-config"
REPORT = FIXTURES / "reports" / "shop-scans.yaml"
NP_TESTDATA = (
    "runtime/kubescape/storage/pkg/apis/softwarecomposition/v1beta1/networkpolicy/v2/testdata"
)


@pytest.fixture(scope="module")
def evidence() -> RuntimeEvidence:
    return load_evidence(EVIDENCE)


def _view(name: str) -> ManifestPodView:
    docs = list(yaml.safe_load_all((REPO / "shop.yaml").read_text(encoding="utf-8")))
    view = ManifestPodView.from_document(next(d for d in docs if d["metadata"]["name"] == name))
    assert view is not None
    return view


def _finding(control: str, name: str) -> Finding:
    return Finding(
        control_id=control, resource=ResourceRef(kind="Deployment", namespace="shop", name=name)
    )


def _both(control: str, name: str, evidence: RuntimeEvidence) -> tuple[Any, Any]:
    """(static result, evidence-based result) for one control on one workload."""
    fixer = fixer_for(control)
    assert fixer is not None
    finding = _finding(control, name)
    view = _view(name)
    static = run_fixer(fixer, view, finding, FixContext())
    observed = run_fixer(
        fixer, view, finding, FixContext(runtime=evidence.for_resource(finding.resource))
    )
    return static, observed


def _container(result: Fixed, view: ManifestPodView) -> dict[str, Any]:
    return apply_plain(view.document, result.edits)["spec"]["template"]["spec"]


# --------------------------------------------------------------------------- side by side


def test_capabilities_static_removes_insecure_evidence_drops_all_adds_observed(
    evidence: RuntimeEvidence,
) -> None:
    static, observed = _both("C-0046", "web", evidence)
    assert isinstance(static, Fixed) and isinstance(observed, Fixed)
    view = _view("web")
    assert _container(static, view)["containers"][0]["securityContext"]["capabilities"] == {}
    assert _container(observed, view)["containers"][0]["securityContext"]["capabilities"] == {
        "add": ["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"],
        "drop": ["ALL"],
    }
    assert "adds back the 4 observed" in " ".join(observed.notes)
    assert any(
        "Kubescape ApplicationProfile shop/replicaset-web" in v for v in observed.values_used
    )
    # Idempotent on its own output.
    fixed = ManifestPodView.from_document(apply_plain(view.document, observed.edits))
    assert fixed is not None
    again = run_fixer(
        fixer_for("C-0046"),  # type: ignore[arg-type]
        fixed,
        _finding("C-0046", "web"),
        FixContext(runtime=evidence.for_resource(_finding("C-0046", "web").resource)),
    )
    assert type(again).__name__ == "AlreadyCompliant"


def test_read_only_static_mounts_tmp_evidence_mounts_observed_write_dirs(
    evidence: RuntimeEvidence,
) -> None:
    static, observed = _both("C-0017", "web", evidence)
    assert isinstance(static, Fixed) and isinstance(observed, Fixed)
    view = _view("web")
    static_spec, observed_spec = _container(static, view), _container(observed, view)
    # static: /tmp and the well-known nginx write paths (fixers/data/workload_intent.yaml)
    assert [m["mountPath"] for m in static_spec["containers"][0]["volumeMounts"]] == [
        "/tmp",
        "/var/cache/nginx",
        "/var/run",
    ]
    assert [m["mountPath"] for m in observed_spec["containers"][0]["volumeMounts"]] == [
        "/run",
        "/var/cache/nginx",
    ]
    assert observed_spec["volumes"] == [
        {"name": "run", "emptyDir": {}},
        {"name": "var-cache-nginx", "emptyDir": {}},
    ]
    assert "observed writing 3 path(s)" in " ".join(observed.notes)


def test_seccomp_evidence_says_the_observed_calls_fit(evidence: RuntimeEvidence) -> None:
    static, observed = _both("C-0055", "web", evidence)
    assert isinstance(static, Fixed) and isinstance(observed, Fixed)
    assert static.edits == observed.edits
    text = " ".join(observed.notes)
    assert "all 14 observed system calls are allowed by RuntimeDefault" in text
    assert "not counted: keyctl" in text


def test_network_policy_static_is_generic_evidence_names_observed_peers(
    evidence: RuntimeEvidence,
) -> None:
    static, observed = _both("C-0260", "web", evidence)
    assert isinstance(static, Fixed) and isinstance(observed, Fixed)
    generic = static.edits[0]
    built = observed.edits[0]
    assert isinstance(generic, CreateManifest) and isinstance(built, CreateManifest)
    assert generic.document["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    spec = built.document["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app": "web"}}
    peers = [p for rule in spec["ingress"] for p in rule["from"]]
    assert {"ipBlock": {"cidr": "10.0.12.7/32"}} in peers  # only an IP was observed
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
    } in peers
    egress = spec["egress"]
    # pod-template-hash changes with every rollout: the cart peer is named by app only.
    assert {
        "to": [{"podSelector": {"matchLabels": {"app": "cart"}}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    } in egress
    assert any(p.get("port") == 53 for rule in egress for p in rule["ports"]), "DNS kept"
    notes = " ".join(observed.notes)
    assert "DNS egress to kube-dns (UDP/TCP 53) kept although none was observed" in notes
    assert "left out of peer selectors: pod-template-hash" in notes


# --------------------------------------------------------------------------- contradictions


@pytest.mark.parametrize(
    ("control", "says"),
    [
        ("C-0046", "pinger was observed using NET_RAW"),
        ("C-0017", "writes to its root filesystem at 1 path(s) outside scratch directories"),
        ("C-0034", "observed calling the Kubernetes API server and reading the service-account"),
        ("C-0055", "RuntimeDefault would block 1 system call(s) pinger was observed making"),
    ],
)
def test_contradicted_fix_is_declined_with_the_evidence(
    evidence: RuntimeEvidence, control: str, says: str
) -> None:
    static, observed = _both(control, "pinger", evidence)
    assert isinstance(static, Fixed), "without evidence the static fix is proposed"
    assert isinstance(observed, NeedsHuman)
    assert says in observed.reason
    assert "learning completed" in observed.reason  # the observation window is cited


def test_real_profile_contradicts_removing_sys_admin() -> None:
    """Corpus: p11 is a completed ContainerProfile of container `server`, which used SYS_ADMIN."""
    folder = corpus_path("runtime/kubescape/storage/pkg/registry/file/testdata")
    evidence = load_evidence([folder / "p11.json", folder / "p12.json"])
    document = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "multiple-containers-deployment", "namespace": "node-agent-test-hjjz"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "multiple-containers-app"}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "adservice",
                            "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}},
                        },
                        {"name": "nginx", "image": "nginx"},
                    ]
                },
            }
        },
    }
    view = ManifestPodView.from_document(document)
    assert view is not None
    finding = Finding(
        control_id="C-0046",
        container="server",
        resource=ResourceRef(
            kind="Deployment",
            namespace="node-agent-test-hjjz",
            name="multiple-containers-deployment",
        ),
    )
    fixer = fixer_for("C-0046")
    assert fixer is not None
    assert isinstance(run_fixer(fixer, view, finding, FixContext()), Fixed)
    ctx = FixContext(runtime=evidence.for_resource(finding.resource))
    declined = run_fixer(fixer, view, finding, ctx)
    assert isinstance(declined, NeedsHuman)
    assert "server was observed using SETPCAP, SYS_ADMIN" in declined.reason


# --------------------------------------------------------------------------- corpus pair


def _canonical(rules: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rules)


def _without_volatile(rules: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    out = []
    for rule in rules:
        peers = []
        for peer in rule[key]:
            peer = json.loads(json.dumps(peer))
            labels = (peer.get("podSelector") or {}).get("matchLabels")
            if labels:
                peer["podSelector"]["matchLabels"] = {
                    k: v for k, v in labels.items() if k not in VOLATILE_LABELS
                }
            peers.append(peer)
        out.append({**rule, key: peers})
    return out


def test_observed_traffic_gives_kubescapes_expected_policy() -> None:
    """Corpus input -> expected pair: nn-operator.json (+ known-servers.json) -> np-operator.json.
    The one deliberate difference: Job labels that change every run are left out."""
    folder = corpus_path(NP_TESTDATA)
    evidence = load_evidence([folder / "nn-operator.json", folder / "known-servers.json"])
    seen = evidence.for_resource(
        ResourceRef(kind="Deployment", namespace="kubescape", name="operator")
    )
    assert seen is not None
    built = observed_policy(seen)
    assert built is not None
    expected = json.loads((folder / "np-operator.json").read_text())["spec"]["spec"]
    assert _canonical(list(built.egress)) == _canonical(expected["egress"])
    assert _canonical(list(built.ingress)) == _canonical(
        _without_volatile(expected["ingress"], "from")
    )
    assert "DNS egress kept as observed" in built.notes
    assert any("controller-uid" in n and "job-name" in n for n in built.notes)


def test_generated_network_policy_is_used_when_given() -> None:
    folder = corpus_path(NP_TESTDATA)
    evidence = load_evidence([folder / "nn-operator.json", folder / "np-operator.json"])
    seen = evidence.for_resource(
        ResourceRef(kind="Deployment", namespace="kubescape", name="operator")
    )
    assert seen is not None and seen.generated_policy is not None
    built = observed_policy(seen)
    assert built is not None
    expected = json.loads((folder / "np-operator.json").read_text())["spec"]["spec"]
    assert _canonical(list(built.egress)) == _canonical(expected["egress"])
    assert any("GeneratedNetworkPolicy" in v for v in built.values_used)


# --------------------------------------------------------------------------- plan, MR, CLI


def test_plan_ranks_alerted_workloads_first_and_the_mr_shows_window_and_alerts(
    evidence: RuntimeEvidence,
) -> None:
    report = load_report(REPORT)
    plan = build_plan(report, REPO, runtime=evidence.for_resource)
    assert plan.change_sets[0].meta.get("falco-alerts") == "3"
    declined = {(u.finding.control_id, u.finding.resource.name) for u in plan.unfixable}
    assert declined == {
        ("C-0017", "pinger"),
        ("C-0034", "pinger"),
        ("C-0046", "pinger"),
        (
            "C-0055",
            "pinger",
        ),
    }
    text = describe_change_set(plan.change_sets[0], marker="<!-- m -->")
    assert "### Runtime evidence" in text
    assert (
        "3 Falco alert(s) (Error: 'Write below binary dir' x1; Warning: 'Terminal shell in container' x2)"
        in text
    )
    assert "learning completed (profile created 2026-11-02T08:00:00Z)" in text
    assert "hunter2" not in text and "DB_PASSWORD" not in text
    static = build_plan(report, REPO)
    assert not any(cs.notes for cs in static.change_sets)
    assert len(static.unfixable) == 0


def test_cli_plan_with_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "--report", str(REPORT), "--repo", str(REPO)]
    for path in EVIDENCE:
        args += ["--evidence", str(path)]
    assert main(args) == 1  # the contradicted fixes are left for people
    captured = capsys.readouterr()
    assert "runtime evidence: 2 workload(s) with profiles" in captured.err
    assert "runtime evidence contradicts this fix" in captured.out


def test_cli_bad_evidence_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    code = main(["plan", "--report", str(REPORT), "--repo", str(REPO), "--evidence", str(bad)])
    assert code == 2
    err = capsys.readouterr().err
    assert "malformed JSON" in err and "Traceback" not in err
