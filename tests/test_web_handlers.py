"""The web handlers without HTTP: a `WebContext`, headers and a body in, an `Answer` out.

The HTTP behaviour (status codes through uvicorn/ASGI, size caps, replays) is in test_web.py and
tests/security; here each handler's decisions are checked directly, including the order of its
checks (credentials before the body is read).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from bot import chatops, webhooks
from bot.identity import BotIdentity
from bot.intake import LocalIntake, MemoryDedupe
from bot.settings import Settings
from bot.web_context import Answer, WebContext
from bot.web_settings import WebSettings
from tests.test_web import (
    NOW,
    PROJECT,
    SECRET,
    SLACK_SECRET,
    Recorder,
    mr_hook,
    note_hook,
    slack_form,
)


@pytest.fixture
def sent() -> Recorder:
    return Recorder()


@pytest.fixture
def ctx(sent: Recorder) -> WebContext:
    settings = Settings(
        projects=[{"id": PROJECT}],
        branch_prefix="remedy/",
        webhook_secret=SECRET,
        slack_signing_secret=SLACK_SECRET,
    )
    web = WebSettings(chat_users={"U2147483697": (PROJECT,)})
    intake = LocalIntake(sent, MemoryDedupe())
    return WebContext(settings, web, intake, BotIdentity("kube-remedy", 99), clock=lambda: NOW)


def body_of(payload: Any) -> Any:
    async def read() -> bytes:
        return json.dumps(payload).encode()

    return read


async def never_read() -> bytes:
    raise AssertionError("the body was read before the credentials were checked")


def run(handler: Any, ctx: WebContext, headers: dict[str, str], read: Any) -> Answer:
    async def call() -> Answer:
        answer: Answer = await handler(ctx, headers, read)
        return answer

    return anyio.run(call)


GITLAB = {"x-gitlab-token": SECRET, "x-gitlab-event": "Note Hook"}


def test_gitlab_note_with_a_command_is_queued_once(ctx: WebContext, sent: Recorder) -> None:
    answer = run(webhooks.handle, ctx, GITLAB, body_of(note_hook()))
    assert (answer.status, answer.outcome, answer.reason) == (202, "queued", "remedy.mr_command")
    assert answer.fields == {"task": "remedy.mr_command", "project": PROJECT, "mr": 3}
    ((task, event),) = sent.sent
    assert task == "remedy.mr_command" and event["note_id"] == 1244
    again = run(webhooks.handle, ctx, GITLAB, body_of(note_hook()))
    assert (again.status, again.reason) == (200, "duplicate delivery") and len(sent.sent) == 1
    assert again.json() == {"status": "ignored", "reason": "duplicate delivery"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"x-gitlab-token": "wrong"}, 401), ({"x-gitlab-token": SECRET[:-1]}, 401)],
)
def test_gitlab_credentials_are_checked_before_the_body_is_read(
    ctx: WebContext, sent: Recorder, headers: dict[str, str], status: int
) -> None:
    answer = run(webhooks.handle, ctx, headers, never_read)
    assert (answer.status, answer.outcome) == (status, "refused") and answer.warning
    assert SECRET not in answer.reason and not sent.sent


def test_gitlab_decisions_name_their_reason_and_queue_nothing(ctx: WebContext) -> None:
    by_bot = note_hook(username="kube-remedy")
    by_bot["object_attributes"]["author_id"] = 99
    assert webhooks.decide(ctx, by_bot) == "comment by the bot itself"
    assert webhooks.decide(ctx, note_hook("thanks")) == "no command addressed to the bot"
    other = note_hook(source_branch="feature/x")
    assert webhooks.decide(ctx, other) == "not a merge request of the bot"
    assert webhooks.decide(ctx, {"object_kind": "push"}) == "event type 'push' is not handled"
    assert webhooks.decide(ctx, {}, "Job Hook") == "event type 'Job Hook' is not handled"
    task, event, key = webhooks.decide(ctx, mr_hook(action="merge"))  # type: ignore[misc]
    assert (task, event) == ("remedy.mr_event", {"project": PROJECT, "mr_iid": 3, "kind": "merged"})
    assert key.startswith("mr:5:3:")


def test_gitlab_malformed_bodies_are_400(ctx: WebContext) -> None:
    for payload, reason in [
        ([1, 2], "body is not a JSON object"),
        ({"object_kind": "note", "user": {}}, "malformed note event: user.username"),
    ]:
        answer = run(webhooks.handle, ctx, GITLAB, body_of(payload))
        assert (answer.status, answer.reason) == (400, reason)
    nested: Any = []
    for _ in range(ctx.web.max_json_depth + 1):
        nested = [nested]
    answer = run(webhooks.handle, ctx, GITLAB, body_of(nested))
    assert (answer.status, answer.reason) == (400, "JSON nested deeper than 64 levels")


def slack_headers(body: bytes, ts: int = NOW) -> dict[str, str]:
    signature = chatops.slack_signature(SLACK_SECRET.encode(), str(ts), body).decode()
    return {"x-slack-request-timestamp": str(ts), "x-slack-signature": signature}


def reader(body: bytes) -> Any:
    async def read() -> bytes:
        return body

    return read


def test_slack_help_is_answered_at_once_and_run_is_queued(ctx: WebContext, sent: Recorder) -> None:
    body = slack_form("help")
    answer = run(chatops.slack, ctx, slack_headers(body), reader(body))
    assert (answer.status, answer.outcome) == (200, "answered") and not sent.sent
    assert answer.body is not None and answer.body["response_type"] == "ephemeral"
    assert "/remedy run PROJECT" in answer.body["text"]
    body = slack_form(f"run {PROJECT}")
    answer = run(chatops.slack, ctx, slack_headers(body), reader(body))
    assert answer.outcome == "queued" and [t for t, _ in sent.sent] == ["remedy.chat_command"]
    again = run(chatops.slack, ctx, slack_headers(body), reader(body))
    assert again.outcome == "duplicate" and len(sent.sent) == 1


def test_slack_stale_requests_are_refused_before_the_body_is_read(ctx: WebContext) -> None:
    headers = slack_headers(b"", ts=NOW - ctx.web.slack_max_age - 1)
    answer = run(chatops.slack, ctx, headers, never_read)
    assert (answer.status, answer.reason) == (
        401,
        "stale or invalid Slack timestamp (replayed request?)",
    )


def test_chat_command_refusals_are_warnings_without_queueing(
    ctx: WebContext, sent: Recorder
) -> None:
    body = slack_form(f"run {PROJECT}", user_id="U-stranger")
    answer = run(chatops.slack, ctx, slack_headers(body), reader(body))
    assert answer.outcome == "unauthorized" and answer.status == 200 and answer.warning
    assert answer.fields["user"] == "U-stranger" and not sent.sent
    body = slack_form(f"run {PROJECT}", response_url="https://evil.example/x")
    answer = run(chatops.slack, ctx, slack_headers(body), reader(body))
    assert (answer.status, answer.reason) == (
        400,
        "response_url is not an allowed chat server address",
    )
    assert not sent.sent


def test_the_app_serves_the_handlers_and_fastapi_the_rest(sent: Recorder) -> None:
    """The hot POST routes bypass FastAPI's middleware; other methods still get FastAPI's
    answers (405), and every answer is counted."""
    from prometheus_client import REGISTRY

    from bot.web import create_app
    from tests.test_web import TestClient

    settings = Settings(projects=[{"id": PROJECT}], branch_prefix="remedy/", webhook_secret=SECRET)
    app = create_app(settings, sent, web=WebSettings(), dedupe=MemoryDedupe())
    labels = {"endpoint": "gitlab", "outcome": "queued"}
    before = REGISTRY.get_sample_value("remedy_web_requests_total", labels) or 0
    with TestClient(app) as client:
        posted = client.post(
            "/webhooks/gitlab", json=note_hook(note_id=777), headers={"X-Gitlab-Token": SECRET}
        )
        assert (posted.status_code, posted.json()["status"]) == (202, "queued")
        assert client.get("/webhooks/gitlab").status_code == 405
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.post("/nowhere", content=b"{}").status_code == 404
    assert REGISTRY.get_sample_value("remedy_web_requests_total", labels) == before + 1
    assert [t for t, _ in sent.sent] == ["remedy.mr_command"]
