"""End to end: a command in an MR comment -> webhook -> uvicorn -> Redis -> Celery worker ->
GitLab emulator (member check, award, change, reply note).

The web app runs under uvicorn on a real socket in this process; the worker is a separate
``celery -A bot.command_tasks worker`` process reading its settings from the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gitlab
import httpx
import pytest
import uvicorn

from bot.settings import Settings
from bot.web import create_app
from bot.web_settings import WebSettings
from tests.gitlab_emulator import GitLabEmulator
from tests.processes import Procs, wait_until
from tests.redis_server import RedisServer, free_port, redis_server_fixture  # noqa: F401 - fixture
from tests.test_web import note_hook

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "platform/cd-config"
SECRET = "e2e-webhook-secret"
PREFIX = "remedy/"
BRANCH = PREFIX + "web-deployment"

pytestmark = pytest.mark.slow


@pytest.fixture
def bot_mr(gitlab_emulator: GitLabEmulator, gitlab_client: gitlab.Gitlab) -> tuple[int, int]:
    """A project with a bot branch and merge request; returns (project id, MR iid)."""
    pid = gitlab_emulator.create_project(PROJECT, {"apps/web/values.yaml": "securityContext: {}\n"})
    project = gitlab_client.projects.get(PROJECT)
    project.branches.create({"branch": BRANCH, "ref": "main"})
    project.commits.create(
        {
            "branch": BRANCH,
            "commit_message": "Harden web",
            "actions": [
                {
                    "action": "update",
                    "file_path": "apps/web/values.yaml",
                    "content": "securityContext:\n  allowPrivilegeEscalation: false\n",
                }
            ],
        }
    )
    mr = project.mergerequests.create(
        {
            "source_branch": BRANCH,
            "target_branch": "main",
            "title": "Harden web: no privilege escalation",
            "description": "Fixes C-0016 in apps/web.",
        }
    )
    return pid, int(mr.iid)


@pytest.fixture
def worker(
    redis_server: RedisServer, gitlab_emulator: GitLabEmulator, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDY_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "REMEDY_REDIS_URL": redis_server.url,
            "REMEDY_GITLAB_URL": gitlab_emulator.url,
            "REMEDY_GITLAB_TOKEN": gitlab_emulator.token,
            "REMEDY_PROJECTS": json.dumps([{"id": PROJECT}]),
            "REMEDY_BRANCH_PREFIX": PREFIX,
            "REMEDY_DATA_DIR": str(tmp_path / "data"),
            "REMEDY_METRICS_PORT": "0",
            "REMEDY_MAX_RETRIES": "2",
            "REMEDY_RETRY_BACKOFF_MAX": "1",
        }
    )
    procs = Procs(env, tmp_path, app="bot.command_tasks")  # its log: tmp_path/worker-0.log
    try:
        yield procs.worker()
    finally:
        procs.close()


@pytest.fixture
def web_url(redis_server: RedisServer) -> Iterator[str]:
    """The web app under uvicorn with its default intake (`RedisIntake`): the worker below runs
    the messages it pushes, so this is also the proof that they are Celery's."""
    settings = Settings(
        redis_url=redis_server.url,
        projects=[{"id": PROJECT}],
        webhook_secret=SECRET,
        branch_prefix=PREFIX,
    )
    port = free_port()
    app = create_app(settings, web=WebSettings())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def deliver(url: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/gitlab",
        json=payload,
        headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Note Hook"},
        timeout=5,
    )


def test_ignore_command_in_a_note_closes_the_mr_and_replies(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    bot_mr: tuple[int, int],
    worker: subprocess.Popen[bytes],
    web_url: str,
    tmp_path: Path,
) -> None:
    pid, iid = bot_mr
    alice = gitlab_emulator.add_user("alice")
    gitlab_emulator.add_member(pid, alice, 30)
    rita = gitlab_emulator.add_user("rita")
    gitlab_emulator.add_member(pid, rita, 20)
    mr = gitlab_client.projects.get(PROJECT).mergerequests.get(iid)

    # A Reporter's command is refused with a reply, and changes nothing.
    text = "@kube-remedy ignore"
    note = mr.notes.create({"body": text})
    payload = note_hook(text, username="rita", note_id=note.id, mr_iid=iid)
    payload["object_attributes"]["author_id"] = rita
    assert deliver(web_url, payload).status_code == 202

    def replies() -> list[str]:
        bodies = [n["body"] for n in gitlab_emulator.notes(pid, iid)]
        return [b for b in bodies if b.startswith(("@alice ", "@rita "))]

    try:
        wait_until(lambda: any("@rita Refused" in r for r in replies()), 60, "refusal reply")
    except AssertionError:
        print((tmp_path / "worker-0.log").read_text(errors="replace"))
        raise
    assert gitlab_emulator.merge_requests(pid)[0]["state"] == "opened"

    # A Developer's command closes the MR as ignored, awards eyes on the note and replies.
    text = "Not for staging.\n@kube-remedy ignore staging uses its own policy <b>x</b>"
    note = mr.notes.create({"body": text})
    payload = note_hook(text, username="alice", note_id=note.id, mr_iid=iid)
    payload["object_attributes"]["author_id"] = alice
    assert deliver(web_url, payload).status_code == 202
    # GitLab retrying the same delivery is recognised and not queued again.
    assert deliver(web_url, payload).json()["reason"] == "duplicate delivery"

    wait_until(lambda: gitlab_emulator.merge_requests(pid)[0]["state"] == "closed", 60, "MR closed")
    reply = wait_until(
        lambda: [r for r in replies() if r.startswith("@alice Closed as ignored")], 30, "reply"
    )
    assert "staging uses its own policy &lt;b&gt;x&lt;/b&gt;" in reply[0]

    # The robot award follows the reply (it marks the command as answered), so wait for it too.
    def awards() -> list[str]:
        return sorted(a.name for a in mr.notes.get(note.id).awardemojis.list())

    wait_until(lambda: awards() == ["eyes", "robot"], 30, "eyes and robot awards")
    assert len(replies()) == 2


