"""Review of a person's MR against the HTTP GitLab emulator: python-gitlab, real git diffs,
diff discussions with a position, once per head commit."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import tasks
from bot.errors import ConfigError, ForgeConflictError
from bot.forge.gitlab import GitLabForge
from bot.review_tasks import _review_mr_body, review_merge_request
from bot.settings import ProjectConfig, Settings
from fixers.edits import load_documents
from tests.gitlab_emulator import DEVELOPER, GitLabEmulator
from tests.gitlab_emulator.diff_notes import diff_lines
from tests.processes import wait_until
from tests.redis_server import RedisServer, redis_server_fixture  # noqa: F401 - fixture
from tests.test_review import BARE, PRIVILEGED, compliant
from tests.test_web import (  # noqa: F401 - fixtures
    Recorder,
    TestClient,
    client,
    mr_hook,
    post_hook,
    sent,
    settings,
    web,
)
from tests.test_web_e2e import SECRET as E2E_SECRET
from tests.test_web_e2e import web_url, worker  # noqa: F401 - fixtures

PROJECT = "platform/cd-config"
SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n"


def start(emulator: GitLabEmulator, remedy: str = "review_human_mrs: true\n") -> int:
    pid = emulator.create_project(
        PROJECT, {".remedy.yaml": remedy, "apps/shop/service.yaml": SERVICE}
    )
    emulator.add_member(pid, emulator.add_user("alice"), DEVELOPER)
    return pid


def human_mr(emulator: GitLabEmulator, pid: int, files: dict[str, str]) -> int:
    emulator.push_as(pid, "alice/web", files, author="alice", message="Add the web deployment")
    return emulator.open_mr_as(pid, "alice/web", "Add web", by="alice")


def forge(emulator: GitLabEmulator) -> GitLabForge:
    return GitLabForge(emulator.url, emulator.token, PROJECT, max_retries=0)


def review(emulator: GitLabEmulator, iid: int) -> dict[str, Any]:
    return review_merge_request(
        forge(emulator), iid, bot_username="kube-remedy", branch_prefix="remedy/"
    )


def diff_notes(emulator: GitLabEmulator, pid: int, iid: int) -> list[dict[str, Any]]:
    return [n for n in emulator.notes(pid, iid) if n["type"] == "DiffNote"]


def test_suggestions_on_added_lines_once_per_head(gitlab_emulator: GitLabEmulator) -> None:
    pid = start(gitlab_emulator)
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": BARE})

    first = review(gitlab_emulator, iid)
    assert first["status"] == "reviewed" and first["posted"] == 1, first
    (note,) = diff_notes(gitlab_emulator, pid, iid)
    mr = gitlab_emulator.merge_requests(pid)[0]
    position = note["position"]
    assert position["head_sha"] == mr["sha"] == first["head"]
    assert position["new_path"] == "apps/shop/web.yaml" and position["old_line"] is None
    assert note["author"]["username"] == "kube-remedy"
    assert "```suggestion:-0+0" in note["body"] and "C-0016" in note["body"]
    # The anchor is a line the MR added, and the suggestion applied gives an accepted manifest.
    (change,) = forge(gitlab_emulator).merge_request_changes(iid)["changes"]
    assert (None, position["new_line"]) in diff_lines(change["diff"])
    block = note["body"].split("```suggestion:-0+0\n", 1)[1].rsplit("\n```", 1)[0]
    lines = BARE.splitlines()
    lines[position["new_line"] - 1 : position["new_line"]] = block.splitlines()
    fixed = "\n".join(lines) + "\n"
    assert compliant(fixed) == fixed

    gitlab_emulator.reset_counts()
    again = review(gitlab_emulator, iid)
    assert again["posted"] == 0 and again["already_posted"] == 1
    assert gitlab_emulator.writes() == 0
    assert len(diff_notes(gitlab_emulator, pid, iid)) == 1


def test_a_new_head_with_new_problems_gets_only_the_new_suggestions(
    gitlab_emulator: GitLabEmulator,
) -> None:
    pid = start(gitlab_emulator)
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": BARE})
    assert review(gitlab_emulator, iid)["posted"] == 1
    second = BARE.replace("name: web", "name: worker").replace("app: web", "app: worker")
    gitlab_emulator.push_as(
        pid, "alice/web", {"apps/shop/worker.yaml": second}, author="alice", message="worker"
    )
    second = review(gitlab_emulator, iid)
    assert second["posted"] == 1 and second["already_posted"] == 1, second
    paths = sorted(n["position"]["new_path"] for n in diff_notes(gitlab_emulator, pid, iid))
    assert paths == ["apps/shop/web.yaml", "apps/shop/worker.yaml"]


def test_compliant_mr_gets_no_comment(gitlab_emulator: GitLabEmulator) -> None:
    pid = start(gitlab_emulator)
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": compliant(BARE)})
    result = review(gitlab_emulator, iid)
    assert result["posted"] == 0 and result["already_posted"] == 0
    assert gitlab_emulator.notes(pid, iid) == []


def test_only_lines_the_mr_changed_are_commented(gitlab_emulator: GitLabEmulator) -> None:
    pid = start(gitlab_emulator)
    gitlab_emulator.push_as(pid, "main", {"apps/shop/web.yaml": BARE}, author="bob", message="x")
    iid = human_mr(
        gitlab_emulator, pid, {"apps/shop/web.yaml": BARE.replace("nginx:1.27", "nginx:1.28")}
    )
    result = review(gitlab_emulator, iid)
    assert result["posted"] == 0
    assert any("did not write" in s for s in result["skipped"])
    assert gitlab_emulator.notes(pid, iid) == []


@pytest.mark.parametrize(
    ("remedy", "reason"),
    [("", "review_human_mrs"), ("review_human_mrs: true\nenabled: false\n", "review_human_mrs")],
)
def test_opt_in_per_repository(gitlab_emulator: GitLabEmulator, remedy: str, reason: str) -> None:
    pid = start(gitlab_emulator, remedy)
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": BARE})
    result = review(gitlab_emulator, iid)
    assert result["status"] == "ignored" and reason in result["reason"]
    assert gitlab_emulator.notes(pid, iid) == []


def test_invalid_remedy_yaml_is_a_config_error(gitlab_emulator: GitLabEmulator) -> None:
    pid = start(gitlab_emulator, "review_human_mrs: [yes\n")
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": BARE})
    with pytest.raises(ConfigError, match=r"\.remedy\.yaml is not valid YAML"):
        review(gitlab_emulator, iid)
    assert gitlab_emulator.notes(pid, iid) == []


def test_only_yaml_files_are_read(gitlab_emulator: GitLabEmulator) -> None:
    pid = start(gitlab_emulator)
    iid = human_mr(gitlab_emulator, pid, {"README.md": "# shop\n", "apps/shop/web.yaml": BARE})
    gitlab_emulator.reset_counts()
    assert review(gitlab_emulator, iid)["posted"] == 1
    reads = [path for _, path in gitlab_emulator.requests if "/repository/files/" in path]
    assert not any("README" in path for path in reads)


def test_bot_merge_requests_are_not_reviewed(gitlab_emulator: GitLabEmulator) -> None:
    pid = start(gitlab_emulator)
    gitlab_emulator.push_as(pid, "remedy/x", {"a.yaml": BARE}, author="kube-remedy", message="x")
    iid = gitlab_emulator.open_mr_as(pid, "remedy/x", "Fix", by="alice")
    assert review(gitlab_emulator, iid)["reason"] == "merge request of the bot"


def test_emulator_refuses_a_position_outside_the_diff(gitlab_emulator: GitLabEmulator) -> None:
    pid = start(gitlab_emulator)
    gitlab_emulator.push_as(pid, "main", {"apps/shop/web.yaml": BARE}, author="bob", message="x")
    iid = human_mr(
        gitlab_emulator, pid, {"apps/shop/web.yaml": BARE.replace("nginx:1.27", "nginx:1.28")}
    )
    f = forge(gitlab_emulator)
    refs = f.merge_request_changes(iid)["diff_refs"]
    with pytest.raises(ForgeConflictError, match="line_code"):
        f.post_suggestion(iid, refs, "apps/shop/web.yaml", 2, "on an unchanged line")
    f.post_suggestion(iid, refs, "apps/shop/web.yaml", 18, "on the changed image line")
    (note,) = diff_notes(gitlab_emulator, pid, iid)
    assert note["position"]["new_line"] == 18
    assert f.merge_request_note_bodies(iid) == ["on the changed image line"]


@pytest.fixture
def configured(
    gitlab_emulator: GitLabEmulator, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Settings]:
    configured_settings = Settings(
        redis_url=redis_server.url,
        gitlab_url=gitlab_emulator.url,
        gitlab_token=gitlab_emulator.token,
        projects=(ProjectConfig(id=PROJECT),),
        data_dir=tmp_path / "data",
        metrics_port=0,
    )
    previous = tasks._current
    tasks.configure(configured_settings)
    yield configured_settings
    if previous is not None:
        tasks.configure(previous)
    else:
        tasks._current = None


def test_task_body_reviews_under_a_lock(
    gitlab_emulator: GitLabEmulator, configured: Settings
) -> None:
    pid = start(gitlab_emulator)
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": BARE})
    task = tasks._InlineTask("remedy.review_mr")
    event = {"project": PROJECT, "mr_iid": iid}
    assert _review_mr_body(task, event)["posted"] == 1  # type: ignore[arg-type]
    assert _review_mr_body(task, event)["posted"] == 0  # type: ignore[arg-type]
    assert "bot.review_tasks" in tasks.celery_config(configured)["imports"]
    assert "remedy.review_mr" in tasks.app.tasks


# --------------------------------------------------------------------------- web routing


def _other_project(payload: dict[str, Any]) -> dict[str, Any]:
    payload["project"] = {**payload["project"], "id": 99, "path_with_namespace": "team/other"}
    return payload


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (mr_hook("open", source_branch="alice/web"), None),
        (mr_hook("reopen", source_branch="alice/web"), None),
        (mr_hook("update", oldrev="2d4c4e0", source_branch="alice/web"), None),
        (
            mr_hook("update", source_branch="alice/web"),
            "merge request update without new commits needs no review",
        ),
        (mr_hook("merge", source_branch="alice/web"), "not a merge request of the bot"),
        (
            mr_hook("close", source_branch="alice/web", state="closed"),
            "not a merge request of the bot",
        ),
        (_other_project(mr_hook("open", source_branch="alice/web")), "project is not configured"),
    ],
)
def test_web_routes_new_commits_of_human_mrs_to_the_review(
    client: TestClient,  # noqa: F811
    sent: Recorder,  # noqa: F811
    payload: dict[str, Any],
    expected: str | None,
) -> None:
    response = post_hook(client, payload, event="Merge Request Hook")
    if expected is None:
        assert response.status_code == 202
        assert sent.sent == [("remedy.review_mr", {"project": PROJECT, "mr_iid": 3})]
    else:
        assert response.status_code == 200
        assert response.json()["reason"] == expected
        assert sent.sent == []


# --------------------------------------------------------------------------- through a worker


@pytest.mark.slow
def test_human_mr_reviewed_through_the_webhook_and_a_worker(
    gitlab_emulator: GitLabEmulator,
    worker: subprocess.Popen[bytes],  # noqa: F811
    web_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    pid = start(gitlab_emulator)
    gitlab_emulator.add_hook(pid, f"{web_url}/webhooks/gitlab", token=E2E_SECRET)
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": BARE})
    log = tmp_path / "worker-0.log"

    def reviews() -> int:
        return log.read_text(errors="replace").count("mr-reviewed") if log.exists() else 0

    try:
        wait_until(lambda: diff_notes(gitlab_emulator, pid, iid), 60, "a suggestion")
        wait_until(lambda: reviews() == 1, 30, "the review logged")
    except AssertionError:
        gitlab_emulator.flush_hooks()
        print(gitlab_emulator.hook_deliveries)
        print(log.read_text(errors="replace"))
        raise
    # The same head delivered again (an update hook): reviewed again, nothing new posted.
    mr = gitlab_emulator.merge_requests(pid)[0]
    payload = mr_hook("update", oldrev="0" * 40, source_branch="alice/web")
    payload["project"] = {**payload["project"], "id": pid, "path_with_namespace": PROJECT}
    payload["object_attributes"] = {**payload["object_attributes"], "iid": iid}
    payload["object_attributes"]["last_commit"]["id"] = mr["sha"]
    answer = httpx.post(
        f"{web_url}/webhooks/gitlab",
        json=payload,
        headers={"X-Gitlab-Token": E2E_SECRET, "X-Gitlab-Event": "Merge Request Hook"},
        timeout=5,
    )
    assert answer.status_code == 202, answer.text
    wait_until(lambda: reviews() == 2, 60, "the second review")
    assert len(diff_notes(gitlab_emulator, pid, iid)) == 1


_BLOCK = re.compile(r"^(`{3,})suggestion:-0\+(\d+)\n(.*?)\n?\1$", re.M | re.S)


def applied(text: str, notes: list[dict[str, Any]]) -> str:
    """``text`` with every posted suggestion applied, as a person clicking "Apply" would."""
    lines = text.splitlines()
    for note in sorted(notes, key=lambda n: n["position"]["new_line"], reverse=True):
        match = _BLOCK.search(note["body"])
        assert match, note["body"]
        first = note["position"]["new_line"]
        block = match.group(3).splitlines() if match.group(3) else []
        lines[first - 1 : first + int(match.group(2))] = block
    return "\n".join(lines) + "\n"


def test_shared_planner_on_a_gitlab_mr(gitlab_emulator: GitLabEmulator) -> None:
    """Privileged + privilege escalation both end fixed, policy requests win over the limit
    fixer's limit, and an ignore in .remedy.yaml is honoured, on a GitLab-shaped MR."""
    remedy = (
        "review_human_mrs: true\n"
        "policy:\n  resources:\n    cpu_request: 100m\n    cpu_limit: 500m\n"
        "ignore:\n  - control: C-0017\n    resource: Deployment/shop/web\n"
        "    reason: nginx writes its cache\n"
    )
    pid = start(gitlab_emulator, remedy)
    iid = human_mr(gitlab_emulator, pid, {"apps/shop/web.yaml": PRIVILEGED})
    result = review(gitlab_emulator, iid)
    assert result["status"] == "reviewed" and result["posted"] >= 1, result
    assert not any("C-0016" in s or "C-0057" in s for s in result["skipped"]), result
    fixed = applied(PRIVILEGED, diff_notes(gitlab_emulator, pid, iid))
    (container,) = load_documents(fixed)[0]["spec"]["template"]["spec"]["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert "readOnlyRootFilesystem" not in context
    assert container["resources"]["requests"]["cpu"] == "100m"
    assert container["resources"]["limits"]["cpu"] == "500m"
