"""Audit of the GitLab lifecycle against GitLab's documented behaviour (emulator end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.commands import Actor, Context, dispatch
from bot.errors import ForgeConflictError
from bot.forge.gitlab import GitLabForge
from bot.settings import Settings
from bot.web_settings import WebSettings
from tests.gitlab_emulator import DEVELOPER, MAINTAINER, GitLabEmulator
from tests.test_gitlab_lifecycle import (
    FRONTEND,
    FRONTEND_FILE,
    _alice_pushes_to_frontend,
    _mr,
    _new_pipeline,
    _project,
    _report_without,
)
from tests.test_gitlab_run import PROJECT, example_files, run


class _Runs:
    def __init__(self) -> None:
        self.queued: list[str] = []

    def run_project(self, project: str) -> None:
        self.queued.append(project)


def _command(emulator: GitLabEmulator, user: str, iid: int, text: str) -> str:
    uid = emulator.state.user_named(user)
    assert uid is not None
    port = GitLabForge(emulator.url, emulator.token, PROJECT, max_retries=0)
    ctx = Context(
        settings=Settings(projects=[{"id": PROJECT}]),
        web=WebSettings(),
        actor=Actor("gitlab", str(uid.id), user),
        channel="mr",
        gitlab=lambda _: port,
        scheduler=_Runs(),
        project=PROJECT,
        mr_iid=iid,
    )
    reply = dispatch(text, ctx)
    assert reply.ok, reply.text
    return reply.text


@pytest.fixture
def project(
    gitlab_emulator: GitLabEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    return _project(gitlab_emulator, example_files(), tmp_path, monkeypatch)


def test_ignore_command_is_an_ignore_the_next_run_honours(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    alice = gitlab_emulator.add_user("alice")
    gitlab_emulator.add_member(project, alice, DEVELOPER)
    _command(gitlab_emulator, "alice", mr["iid"], "ignore not for this app")
    assert _mr(gitlab_emulator, project, FRONTEND)["state"] == "closed"
    out = run(gitlab_emulator, capsys)
    assert f"ignored          {FRONTEND}" in out
    states = [
        m["state"]
        for m in gitlab_emulator.merge_requests(project)
        if m["source_branch"] == FRONTEND
    ]
    assert states == ["closed"]

    # unignore reopens it and the bot keeps it up to date again, without the ignore label
    _command(gitlab_emulator, "alice", mr["iid"], "unignore")
    out = run(gitlab_emulator, capsys)
    assert f"unchanged        {FRONTEND}" in out
    after = _mr(gitlab_emulator, project, FRONTEND)
    assert after["state"] == "opened" and "kube-remedy::ignored" not in after["labels"]


def test_a_reopened_ignored_mr_closed_later_by_the_bot_is_no_ignore(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_emulator.add_user("alice")
    gitlab_emulator.close_as(project, mr["iid"], by="alice")
    assert f"ignored          {FRONTEND}" in run(gitlab_emulator, capsys)
    assert "kube-remedy::ignored" in _mr(gitlab_emulator, project, FRONTEND)["labels"]
    gitlab_emulator.reopen_as(project, mr["iid"], by="alice")
    run(gitlab_emulator, capsys)
    assert "kube-remedy::ignored" not in _mr(gitlab_emulator, project, FRONTEND)["labels"]


def test_a_persons_amend_of_the_bots_commit_is_never_force_pushed_over(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """`git commit --amend` keeps the bot as the author; the committer is the person."""
    run(gitlab_emulator, capsys)
    gitlab_emulator.add_user("alice")
    text = gitlab_emulator.file_at(project, FRONTEND, FRONTEND_FILE) or ""
    amended = gitlab_emulator.amend_as(
        project, FRONTEND, {FRONTEND_FILE: text + "# alice: tuned for our image\n"}, by="alice"
    )
    _new_pipeline(gitlab_emulator, project, _report_without("C-0055", "/Deployment/frontend"))
    out = run(gitlab_emulator, capsys)
    assert f"foreign-commits  {FRONTEND}" in out
    assert gitlab_emulator.branches(project)[FRONTEND] == amended
    assert "is not updating this branch" in _mr(gitlab_emulator, project, FRONTEND)["description"]


def test_a_branch_a_wildcard_rule_protects_is_never_pushed_to(
    gitlab_emulator: GitLabEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitLab protects by exact name or by wildcard (``remedy/*``, ``*-stable``); a bot with
    Maintainer access may push there, so the bot itself must match the rule."""
    pid = _project(gitlab_emulator, example_files(), tmp_path, monkeypatch)
    gitlab_emulator.state.projects[pid].protected.append("remedy/security-*")
    gitlab_emulator.add_member(pid, gitlab_emulator.bot_user_id, MAINTAINER)
    forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT, max_retries=0)
    with pytest.raises(ForgeConflictError, match="protected"):
        forge.commit_files(FRONTEND, {"x.yaml": "a: 1\n"}, "fix", start_branch="main")
    assert FRONTEND not in gitlab_emulator.branches(pid)
    forge.commit_files("remedy/network-policy/x", {"x.yaml": "a: 1\n"}, "fix", start_branch="main")
    assert "remedy/network-policy/x" in gitlab_emulator.branches(pid)


def test_rate_limited_mid_run_stops_writing_and_the_next_run_finishes(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 429 that outlasts python-gitlab's retries ends the run's requests: every later
    change set is recorded as failed (transient) without asking GitLab; the branch committed
    before the 429 is reused by the next run, with no duplicate MR."""
    gitlab_emulator.inject(
        status=429, times=1000, retry_after=0, method="POST", path_contains="/merge_requests"
    )
    argv = ["run", "--gitlab-url", gitlab_emulator.url, "--project", PROJECT]
    code = main([*argv, "--token", gitlab_emulator.token])
    out = capsys.readouterr().out
    assert code == 3  # transient: try again later
    posts = [r for r in gitlab_emulator.requests if r[0] == "POST"]
    mr_posts = [p for _, p in posts if p.endswith("/merge_requests")]
    commits = [p for _, p in posts if p.endswith("/repository/commits")]
    assert len(commits) == 1 and mr_posts, posts
    assert len(mr_posts) <= 6  # one request and python-gitlab's retries, for one change set
    flat = " ".join(out.split())
    assert flat.count("GitLab is rate limiting") == flat.count("failed ") - 1 > 0
    gitlab_emulator._faults.clear()
    out = run(gitlab_emulator, capsys)
    assert "failed" not in out
    branches = [m["source_branch"] for m in gitlab_emulator.merge_requests(project)]
    assert len(branches) == len(set(branches)) > 1


def test_a_recreate_label_a_person_added_by_hand_does_not_drop_commits(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The label is the `recreate` command's (Developer access, checked); a person who can
    only edit labels (Reporter) adding it by hand must not make the bot force-push."""
    run(gitlab_emulator, capsys)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_emulator.add_user("alice")
    human = _alice_pushes_to_frontend(gitlab_emulator, project)
    gitlab_emulator.label_as(project, mr["iid"], add=["kube-remedy::recreate"], by="alice")
    out = run(gitlab_emulator, capsys)
    assert f"recreated        {FRONTEND}" not in out
    assert gitlab_emulator.branches(project)[FRONTEND] == human