@pytest.mark.skipif(
    not hasattr(GitLabEmulator, "add_hook"),
    reason="this GitLab emulator does not fire webhooks yet (tests/gitlab_emulator/hooks.py)",
)
def test_rebase_command_through_the_emulators_own_webhook(
    gitlab_emulator: GitLabEmulator,
    bot_mr: tuple[int, int],
    worker: subprocess.Popen[bytes],
    web_url: str,
    tmp_path: Path,
) -> None:
    pid, iid = bot_mr
    gitlab_emulator.add_member(pid, gitlab_emulator.add_user("alice"), 30)
    gitlab_emulator.add_hook(pid, f"{web_url}/webhooks/gitlab", token=SECRET)
    main = gitlab_emulator.push_as(
        pid, "main", {"README.md": "moved on\n"}, author="alice", message="Move main"
    )
    gitlab_emulator.comment_as(pid, iid, "@kube-remedy rebase", by="alice")

    def rebased() -> bool:
        log = subprocess.run(
            ["git", "--git-dir", str(gitlab_emulator.repo_path(pid)), "log", "--format=%H", BRANCH],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return main in log

    try:
        wait_until(rebased, 60, "the bot branch rebased on main")
    except AssertionError:
        gitlab_emulator.flush_hooks()
        print(gitlab_emulator.hook_deliveries)
        print((tmp_path / "worker-0.log").read_text(errors="replace"))
        raise
    wait_until(
        lambda: any(
            n["body"].startswith("@alice Rebase requested") for n in gitlab_emulator.notes(pid, iid)
        ),
        30,
        "reply",
    )
    gitlab_emulator.flush_hooks()
    # The bot's own reply fired a note hook too; the web process ignored it (no loop).
    statuses = [d.status for d in gitlab_emulator.hook_deliveries if d.event == "note_events"]
    assert statuses[0] == 202 and 200 in statuses[1:]


def test_a_command_task_throttled_by_gitlab_retries_after_its_retry_after(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    bot_mr: tuple[int, int],
    worker: subprocess.Popen[bytes],
    web_url: str,
    tmp_path: Path,
) -> None:
    """GitLab's 429 Retry-After reaches the task end to end: the worker's task (no python-gitlab
    retries, backoff capped at 1 s here) waits the 3 s GitLab asked for, then answers."""
    pid, iid = bot_mr
    alice = gitlab_emulator.add_user("alice")
    gitlab_emulator.add_member(pid, alice, 30)
    mr = gitlab_client.projects.get(PROJECT).mergerequests.get(iid)
    text = "@kube-remedy explain C-0016"
    note = mr.notes.create({"body": text})
    payload = note_hook(text, username="alice", note_id=note.id, mr_iid=iid)
    payload["object_attributes"]["author_id"] = alice
    gitlab_emulator.inject(status=429, retry_after=3, method="POST", path_contains="award_emoji")
    started = time.monotonic()
    assert deliver(web_url, payload).status_code == 202
    log = tmp_path / "worker-0.log"
    try:
        wait_until(
            lambda: any(
                n["body"].startswith("@alice **C-0016") for n in gitlab_emulator.notes(pid, iid)
            ),
            60,
            "reply after the throttled award",
        )
    except AssertionError:
        print(log.read_text(errors="replace"))
        raise
    assert time.monotonic() - started >= 3.0
    retries = [
        json.loads(line)
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("{") and '"msg": "retry"' in line
    ]
    assert [r["countdown"] for r in retries] == [3.0]
