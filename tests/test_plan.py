"""The pipeline on real material: Kubescape's own scan of the online-boutique manifests."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from bot.plan import build_plan, dedupe
from bot.sources import load_report
from bot.sources.base import Report
from fixers.edits import load_documents
from fixers.model import Finding, ResourceRef, SourceHint
from tests.conftest import corpus_path
from tests.test_verify import DEPLOYMENT
from tests.test_verify import finding as web_finding


@pytest.fixture
def boutique(tmp_path: Path) -> tuple[Report, Path]:
    report = load_report(corpus_path("scans", "kubescape", "defectdojo__many_findings.json"))
    repo = tmp_path / "cd-config"
    shutil.copytree(corpus_path("manifests", "kubescape-online-boutique"), repo)
    return report, repo


def by_key(plan):  # type: ignore[no-untyped-def]
    return {cs.key: cs for cs in plan.change_sets}


def test_boutique_change_sets(boutique: tuple[Report, Path]) -> None:
    report, repo = boutique
    plan = build_plan(report, repo)
    sets = by_key(plan)
    frontend = sets["security-context/frontend"]
    assert set(frontend.controls) >= {"C-0016", "C-0055"}
    assert [c.path for c in frontend.files] == ["frontend.yaml"]
    after = load_documents(frontend.files[0].after)
    container = after[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # the Service document after the Deployment is untouched
    before_docs = load_documents(frontend.files[0].before or "")
    assert after[1:] == before_docs[1:]
    # a read-only root can break the workload: it travels alone, never among harmless fixes
    assert "C-0017" not in frontend.controls
    read_only = sets["security-context/frontend--read-only-root-filesystem"]
    assert read_only.controls == ("C-0017",)
    container = load_documents(read_only.files[0].after)[0]["spec"]["template"]["spec"]
    container = container["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    policy = sets["network-policy/frontend"]
    assert [c.path for c in policy.files] == ["frontend-networkpolicy.yaml"]
    assert policy.files[0].is_new
    netpol = load_documents(policy.files[0].after)[0]
    assert netpol["spec"]["podSelector"] == {"matchLabels": {"app": "frontend"}}


def test_boutique_only_needed_lines_change(boutique: tuple[Report, Path]) -> None:
    report, repo = boutique
    plan = build_plan(report, repo)
    for cs in plan.change_sets:
        for change in cs.files:
            if change.is_new:
                continue
            before = (change.before or "").splitlines()
            after = change.after.splitlines()
            # pure insertions: every original line is still there, in order
            it = iter(after)
            assert all(any(line == a for a in it) for line in before), change.path


def test_boutique_unfixable_are_explained(boutique: tuple[Report, Path]) -> None:
    report, repo = boutique
    plan = build_plan(report, repo)
    reasons = {(u.finding.control_id, u.finding.resource.name): u for u in plan.unfixable}
    # the kubescape deployment of the scanned repo is not in this cd-config
    missing = reasons[("C-0016", "kubescape")]
    assert missing.category == "not-in-repo"
    assert "ks-deployment.yaml" in missing.reason
    # probes need application knowledge
    assert reasons[("C-0056", "loadgenerator")].category == "needs-human"
    # every finding is accounted for exactly once
    accounted = len(plan.fixed_findings) + len(plan.unfixable) + len(plan.already_compliant)
    assert accounted == len(plan.findings)


def test_boutique_plan_is_idempotent(boutique: tuple[Report, Path]) -> None:
    """Merging the change sets (those touching one file in turn, as a team would) and planning
    again with the same report ends with nothing left to change."""
    report, repo = boutique
    plan = build_plan(report, repo)
    fixed = {f.identity for f in plan.fixed_findings}
    for _ in range(8):
        touched: set[str] = set()
        for cs in plan.change_sets:
            if touched & {c.path for c in cs.files}:
                continue  # merged in the next round, rebased on this one
            touched |= {c.path for c in cs.files}
            for change in cs.files:
                (repo / change.path).write_text(change.after, encoding="utf-8", newline="")
        plan = build_plan(report, repo)
        if not plan.change_sets:
            break
    assert plan.change_sets == ()
    assert fixed <= {f.identity for f in plan.already_compliant}


def test_path_escaping_the_repository_is_refused(tmp_path: Path) -> None:
    finding = Finding(
        control_id="C-0016",
        resource=ResourceRef(kind="Deployment", name="x"),
        source=SourceHint(path="../../etc/passwd"),
    )
    plan = build_plan(Report("kubescape", "test", (finding,)), tmp_path)
    assert plan.change_sets == ()
    (unfixable,) = plan.unfixable
    assert unfixable.category == "not-in-repo"
    assert "escapes the repository" in unfixable.reason


def test_same_finding_from_two_scanners_is_one() -> None:
    ref = ResourceRef(kind="Deployment", namespace="a", name="b")
    one = Finding(control_id="C-0016", resource=ref, container="c", scanner_ids=("KSV-0001",))
    two = Finding(control_id="C-0016", resource=ref, container="c", scanner_ids=("CKV_K8S_20",))
    (merged,) = dedupe([one, two])
    assert merged.scanner_ids == ("KSV-0001", "CKV_K8S_20")


def test_anchors_and_non_mapping_documents_are_explained_not_edited(tmp_path: Path) -> None:
    (tmp_path / "anchored.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
        "  template:\n    spec:\n      containers:\n        - &main\n          name: app\n"
        "          image: app:1\n        - <<: *main\n          name: sidecar\n"
    )
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    finding = Finding(control_id="C-0016", resource=ResourceRef(kind="Deployment", name="web"))
    plan = build_plan(Report("kubescape", "test", (finding,)), tmp_path)
    assert plan.change_sets == ()
    (unfixable,) = plan.unfixable
    assert "anchors" in unfixable.reason or "alias" in unfixable.reason
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written


def _escalation(path: str | None, scanner_id: str) -> Finding:
    return dataclasses.replace(
        web_finding("C-0016"), scanner_ids=(scanner_id,), source=SourceHint(path=path)
    )


def test_one_resource_defined_per_cluster_overlay_is_fixed_in_each_file(tmp_path: Path) -> None:
    for cluster in ("prod", "staging"):
        (tmp_path / cluster).mkdir()
        (tmp_path / cluster / "web.yaml").write_text(DEPLOYMENT)
    findings = (
        _escalation("prod/web.yaml", "C-0016"),
        _escalation("staging/web.yaml", "C-0016"),
        _escalation(None, "KSV-0001"),  # read from a cluster: names no file
    )
    assert len(dedupe(findings)) == 2
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    fixed = {fix.location.path: fix.finding for cs in plan.change_sets for fix in cs.fixes}
    assert sorted(fixed) == ["prod/web.yaml", "staging/web.yaml"]
    assert all(f.scanner_ids == ("C-0016", "KSV-0001") for f in fixed.values())
    assert plan.unfixable == ()


def test_two_spellings_of_one_file_are_one_fix(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "web.yaml").write_text(DEPLOYMENT)
    findings = (
        _escalation("cd-config/apps/web.yaml", "C-0016"),  # scanned from the parent directory
        _escalation("apps/web.yaml", "CKV_K8S_20"),
    )
    plan = build_plan(Report("kubescape+checkov", "test", findings), tmp_path)
    (change_set,) = plan.change_sets
    (fix,) = change_set.fixes
    assert fix.finding.scanner_ids == ("C-0016", "CKV_K8S_20")
    assert len(plan.findings) == 1
    assert change_set.files[0].after.count("allowPrivilegeEscalation") == 1


def test_a_file_repeating_an_object_is_fixed_at_the_line_the_scanner_names(
    tmp_path: Path,
) -> None:
    (tmp_path / "web.yaml").write_text(DEPLOYMENT + "---\n" + DEPLOYMENT)
    second_line = DEPLOYMENT.count("\n") + 2  # Checkov's file_line_range starts at the object

    def at(line: int | None) -> Finding:
        finding = web_finding("C-0016")
        return dataclasses.replace(finding, source=SourceHint(path="web.yaml", line=line))

    plan = build_plan(Report("checkov", "test", (at(second_line),)), tmp_path)
    (change_set,) = plan.change_sets
    after = change_set.files[0].after
    assert after.split("---\n")[0] == DEPLOYMENT
    assert "allowPrivilegeEscalation: false" in after.split("---\n")[1]

    both = build_plan(Report("checkov", "test", (at(1), at(second_line))), tmp_path)
    assert both.change_sets[0].files[0].after.count("allowPrivilegeEscalation: false") == 2

    (unplaced,) = build_plan(Report("checkov", "test", (at(None),)), tmp_path).unfixable
    assert "defined in several places" in unplaced.reason


PRIVILEGED = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    spec:
      containers:
        - name: web
          image: nginx:1.27
          securityContext:
            privileged: true
"""


