"""The web process: webhook and slash-command authentication, filtering, de-duplication, limits.

Payloads follow the shapes of GitLab's documented Note Hook and Merge Request Hook examples and
Slack's/Mattermost's slash command requests (form fields, signature, token), written here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI

from bot.chatops import slack_signature
from bot.intake import MemoryDedupe, RedisDedupe
from bot.settings import Settings
from bot.web import create_app
from bot.web_settings import WebSettings
from bot.webhooks import note_key
from tests.redis_server import RedisServer, free_port, redis_server_fixture  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent

PROJECT = "platform/cd-config"
SECRET = "s3cret-webhook-token"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MM_TOKEN = "xbxcs4qrwjgrfrwzqwhfhqqqhe"
NOW = 1_763_856_000


class TestClient:
    """A synchronous client over httpx's ASGI transport (the app runs in-process)."""

    __test__ = False

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.request(method, url, **kwargs)
                await response.aread()
                return response

        return anyio.run(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


class Recorder:
    """The enqueue seam: records (task, event) instead of sending to Celery."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, event: dict[str, Any]) -> None:
        self.sent.append((name, event))


@pytest.fixture
def settings() -> Settings:
    return Settings(
        projects=[{"id": PROJECT}],
        branch_prefix="remedy/",
        webhook_secret=SECRET,
        slack_signing_secret=SLACK_SECRET,
        mattermost_token=MM_TOKEN,
    )


@pytest.fixture
def web() -> WebSettings:
    return WebSettings(
        chat_users={"U2147483697": (PROJECT,), "mm-user-1": ("*",)},
        max_body_bytes=64 * 1024,
        response_url_prefixes=("https://hooks.slack.com/", "https://chat.example.com/"),
    )


@pytest.fixture
def sent() -> Recorder:
    return Recorder()


@pytest.fixture
def client(settings: Settings, web: WebSettings, sent: Recorder) -> Iterator[TestClient]:
    app = create_app(settings, sent, web=web, dedupe=MemoryDedupe(), clock=lambda: NOW)
    with TestClient(app) as test_client:
        yield test_client


# --------------------------------------------------------------------------- GitLab payloads


def gl_user(username: str = "alice", uid: int = 7) -> dict[str, Any]:
    return {
        "id": uid,
        "name": username.title(),
        "username": username,
        "avatar_url": "https://www.gravatar.com/avatar/x?s=80&d=identicon",
        "email": "[REDACTED]",
    }


def gl_project() -> dict[str, Any]:
    return {
        "id": 5,
        "name": "cd-config",
        "description": "GitOps configuration",
        "web_url": "http://gitlab.test/platform/cd-config",
        "avatar_url": None,
        "git_ssh_url": "git@gitlab.test:platform/cd-config.git",
        "git_http_url": "http://gitlab.test/platform/cd-config.git",
        "namespace": "platform",
        "visibility_level": 0,
        "path_with_namespace": PROJECT,
        "default_branch": "main",
        "ci_config_path": None,
    }


def note_hook(
    note: str = "@kube-remedy rebase",
    *,
    username: str = "alice",
    action: str | None = "create",
    noteable_type: str = "MergeRequest",
    source_branch: str = "remedy/web-deployment",
    updated_at: str = "2026-11-22 23:10:05 UTC",
    note_id: int = 1244,
    mr_iid: int = 3,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "attachment": None,
        "author_id": 7,
        "change_position": None,
        "commit_id": None,
        "created_at": "2026-11-22 23:10:05 UTC",
        "discussion_id": "7f1fcd25a3cbb95c3a1d6a4e0b2c1d9f8e7a6b5c",
        "id": note_id,
        "line_code": None,
        "note": note,
        "noteable_id": 301,
        "noteable_type": noteable_type,
        "original_position": None,
        "position": None,
        "project_id": 5,
        "resolved_at": None,
        "resolved_by_id": None,
        "resolved_by_push": None,
        "st_diff": None,
        "system": False,
        "type": None,
        "updated_at": updated_at,
        "updated_by_id": None,
        "description": note,
        "url": "http://gitlab.test/platform/cd-config/-/merge_requests/3#note_1244",
    }
    if action is not None:
        attrs["action"] = action
    return {
        "object_kind": "note",
        "event_type": "note",
        "user": gl_user(username),
        "project_id": 5,
        "project": gl_project(),
        "object_attributes": attrs,
        "repository": {
            "name": "cd-config",
            "url": "git@gitlab.test:platform/cd-config.git",
            "description": "GitOps configuration",
            "homepage": "http://gitlab.test/platform/cd-config",
        },
        "merge_request": {
            "assignee_id": None,
            "author_id": 2,
            "created_at": "2026-11-22 06:00:12 UTC",
            "description": "Fixes C-0016 in web",
            "draft": False,
            "head_pipeline_id": None,
            "id": 301,
            "iid": mr_iid,
            "last_edited_at": None,
            "merge_status": "can_be_merged",
            "source_branch": source_branch,
            "source_project_id": 5,
            "state": "opened",
            "target_branch": "main",
            "target_project_id": 5,
            "title": "Harden web: no privilege escalation",
            "updated_at": "2026-11-22 23:10:05 UTC",
            "url": "http://gitlab.test/platform/cd-config/-/merge_requests/3",
            "work_in_progress": False,
            "labels": [],
        },
    }


def mr_hook(
    action: str,
    *,
    username: str = "alice",
    oldrev: str | None = None,
    author_name: str = "Alice",
    author_email: str = "alice@example.com",
    source_branch: str = "remedy/web-deployment",
    state: str = "opened",
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "action": action,
        "assignee_id": None,
        "author_id": 2,
        "created_at": "2026-11-22 06:00:12 UTC",
        "description": "Fixes C-0016 in web",
        "draft": False,
        "id": 301,
        "iid": 3,
        "last_commit": {
            "id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "message": "tweak\n",
            "title": "tweak",
            "timestamp": "2026-11-22T23:12:01+00:00",
            "url": "http://gitlab.test/platform/cd-config/-/commit/da15608",
            "author": {"name": author_name, "email": author_email},
        },
        "merge_status": "unchecked",
        "source_branch": source_branch,
        "source_project_id": 5,
        "state": state,
        "target_branch": "main",
        "target_project_id": 5,
        "title": "Harden web: no privilege escalation",
        "updated_at": "2026-11-22 23:12:03 UTC",
        "url": "http://gitlab.test/platform/cd-config/-/merge_requests/3",
    }
    if oldrev is not None:
        attrs["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": gl_user(username),
        "project": gl_project(),
        "object_attributes": attrs,
        "labels": [],
        "changes": {},
        "repository": {"name": "cd-config", "url": "git@gitlab.test:platform/cd-config.git"},
    }


def post_hook(
    client: TestClient,
    payload: Any,
    *,
    token: str | None = SECRET,
    event: str = "Note Hook",
    key: str | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event}
    headers["X-Gitlab-Event-UUID"] = "13792a34-cac6-4fda-95a8-c58e00a3954e"
    if token is not None:
        headers["X-Gitlab-Token"] = token
    if key is not None:
        headers["Idempotency-Key"] = key
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post("/webhooks/gitlab", content=body, headers=headers)


# --------------------------------------------------------------------------- basics


def test_healthz_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    post_hook(client, note_hook())
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'remedy_web_requests_total{endpoint="gitlab",outcome="queued"}' in metrics.text


def test_command_note_is_queued_with_plain_json(client: TestClient, sent: Recorder) -> None:
    response = post_hook(client, note_hook("Looks good.\n@kube-remedy ignore C-0016 staging"))
    assert response.status_code == 202
    assert response.json() == {"status": "queued", "reason": "remedy.mr_command"}
    assert sent.sent == [
        (
            "remedy.mr_command",
            {
                "project": PROJECT,
                "mr_iid": 3,
                "note_id": 1244,
                "user_id": 7,
                "username": "alice",
                "note": "Looks good.\n@kube-remedy ignore C-0016 staging",
            },
        )
    ]


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        (None, 401, "missing X-Gitlab-Token"),
        ("wrong", 401, "invalid X-Gitlab-Token"),
        (SECRET + "x", 401, "invalid X-Gitlab-Token"),
        ("", 401, "invalid X-Gitlab-Token"),
    ],
)
def test_forged_or_missing_token_is_401_and_writes_nothing(
    client: TestClient, sent: Recorder, token: str | None, status: int, reason: str
) -> None:
    response = post_hook(client, note_hook(), token=token)
    assert (response.status_code, response.json()["reason"]) == (status, reason)
    assert sent.sent == []


def test_unconfigured_secret_refuses_everything(web: WebSettings, sent: Recorder) -> None:
    app = create_app(Settings(projects=[{"id": PROJECT}]), sent, web=web, dedupe=MemoryDedupe())
    with TestClient(app) as client:
        assert post_hook(client, note_hook(), token="anything").status_code == 503
        assert client.post("/chatops/slack", content=b"").status_code == 503
        assert client.post("/chatops/mattermost", content=b"").status_code == 503
    assert sent.sent == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (json.dumps({"object_kind": "note", "object_attributes": {}}).encode(), "malformed note"),
        (
            json.dumps({**note_hook(), "merge_request": None}).encode(),
            "malformed note event: merge_request",
        ),
        (json.dumps({"object_kind": "merge_request", "user": {}}).encode(), "malformed merge"),
    ],
)
def test_malformed_body_is_400(client: TestClient, sent: Recorder, raw: bytes, reason: str) -> None:
    response = post_hook(client, None, raw=raw)
    assert response.status_code == 400
    assert response.json()["reason"].startswith(reason)
    assert sent.sent == []


def test_oversized_body_is_413_before_parsing(client: TestClient, sent: Recorder) -> None:
    big = note_hook("@kube-remedy rebase\n" + "x" * 70_000)
    response = post_hook(client, big)
    assert response.status_code == 413
    assert sent.sent == []


def test_unknown_event_types_are_ignored_with_the_reason(
    client: TestClient, sent: Recorder
) -> None:
    push = {"object_kind": "push", "ref": "refs/heads/main", "project": gl_project()}
    response = post_hook(client, push, event="Push Hook")
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "reason": "event type 'push' is not handled"}
    response = post_hook(client, {"no": "kind"}, event="Emoji Hook")
    assert response.json()["reason"] == "event type 'Emoji Hook' is not handled"
    assert sent.sent == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (note_hook(username="kube-remedy"), "comment by the bot itself"),
        (note_hook(username="Kube-Remedy"), "comment by the bot itself"),
        (note_hook(action="update"), "note 'update', only new notes carry commands"),
        (
            note_hook(action=None, updated_at="2026-11-22 23:11:00 UTC"),
            "edited note, only new notes carry commands",
        ),
        (note_hook(noteable_type="Issue"), "note on 'Issue', not on a merge request"),
        (note_hook(source_branch="feature/login"), "not a merge request of the bot"),
        (note_hook("/rebase"), "no command addressed to the bot"),
        (note_hook("> @kube-remedy rebase\nquoted"), "no command addressed to the bot"),
    ],
)
def test_notes_that_carry_no_command_are_ignored(
    client: TestClient, sent: Recorder, payload: dict[str, Any], reason: str
) -> None:
    response = post_hook(client, payload)
    assert (response.status_code, response.json()["reason"]) == (200, reason)
    assert sent.sent == []


def test_note_without_action_from_older_gitlab_is_accepted(
    client: TestClient, sent: Recorder
) -> None:
    assert post_hook(client, note_hook(action=None)).status_code == 202
    assert len(sent.sent) == 1


def test_unconfigured_project_is_ignored(client: TestClient, sent: Recorder) -> None:
    payload = note_hook()
    payload["project"] = {**gl_project(), "id": 99, "path_with_namespace": "other/repo"}
    response = post_hook(client, payload)
    assert response.json()["reason"] == "project is not configured"
    assert sent.sent == []


# --------------------------------------------------------------------------- de-duplication


def test_retried_delivery_with_the_same_idempotency_key_is_queued_once(
    client: TestClient, sent: Recorder
) -> None:
    first = post_hook(client, note_hook(), key="a1b2c3")
    again = post_hook(client, note_hook(), key="a1b2c3")
    assert first.status_code == 202
    assert (again.status_code, again.json()["reason"]) == (200, "duplicate delivery")
    assert len(sent.sent) == 1


def test_one_note_through_two_hooks_acts_once(client: TestClient, sent: Recorder) -> None:
    # Two hooks (project and group) fired by one note: distinct deliveries, one command.
    assert post_hook(client, note_hook(), key="hook-1").status_code == 202
    assert post_hook(client, note_hook(), key="hook-2").json()["reason"] == "duplicate delivery"
    assert len(sent.sent) == 1


def test_without_idempotency_key_identical_bodies_are_one_delivery(
    client: TestClient, sent: Recorder
) -> None:
    assert post_hook(client, note_hook()).status_code == 202
    assert post_hook(client, note_hook()).json()["reason"] == "duplicate delivery"
    assert post_hook(client, note_hook(note_id=1245)).status_code == 202
    assert len(sent.sent) == 2


def test_note_key_names_the_note_not_its_body() -> None:
    assert note_key(5, "MergeRequest", 3, 1244) == note_key(5, "MergeRequest", 3, 1244)
    assert (
        len(
            {
                note_key(5, "MergeRequest", 3, 1244),
                note_key(5, "MergeRequest", 3, 1245),
                note_key(6, "MergeRequest", 3, 1244),
                note_key(5, "Issue", 3, 1244),
            }
        )
        == 4
    )


def test_memory_dedupe_forgets_after_the_ttl() -> None:
    now = [0.0]
    store = MemoryDedupe(clock=lambda: now[0])
    assert store.first_time("k", 10)
    assert not store.first_time("k", 10)
    now[0] = 11
    assert store.first_time("k", 10)


def test_redis_dedupe_uses_set_nx_ex(redis_server: RedisServer) -> None:
    client = redis_server.client()
    store = RedisDedupe(client)
    assert store.first_time("k1", 30)
    assert not store.first_time("k1", 30)
    assert 0 < client.ttl("remedy:webhook:k1") <= 30
    client.close()


def test_queue_down_is_503_so_gitlab_retries(settings: Settings, web: WebSettings) -> None:
    def broken(name: str, event: dict[str, Any]) -> None:
        raise redis.ConnectionError("Connection refused")

    app = create_app(settings, broken, web=web, dedupe=MemoryDedupe())
    with TestClient(app) as client:
        response = post_hook(client, note_hook())
    assert (response.status_code, response.json()["reason"]) == (
        503,
        "queue unavailable (ConnectionError)",
    )


# --------------------------------------------------------------------------- MR lifecycle


@pytest.mark.parametrize(
    ("payload", "status", "expected"),
    [
        (mr_hook("merge", state="merged"), 202, {"kind": "merged"}),
        (mr_hook("reopen"), 202, {"kind": "reopened"}),
        (
            mr_hook("update", oldrev="2d4c4e0d0cbb0b8e4cc2d1c4f1f7f0f4f3b1a9c8"),
            202,
            {"kind": "human-push", "username": "alice"},
        ),
        (
            mr_hook("close", state="closed"),
            200,
            "closed without merge: the bot treats it as ignored",
        ),
        (
            mr_hook("update", oldrev="2d4c4e0", username="kube-remedy", author_name="kube-remedy"),
            200,
            "push by the bot",
        ),
        (
            # A person's push whose commit claims the bot as author is still a person's.
            mr_hook("update", oldrev="2d4c4e0", author_email="kube-remedy@gitlab.test"),
            202,
            {"kind": "human-push", "username": "alice"},
        ),
        (mr_hook("update"), 200, "merge request action 'update' needs nothing"),
        (mr_hook("merge", source_branch="feature/x"), 200, "not a merge request of the bot"),
    ],
)
def test_merge_request_hook(
    client: TestClient,
    sent: Recorder,
    payload: dict[str, Any],
    status: int,
    expected: dict[str, Any] | str,
) -> None:
    response = post_hook(client, payload, event="Merge Request Hook")
    assert response.status_code == status
    if isinstance(expected, str):
        assert response.json()["reason"] == expected
        assert sent.sent == []
    else:
        assert sent.sent == [("remedy.mr_event", {"project": PROJECT, "mr_iid": 3, **expected})]


# --------------------------------------------------------------------------- Slack


def slack_form(text: str, user_id: str = "U2147483697", **extra: str) -> bytes:
    fields = {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "team_id": "T0001",
        "team_domain": "example",
        "enterprise_id": "E0001",
        "enterprise_name": "Globular Construct Inc",
        "channel_id": "C2147483705",
        "channel_name": "test",
        "user_id": user_id,
        "user_name": "Steve",
        "command": "/remedy",
        "text": text,
        "response_url": "https://hooks.slack.com/commands/1234/5678",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "api_app_id": "A123456",
        **extra,
    }
    return urlencode(fields).encode()


def post_slack(
    client: TestClient,
    body: bytes,
    *,
    ts: int = NOW,
    secret: str = SLACK_SECRET,
    signature: str | None = None,
) -> httpx.Response:
    sig = signature or slack_signature(secret.encode(), str(ts), body).decode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sig,
    }
    return client.post("/chatops/slack", content=body, headers=headers)


def test_slack_signature_matches_the_documented_computation() -> None:
    body = b"token=x&text=help"
    expected = "v0=" + hmac.new(b"k", b"v0:1531420618:" + body, hashlib.sha256).hexdigest()
    assert slack_signature(b"k", "1531420618", body).decode() == expected


def test_slack_run_is_acknowledged_ephemerally_and_queued(
    client: TestClient, sent: Recorder
) -> None:
    response = post_slack(client, slack_form("run platform/cd-config C-0016"))
    assert response.status_code == 200
    assert response.json() == {
        "response_type": "ephemeral",
        "text": "Working on `run`; the result follows here.",
    }
    assert sent.sent == [
        (
            "remedy.chat_command",
            {
                "platform": "slack",
                "user_id": "U2147483697",
                "user_name": "Steve",
                "channel_id": "C2147483705",
                "text": "run platform/cd-config C-0016",
                "response_url": "https://hooks.slack.com/commands/1234/5678",
            },
        )
    ]


def test_slack_help_and_explain_are_answered_at_once(client: TestClient, sent: Recorder) -> None:
    help_text = post_slack(client, slack_form("help")).json()["text"]
    assert "`/remedy status PROJECT`" in help_text
    explain = post_slack(client, slack_form("explain C-0016")).json()["text"]
    assert explain.startswith("**C-0016")
    assert sent.sent == []


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"ts": NOW - 301}, "stale or invalid Slack timestamp (replayed request?)"),
        ({"ts": NOW + 301}, "stale or invalid Slack timestamp (replayed request?)"),
        ({"secret": "not-the-secret"}, "invalid X-Slack-Signature"),
        ({"signature": "v0=" + "0" * 64}, "invalid X-Slack-Signature"),
    ],
)
def test_slack_forged_or_replayed_requests_are_401(
    client: TestClient, sent: Recorder, kwargs: dict[str, Any], reason: str
) -> None:
    response = post_slack(client, slack_form("run platform/cd-config"), **kwargs)
    assert (response.status_code, response.json()["reason"]) == (401, reason)
    assert sent.sent == []


def test_slack_missing_headers_is_401(client: TestClient, sent: Recorder) -> None:
    response = client.post("/chatops/slack", content=slack_form("help"))
    assert response.status_code == 401
    assert sent.sent == []


def test_slack_body_signed_then_tampered_is_401(client: TestClient, sent: Recorder) -> None:
    signed = slack_form("status platform/cd-config")
    sig = slack_signature(SLACK_SECRET.encode(), str(NOW), signed).decode()
    response = post_slack(client, slack_form("run platform/cd-config"), signature=sig)
    assert response.status_code == 401
    assert sent.sent == []


def test_slack_malformed_form_is_400(client: TestClient, sent: Recorder) -> None:
    for body in (b"\xff\xfe=1", b"text=a&text=b", b"text=run"):
        assert post_slack(client, body).status_code == 400
    assert sent.sent == []


def test_slack_unauthorized_user_is_told_why_and_nothing_is_queued(
    client: TestClient, sent: Recorder
) -> None:
    response = post_slack(client, slack_form("run platform/cd-config", user_id="U666"))
    assert response.status_code == 200
    assert response.json()["text"].startswith("Refused: you are not allowed to use this bot")
    assert sent.sent == []


def test_slack_injection_in_text_is_escaped(client: TestClient, sent: Recorder) -> None:
    response = post_slack(client, slack_form("status <!channel>&[x](javascript:alert(1))"))
    text = response.json()["text"]
    assert "<!channel>" not in text and "[x](" not in text
    assert "&lt;\\!channel&gt;" in text
    assert sent.sent == []


def test_slack_foreign_response_url_is_refused(client: TestClient, sent: Recorder) -> None:
    body = slack_form("run platform/cd-config", response_url="http://169.254.169.254/latest")
    response = post_slack(client, body)
    assert response.status_code == 400
    assert sent.sent == []


# --------------------------------------------------------------------------- Mattermost


def mattermost_form(text: str, token: str = MM_TOKEN) -> bytes:
    return urlencode(
        {
            "channel_id": "fukq4t5aajbe7br4ycf5n9ojzy",
            "channel_name": "town-square",
            "command": "/remedy",
            "response_url": "https://chat.example.com/hooks/commands/k6qpq3y8",
            "team_domain": "example",
            "team_id": "rdc9bgriktyx9p4kowh3dmgqyc",
            "text": text,
            "token": token,
            "trigger_id": "OWpkamI0eGJ0cm4zdGo3eTVuZnFtZ3N3aGU6",
            "user_id": "mm-user-1",
            "user_name": "bob",
        }
    ).encode()


def test_mattermost_command_is_queued(client: TestClient, sent: Recorder) -> None:
    response = client.post(
        "/chatops/mattermost",
        content=mattermost_form("status platform/cd-config"),
        headers={
            "Authorization": f"Token {MM_TOKEN}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert [name for name, _ in sent.sent] == ["remedy.chat_command"]
    assert sent.sent[0][1]["platform"] == "mattermost"


@pytest.mark.parametrize(
    ("header", "body_token"),
    [
        (None, MM_TOKEN),
        ("Token wrong", MM_TOKEN),
        (f"Bearer {MM_TOKEN}", MM_TOKEN),
        (f"Token {MM_TOKEN}", "wrong"),
    ],
)
def test_mattermost_bad_token_is_401(
    client: TestClient, sent: Recorder, header: str | None, body_token: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.post(
        "/chatops/mattermost",
        content=mattermost_form("status platform/cd-config", token=body_token),
        headers=headers,
    )
    assert response.status_code == 401
    assert sent.sent == []


# --------------------------------------------------------------------------- real socket


@pytest.fixture
def live_server(settings: Settings, web: WebSettings, sent: Recorder) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread."""
    port = free_port()
    app = create_app(settings, sent, web=web, dedupe=MemoryDedupe())
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_real_socket_webhook_is_queued(live_server: str, sent: Recorder) -> None:
    body = json.dumps(note_hook()).encode()
    headers = {"X-Gitlab-Token": SECRET, "Content-Type": "application/json"}
    with httpx.Client(base_url=live_server) as http:
        started = time.perf_counter()
        response = http.post("/webhooks/gitlab", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        assert http.get("/healthz").status_code == 200
    assert response.status_code == 202
    assert elapsed < 1.0
    assert [name for name, _ in sent.sent] == ["remedy.mr_command"]


def test_real_socket_chunked_oversized_body_is_cut_off_while_reading(
    live_server: str, sent: Recorder
) -> None:
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/gitlab HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-Gitlab-Token: {SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 16384
        sent_bytes = 0
        answer = b""
        sock.settimeout(0.05)
        # Stream up to 16 MiB; the server must answer long before the body ends.
        while sent_bytes < 16 * 1024 * 1024 and b"\r\n\r\n" not in answer:
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent_bytes += len(chunk)
            except OSError:
                break
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
        sock.settimeout(5)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent_bytes < 2 * 1024 * 1024
    assert sent.sent == []


def test_serve_runs_the_app_from_settings(tmp_path: Any) -> None:
    """`serve(settings)` is what ``remedy serve`` calls: it listens where the settings say."""
    import os
    import subprocess
    import sys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDY_")}
    env.update(
        {
            "REMEDY_WEB_PORT": str(port),
            "REMEDY_WEBHOOK_SECRET": SECRET,
            "REMEDY_REDIS_URL": "redis://127.0.0.1:1/0",
            "REMEDY_DATA_DIR": str(tmp_path),
            "REMEDY_PROJECTS": json.dumps([{"id": PROJECT}]),
            "REMEDY_BRANCH_PREFIX": "remedy/",
        }
    )
    code = (
        "from bot.settings import load_settings; from bot.web import serve; serve(load_settings())"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "serve() exited"
                assert time.monotonic() < deadline, "serve() did not listen"
                time.sleep(0.1)
        assert answer.json() == {"status": "ok"}
        # Redis is down: a valid delivery is refused with 503 so GitLab retries it later.
        refused = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/gitlab",
            content=json.dumps(note_hook()).encode(),
            headers={"X-Gitlab-Token": SECRET},
            timeout=10,
        )
        assert refused.status_code == 503
        assert refused.json()["reason"] == "queue unavailable (ConnectionError)"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- the web process

_RUN_APP = """
import gc, sys
from bot.intake import LocalIntake
from bot.settings import Settings
from bot.web import create_app, run_app

settings = Settings(redis_url="redis://127.0.0.1:1/0", webhook_secret="s")
app = create_app(settings, intake=LocalIntake(lambda *_: None))
app.add_api_route("/frozen", lambda: {"objects": gc.get_freeze_count()})
run_app(app, "127.0.0.1", int(sys.argv[1]))
"""


def _run_app(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _RUN_APP, str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_the_web_process_serves_with_its_start_up_heap_out_of_the_collectors_reach() -> None:
    port = free_port()
    process = _run_app(port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                frozen = httpx.get(f"http://127.0.0.1:{port}/frozen", timeout=1).json()
                break
            except httpx.HTTPError:
                assert process.poll() is None, "the web process ended"
                assert time.monotonic() < deadline, "the web process did not start"
                time.sleep(0.1)
        assert frozen["objects"] > 10_000  # modules, the app, its settings
        # a second process on the same port cannot start: an exit code, not a hang
        second = _run_app(port)
        second.communicate(timeout=60)
        assert second.returncode == 3
    finally:
        process.terminate()
        process.communicate(timeout=30)
