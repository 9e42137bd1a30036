"""Runtime evidence in the scheduled service, end to end through the GitLab emulator.

The project's settings name the evidence (files in cd-config, files on the worker, the live
cluster through the API-server test double); the service plans with it, the merge requests say
which observation window it covers, workloads with Falco alerts are proposed first, fixes the
evidence contradicts are declined on the dashboard, and a second run writes nothing. Beside it
the same project planned without evidence: the static fix and the evidence-based fix of the same
workload side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from bot.errors import ReportError
from bot.service import evidence_files, plan_run, run_project_once, sync_planned
from bot.settings import FileReport, ProjectConfig, RuntimeEvidenceSource, Settings
from tests.gitlab_emulator import GitLabEmulator
from tests.kube_apiserver import FakeKubeApiServer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runtime"
SHOP = (FIXTURES / "cd-config" / "shop.yaml").read_text(encoding="utf-8")
PROFILES = ("web-applicationprofile.yaml", "web-networkneighborhood.json")
PINGER = "pinger-containerprofile.json"
FALCO = "falco-alerts.ndjson"
PROJECT = "platform/cd-config"
WINDOW = "Kubescape evidence, learning completed (profile created 2026-11-02T08:00:00Z)"
ALERTS = "3 Falco alert(s) (Error: 'Write below binary dir' x1; Warning: 'Terminal shell in container' x2)"
# A workload with no evidence in another namespace: its change sets sort before the shop's
# ("audit" < "shop"), so only the Falco alerts can put the shop's first.
AUDIT = SHOP.split("---")[0].replace("name: web", "name: billing").replace("shop", "audit")
LIMITS = "limits:\n  max_open: 50\n  max_new_per_hour: {}\n"


def _report(tmp_path: Path) -> Path:
    """The corpus-shaped operator scans of the shop, and the same scans of audit/billing."""
    scans = yaml.safe_load((FIXTURES / "reports" / "shop-scans.yaml").read_text(encoding="utf-8"))
    web = next(i for i in scans["items"] if i["metadata"]["name"].endswith("shop-web"))
    billing = json.loads(
        json.dumps(web)
        .replace("shop-web", "audit-billing")
        .replace("namespace-shop", "namespace-audit")
    )
    labels = billing["metadata"]["labels"]
    labels["kubescape.io/workload-name"], labels["kubescape.io/workload-namespace"] = (
        "billing",
        "audit",
    )
    scans["items"].append(billing)
    path = tmp_path / "scans.yaml"
    path.write_text(yaml.safe_dump(scans), encoding="utf-8")
    return path


def _files(evidence_in_repo: bool, new_per_hour: int = 50) -> dict[str, str]:
    files = {
        "apps/shop.yaml": SHOP,
        "apps/audit.yaml": AUDIT,
        ".remedy.yaml": LIMITS.format(new_per_hour),
    }
    if evidence_in_repo:
        for name in (*PROFILES, PINGER):
            files[f"runtime/{name}"] = (FIXTURES / name).read_text(encoding="utf-8")
        # Falco's json_output is one JSON object a line; kept as .json in the repository
        files["runtime/falco-alerts.json"] = (FIXTURES / FALCO).read_text(encoding="utf-8")
    return files


def _settings(
    emulator: GitLabEmulator, tmp_path: Path, evidence: RuntimeEvidenceSource | None
) -> Settings:
    project = ProjectConfig(
        id=PROJECT, report=FileReport(path=str(_report(tmp_path))), evidence=evidence
    )
    return Settings(
        gitlab_url=emulator.url,
        gitlab_token=SecretStr(emulator.token),
        data_dir=tmp_path / "data",
        projects=(project,),
    )


def _bot_mrs(emulator: GitLabEmulator, pid: int) -> list[dict[str, Any]]:
    mrs = [m for m in emulator.merge_requests(pid) if m["author"]["username"] == "kube-remedy"]
    return sorted(mrs, key=lambda m: m["iid"])


@pytest.fixture
def emulator(gitlab_emulator: GitLabEmulator) -> GitLabEmulator:
    return gitlab_emulator


def _capabilities(emulator: GitLabEmulator, pid: int, branch: str, path: str) -> Any:
    text = emulator.file_at(pid, branch, path)
    assert text is not None
    web = next(d for d in yaml.safe_load_all(text) if d["metadata"]["name"] in ("web", "billing"))
    return web["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]


def test_evidence_in_the_repository_reaches_the_mrs_alerted_first_contradictions_declined(
    emulator: GitLabEmulator, tmp_path: Path
) -> None:
    pid = emulator.create_project(PROJECT, _files(evidence_in_repo=True, new_per_hour=3))
    settings = _settings(emulator, tmp_path, RuntimeEvidenceSource(repo=("runtime",)))
    summary = run_project_once(settings, settings.projects[0])
    assert not summary.failed, summary.lines()

    mrs = _bot_mrs(emulator, pid)
    # three new MRs an hour: all of them for the shop, whose web pods raised Falco alerts
    assert len(mrs) == 3
    assert all("/apps-shop" in m["source_branch"] for m in mrs)
    held = [d for d in summary.result.decisions if "/apps-audit" in d.branch]
    assert len(held) == 5 and {d.action for d in held} == {"held-back"}
    for mr in mrs:
        assert "### Runtime evidence" in mr["description"]
        assert f"Deployment shop/web: {WINDOW}" in mr["description"]
        assert ALERTS in mr["description"]
        assert "hunter2" not in mr["description"]  # Falco's output text is never quoted

    # pinger's hardening is contradicted by what it was seen doing: declined, with the evidence
    (dashboard,) = emulator.issues(pid)
    assert "Plans use runtime evidence: 2 workload(s) with profiles" in dashboard["description"]
    assert "pinger" in dashboard["description"]
    assert "runtime evidence contradicts this fix" in dashboard["description"]

    emulator.reset_counts()
    again = run_project_once(settings, settings.projects[0])
    assert not again.failed
    assert emulator.writes() == 0, "the same evidence plans the same merge requests"


def test_static_and_evidence_based_fix_of_the_same_workload_side_by_side(
    emulator: GitLabEmulator, tmp_path: Path
) -> None:
    static_pid = emulator.create_project("platform/static", _files(evidence_in_repo=False))
    observed_pid = emulator.create_project(PROJECT, _files(evidence_in_repo=False))
    evidence = RuntimeEvidenceSource(files=tuple(str(FIXTURES / n) for n in (*PROFILES, FALCO)))
    for name in ("static", "observed"):
        (tmp_path / name).mkdir()
    static = _settings(emulator, tmp_path / "static", None)
    static = static.model_copy(
        update={"projects": (static.projects[0].model_copy(update={"id": "platform/static"}),)}
    )
    observed = _settings(emulator, tmp_path / "observed", evidence)
    for settings in (static, observed):
        assert not run_project_once(settings, settings.projects[0]).failed

    branch = "remedy/security-context/apps-shop--insecure-capabilities"
    static_mrs = {m["source_branch"]: m for m in _bot_mrs(emulator, static_pid)}
    observed_mrs = {m["source_branch"]: m for m in _bot_mrs(emulator, observed_pid)}
    # the same fixer on the same workload: without evidence the insecure capabilities are
    # removed; with it every capability is dropped and exactly the observed ones added back
    assert _capabilities(emulator, static_pid, branch, "apps/shop.yaml") == {}
    assert _capabilities(emulator, observed_pid, branch, "apps/shop.yaml") == {
        "drop": ["ALL"],
        "add": ["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"],
    }
    assert "Runtime evidence" not in static_mrs[branch]["description"]
    assert WINDOW in observed_mrs[branch]["description"]
    # the workload with no evidence is fixed the static way in both projects
    audit = "remedy/security-context/apps-audit--insecure-capabilities"
    assert _capabilities(emulator, static_pid, audit, "apps/audit.yaml") == {}
    assert _capabilities(emulator, observed_pid, audit, "apps/audit.yaml") == {}


def test_live_cluster_evidence_is_read_once_per_run_and_replayed_by_the_sync_tasks(
    emulator: GitLabEmulator, tmp_path: Path
) -> None:
    server = FakeKubeApiServer()
    for name in PROFILES:
        text = (FIXTURES / name).read_text(encoding="utf-8")
        server.add_runtime(json.loads(text) if name.endswith(".json") else yaml.safe_load(text))
    pid = emulator.create_project(PROJECT, _files(evidence_in_repo=False, new_per_hour=3))
    with server.running():
        kubeconfig = server.kubeconfig(tmp_path / "kubeconfig")
        evidence = RuntimeEvidenceSource(cluster=True, namespace="shop", kubeconfig=str(kubeconfig))
        settings = _settings(emulator, tmp_path, evidence)
        project = settings.projects[0]
        run = plan_run(settings, project)
        listed = len(server.requests)
        assert listed and all("spdx.softwarecomposition.kubescape.io" in r for r in server.requests)
        assert run.pp.evidence is not None and "1 workload(s) with profiles" in run.pp.evidence
        # Falco is no API object: without alerts no workload goes first
        assert "security-context/apps-shop" in dict(run.pending) and len(run.pending) == 3
        inputs = json.loads(json.dumps(run.inputs))  # what the run task stores in Redis
        decisions = [sync_planned(settings, project, inputs, key, h) for key, h in run.pending]
        assert len(server.requests) == listed, "sync tasks plan from the recorded objects"
    assert [d.action for d in decisions if d is not None] == ["created"] * 3
    mrs = {m["source_branch"]: m["description"] for m in _bot_mrs(emulator, pid)}
    assert f"Deployment shop/web: {WINDOW}" in mrs["remedy/security-context/apps-shop"]
    assert "Runtime evidence" not in mrs["remedy/security-context/apps-audit"]


def test_evidence_paths_stay_inside_the_repository(
    emulator: GitLabEmulator, tmp_path: Path
) -> None:
    for bad in ("/etc/passwd", "../outside", "runtime/../../x"):
        with pytest.raises(ValueError, match="relative to cd-config's root"):
            RuntimeEvidenceSource(repo=(bad,))
    with pytest.raises(ValueError, match="at least one of repo, files or cluster"):
        RuntimeEvidenceSource()
    pid = emulator.create_project(
        PROJECT, _files(evidence_in_repo=False), symlinks={"runtime": "/etc"}
    )
    assert pid
    settings = _settings(emulator, tmp_path, RuntimeEvidenceSource(repo=("runtime/passwd",)))
    # the snapshot holds no links: a linked folder is not there
    with pytest.raises(ReportError, match="evidence path runtime/passwd is not in cd-config"):
        run_project_once(settings, settings.projects[0])
    repo = tmp_path / "checkout"
    (repo / "runtime").mkdir(parents=True)
    (repo / "runtime" / "link.json").symlink_to(FIXTURES / PINGER)
    (repo / "elsewhere").symlink_to(FIXTURES)
    with pytest.raises(ReportError, match="goes through a symlink"):
        evidence_files(repo, ["elsewhere/web-networkneighborhood.json"])
    with pytest.raises(ReportError, match=r"holds no \.json, \.yaml, \.yml file"):
        evidence_files(repo, ["runtime"])  # the one file in it is a link
    missing = _settings(emulator, tmp_path, RuntimeEvidenceSource(repo=("nowhere",)))
    with pytest.raises(ReportError, match="evidence path nowhere is not in cd-config"):
        run_project_once(missing, missing.projects[0])


def test_remedy_run_uses_the_configured_projects_evidence(
    emulator: GitLabEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import main

    pid = emulator.create_project(PROJECT, _files(evidence_in_repo=True, new_per_hour=1))
    config = tmp_path / "remedy.yaml"
    config.write_text(
        yaml.safe_dump({"projects": [{"id": PROJECT, "evidence": {"repo": ["runtime"]}}]}),
        encoding="utf-8",
    )
    monkeypatch.setenv("REMEDY_DATA_DIR", str(tmp_path / "data"))
    args = ["run", "--config", str(config), "--gitlab-url", emulator.url, "--token", emulator.token]
    assert main([*args, "--project", PROJECT, "--report", str(_report(tmp_path))]) == 1
    (mr,) = _bot_mrs(emulator, pid)
    assert "/apps-shop" in mr["source_branch"] and WINDOW in mr["description"]