def test_a_decline_waiting_on_a_sibling_names_its_change_set(tmp_path: Path) -> None:
    """allowPrivilegeEscalation waits for privileged, which travels alone: the reason names
    the change set that removes privileged, not "fix C-0057 first"."""
    (tmp_path / "web.yaml").write_text(PRIVILEGED, encoding="utf-8")
    ref = ResourceRef(api_version="apps/v1", kind="Deployment", namespace="shop", name="web")
    findings = tuple(
        Finding(control_id=c, resource=ref, container="web", source=SourceHint(path="web.yaml"))
        for c in ("C-0016", "C-0057")
    )
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    assert [cs.key for cs in plan.change_sets] == ["security-context/web--privileged-container"]
    (waiting,) = plan.unfixable
    assert waiting.finding.control_id == "C-0016"
    assert "fix C-0057 first" not in waiting.reason
    assert "merge the change set security-context/web--privileged-container first" in (
        waiting.reason
    )


def test_value_sources_name_the_config_file_relative_to_the_repository(tmp_path: Path) -> None:
    from bot.repo_config import parse_repo_config

    (tmp_path / "web.yaml").write_text(DEPLOYMENT, encoding="utf-8")
    config_path = tmp_path / ".remedy.yaml"
    config_path.write_text("policy:\n  resources:\n    memory_limit: 300Mi\n", encoding="utf-8")
    config = parse_repo_config(config_path.read_text(encoding="utf-8"), str(config_path))
    finding = dataclasses.replace(web_finding("C-0004"), source=SourceHint(path="web.yaml"))
    plan = build_plan(Report("kubescape", "test", (finding,)), tmp_path, config)
    used = [v for cs in plan.change_sets for fix in cs.fixes for v in fix.values_used]
    assert used and all(str(tmp_path) not in v for v in used)
    assert any("from .remedy.yaml" in v for v in used)


