"""End to end against the GitLab emulator: conflicts, people's commits, dashboard checkboxes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gitlab
import pytest

from tests.gitlab_emulator import GitLabEmulator
from tests.test_gitlab_run import PROJECT, REPORT, bot_mrs, example_files, run

FRONTEND = "remedy/security-context/apps-shop-frontend"
FRONTEND_FILE = "apps/shop/frontend.yaml"
PROBE_END = "              port: http\n---"
LIVENESS = (
    "              port: http\n"
    "          livenessProbe:\n"
    "            httpGet:\n"
    "              path: /healthz\n"
    "              port: http\n"
    "---"
)


def _project(
    emulator: GitLabEmulator,
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    pid = emulator.create_project(PROJECT, files)
    emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": REPORT.read_bytes()}}
    )
    monkeypatch.setenv("REMEDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REMEDY_CONFIG", raising=False)
    return pid


@pytest.fixture
def project(
    gitlab_emulator: GitLabEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    return _project(gitlab_emulator, example_files(), tmp_path, monkeypatch)


def _mr(emulator: GitLabEmulator, pid: int, branch: str) -> dict:  # type: ignore[type-arg]
    return next(m for m in bot_mrs(emulator, pid) if m["source_branch"] == branch)


def test_conflict_with_a_human_commit_on_main_recommits_from_main(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    main_text = gitlab_emulator.file_at(project, "main", FRONTEND_FILE) or ""
    assert PROBE_END in main_text
    gitlab_emulator.push_as(
        project,
        "main",
        {FRONTEND_FILE: main_text.replace(PROBE_END, LIVENESS)},
        author="alice",
        message="frontend: add a liveness probe",
    )
    assert _mr(gitlab_emulator, project, FRONTEND)["has_conflicts"] is True
    out = run(gitlab_emulator, capsys)
    # main changed the MR's target file, so the change set is rebuilt on main's content (the
    # "updated" path, which recommits from main like the has_conflicts "rebased" path)
    assert re.search(rf"^(rebased|updated) +{re.escape(FRONTEND)}:", out, re.M)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    assert mr["has_conflicts"] is False and mr["state"] == "opened"
    text = gitlab_emulator.file_at(project, FRONTEND, FRONTEND_FILE) or ""
    assert "livenessProbe:" in text and "allowPrivilegeEscalation: false" in text
    # settled: nothing more to do on the next run
    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0


def test_human_commit_on_the_bot_branch_stops_rewrites(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    branch_text = gitlab_emulator.file_at(project, FRONTEND, FRONTEND_FILE) or ""
    human = gitlab_emulator.push_as(
        project,
        FRONTEND,
        {FRONTEND_FILE: branch_text.replace("runAsUser: 10001", "runAsUser: 20002")},
        author="alice",
        message="frontend: our image runs as 20002",
    )
    # the findings of that MR change: the frontend no longer fails C-0017
    report = json.loads(REPORT.read_text())
    for result in report["results"]:
        if result["resourceID"].endswith("/Deployment/frontend"):
            result["controls"] = [c for c in result["controls"] if c["controlID"] != "C-0017"]
    gitlab_emulator.add_pipeline(
        project, "main", {"kubescape": {"kubescape-results.json": json.dumps(report).encode()}}
    )
    gitlab_emulator.reset_counts()
    out = run(gitlab_emulator, capsys)
    assert f"foreign-commits  {FRONTEND}" in out
    assert gitlab_emulator.branches(project)[FRONTEND] == human
    mr = _mr(gitlab_emulator, project, FRONTEND)
    assert "is not updating this branch" in mr["description"]
    updates = [
        r
        for r in gitlab_emulator.requests
        if r[0] == "PUT" and f"/merge_requests/{mr['iid']}" in r[1]
    ]
    assert len(updates) == 1
    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0
    assert gitlab_emulator.branches(project)[FRONTEND] == human


def _tick(client: gitlab.Gitlab, pid: int, key: str) -> None:
    """Tick the dashboard checkbox of ``key``, as a person editing the issue would."""
    issue = client.projects.get(pid).issues.list(get_all=True)[0]
    pattern = re.compile(rf"^(\s*- )\[ \](.*<!-- kube-remedy-request:{re.escape(key)} -->)", re.M)
    ticked, n = pattern.subn(r"\1[x]\2", issue.description)
    assert n == 1, issue.description
    issue.description = ticked
    issue.save()


def test_ticked_held_back_change_set_opens_despite_the_limit(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = example_files()
    files[".remedy.yaml"] = files[".remedy.yaml"].replace("max_open: 50", "max_open: 1")
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    out = run(gitlab_emulator, capsys)
    assert len(bot_mrs(gitlab_emulator, pid)) == 1 and "held-back" in out
    held = re.findall(r"^held-back\s+remedy/(\S+):", out, re.M)
    assert held
    _tick(gitlab_client, pid, held[0])
    out = run(gitlab_emulator, capsys)
    assert f"created          remedy/{held[0]}" in out
    assert len(bot_mrs(gitlab_emulator, pid)) == 2
    assert not re.search(r"^held-back\s+remedy/" + re.escape(held[0]), out, re.M)


def test_ticked_ignored_change_set_gets_a_new_mr(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    project: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(gitlab_emulator, capsys)
    target = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_emulator.add_user("alice")
    gitlab_emulator.close_as(project, target["iid"], by="alice")
    out = run(gitlab_emulator, capsys)
    assert f"ignored          {FRONTEND}" in out
    _tick(gitlab_client, project, FRONTEND.removeprefix("remedy/"))
    out = run(gitlab_emulator, capsys)
    assert f"created          {FRONTEND}" in out
    states = [
        m["state"] for m in bot_mrs(gitlab_emulator, project) if m["source_branch"] == FRONTEND
    ]
    assert states == ["closed", "opened"]