NODE_AGENT = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
  namespace: monitoring
spec:
  template:
    spec:
      hostPID: true
      containers:
        - name: agent
          image: quay.io/prometheus/node-exporter:v1.8.2
          volumeMounts:
            - {name: proc, mountPath: /host/proc, readOnly: true}
      volumes:
        - name: proc
          hostPath: {path: /proc}
"""


def test_a_node_agents_host_path_is_waived_with_its_controls_in_the_commit(
    tmp_path: Path,
) -> None:
    """The catalog calls C-0048 unfixable in git; intent still decides first, so a node agent's
    hostPath is a waiver proposal, and the waiver change set names what it waives."""
    (tmp_path / "agent.yaml").write_text(NODE_AGENT, encoding="utf-8")
    ref = ResourceRef(
        api_version="apps/v1", kind="DaemonSet", namespace="monitoring", name="node-agent"
    )
    findings = tuple(
        Finding(control_id=c, resource=ref, container=box, source=SourceHint(path="agent.yaml"))
        for c, box in (("C-0048", None), ("C-0038", None))
    )
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    (waiver,) = plan.change_sets
    assert waiver.is_waiver and waiver.controls == ("C-0038", "C-0048")
    assert waiver.commit_message.splitlines()[2] == (
        "Waive C-0038, C-0048 (reasons in .remedy.yaml). Generated by kube-remedy."
    )
    (host_path,) = [u for u in plan.unfixable if u.finding.control_id == "C-0048"]
    assert "a waiver is proposed" in host_path.reason and "/proc" in host_path.reason


def test_a_control_a_reviewer_left_out_is_left_out_of_that_change_set_only(
    boutique: tuple[Report, Path],
) -> None:
    report, repo = boutique
    plan = build_plan(report, repo, left_out={"security-context/frontend": {"C-0055"}})
    sets = by_key(plan)
    assert "C-0055" not in sets["security-context/frontend"].controls
    assert "C-0016" in sets["security-context/frontend"].controls
    # the same control on other workloads is still fixed
    assert "C-0055" in sets["security-context/cartservice"].controls
    (left,) = [
        u
        for u in plan.unfixable
        if u.finding.control_id == "C-0055" and u.finding.resource.name == "frontend"
    ]
    assert left.category == "ignored"
    assert "a reviewer asked to leave C-0055 out" in left.reason
