"""Replays act once: captured, correctly signed chat commands and re-delivered GitLab events.

Each attack goes through the real app with its default intake (`RedisIntake`: the Lua
``SET NX EX`` + ``LPUSH`` round trip) against a real Redis; "acted" means a task message
reached the Celery queue.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from celery import Celery

from bot.chatops import slack_signature
from bot.intake import RedisIntake
from bot.settings import Settings
from bot.web import create_app
from bot.web_settings import WebSettings
from tests.redis_server import RedisServer, redis_server_fixture  # noqa: F401 - fixture
from tests.test_web import MM_TOKEN, NOW, PROJECT, SECRET, SLACK_SECRET, mr_hook, note_hook
from tests.test_web import slack_form as slack_form

MM_USER = "k1x4aqdjy3813c84m771eoc9xo"


class Web:
    """The app on one event loop (the Redis client belongs to it) and the Celery queue."""

    def __init__(self, portal: BlockingPortal, app: Any, redis_server: RedisServer) -> None:
        self.portal = portal
        self.app = app
        self.redis = redis_server.client()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.portal.call(self._post, url, body, headers)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(url, content=body, headers=headers)

    def post_many(self, url: str, body: bytes, headers: dict[str, str], n: int) -> list[int]:
        """``n`` identical requests at once: the replays race the original."""

        async def burst() -> list[int]:
            statuses: list[int] = []

            async def one() -> None:
                statuses.append((await self._post(url, body, headers)).status_code)

            async with anyio.create_task_group() as group:
                for _ in range(n):
                    group.start_soon(one)
            return statuses

        run: Callable[[], Awaitable[list[int]]] = burst
        return self.portal.call(run)

    def queued(self) -> list[tuple[str, dict[str, Any]]]:
        """(task name, event) of every task message in the Celery queue, oldest first."""
        found = []
        for raw in reversed(self.redis.lrange("celery", 0, -1)):
            message = json.loads(raw)
            args = json.loads(base64.b64decode(message["body"]))[0]
            found.append((message["headers"]["task"], args[0]))
        return found


@pytest.fixture
def web(redis_server: RedisServer) -> Iterator[Web]:
    settings = Settings(
        redis_url=redis_server.url,
        projects=[{"id": PROJECT}],
        branch_prefix="remedy/",
        webhook_secret=SECRET,
        slack_signing_secret=SLACK_SECRET,
        mattermost_token=MM_TOKEN,
    )
    limits = WebSettings(
        chat_users={"U2147483697": (PROJECT,), MM_USER: ("*",)},
        response_url_prefixes=("https://hooks.slack.com/", "https://chat.example.com/"),
    )
    celery = Celery("replay-test", broker=redis_server.url, set_as_current=False)
    celery.conf.update(task_serializer="json", accept_content=["json"])
    redis_server.client().flushdb()
    with start_blocking_portal() as portal:
        intake = portal.call(_intake, redis_server.url, celery)
        app = create_app(settings, web=limits, intake=intake, clock=lambda: NOW)
        harness = Web(portal, app, redis_server)
        try:
            yield harness
        finally:
            portal.call(intake.aclose)
            harness.redis.close()


async def _intake(url: str, celery: Celery) -> RedisIntake:
    return RedisIntake(url, celery)


# --------------------------------------------------------------------------- Slack


def slack_headers(body: bytes, ts: int = NOW) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": slack_signature(SLACK_SECRET.encode(), str(ts), body).decode(),
    }


def test_replayed_slack_command_acts_once(web: Web) -> None:
    body = slack_form("run platform/cd-config C-0016")
    headers = slack_headers(body)
    answers = [web.post("/chatops/slack", body, headers).json() for _ in range(5)]
    assert answers[0]["text"] == "Working on `run`; the result follows here."
    assert {a["text"] for a in answers[1:]} == {
        "This `run` request was already received; it runs once."
    }
    assert [name for name, _ in web.queued()] == ["remedy.chat_command"]


def test_slack_replays_racing_the_original_act_once(web: Web) -> None:
    body = slack_form("run platform/cd-config")
    assert web.post_many("/chatops/slack", body, slack_headers(body), 8) == [200] * 8
    assert len(web.queued()) == 1


def test_new_signed_slack_command_with_a_new_timestamp_acts_again(web: Web) -> None:
    body = slack_form("run platform/cd-config")
    web.post("/chatops/slack", body, slack_headers(body, NOW - 2))
    web.post("/chatops/slack", body, slack_headers(body, NOW))
    assert [event["text"] for _, event in web.queued()] == ["run platform/cd-config"] * 2


def test_slack_replay_outside_the_window_is_refused(web: Web) -> None:
    body = slack_form("run platform/cd-config")
    response = web.post("/chatops/slack", body, slack_headers(body, NOW - 301))
    assert response.status_code == 401
    assert response.json()["reason"] == "stale or invalid Slack timestamp (replayed request?)"
    assert web.queued() == []


# --------------------------------------------------------------------------- Mattermost


def trigger_id(
    user: str = MM_USER, at: float = NOW, client: str = "4md3yr7cjbd1pcrsk46j9zm1oc"
) -> str:
    """Mattermost's shape: base64 of client id, user id, milliseconds and a signature."""
    raw = f"{client}:{user}:{int(at * 1000)}:MEUCIHRuakveFgDaM7zPDh1eDVwY+cFmyRaLVCNxITKdgq="
    return base64.b64encode(raw.encode()).decode()


def mattermost_form(
    text: str, trigger: str | None, hook: str = "zozc1xwxybdedeyz8djwjpngny"
) -> bytes:
    fields = {
        "channel_id": "i3bb9xfyqt8rtbyshmyhgsj16c",
        "channel_name": "town-square",
        "command": "/remedy",
        "response_url": f"https://chat.example.com/hooks/commands/{hook}",
        "team_domain": "example",
        "team_id": "tsb8crrn5tgqtedpkt81b4tcya",
        "text": text,
        "token": MM_TOKEN,
        "user_id": MM_USER,
        "user_name": "tester",
    }
    if trigger is not None:
        fields["trigger_id"] = trigger
    return urlencode(fields).encode()


MM_HEADERS = {
    "Authorization": f"Token {MM_TOKEN}",
    "Content-Type": "application/x-www-form-urlencoded",
}


def test_replayed_mattermost_command_acts_once(web: Web) -> None:
    body = mattermost_form("run platform/cd-config", trigger_id())
    answers = [web.post("/chatops/mattermost", body, MM_HEADERS).json() for _ in range(5)]
    assert "already received" not in answers[0]["text"]
    assert all("already received" in a["text"] for a in answers[1:])
    assert [name for name, _ in web.queued()] == ["remedy.chat_command"]


def test_new_mattermost_command_acts_again(web: Web) -> None:
    first = mattermost_form("run platform/cd-config", trigger_id(at=NOW - 3))
    second = mattermost_form("run platform/cd-config", trigger_id(at=NOW), hook="k6qpq3y8aa")
    web.post("/chatops/mattermost", first, MM_HEADERS)
    web.post("/chatops/mattermost", second, MM_HEADERS)
    assert len(web.queued()) == 2


def test_mattermost_replay_without_trigger_id_acts_once(web: Web) -> None:
    body = mattermost_form("run platform/cd-config", None)
    for _ in range(3):
        assert web.post("/chatops/mattermost", body, MM_HEADERS).status_code == 200
    assert len(web.queued()) == 1


@pytest.mark.parametrize(
    ("trigger", "reason"),
    [
        (trigger_id(at=NOW - 301), "stale Mattermost trigger_id (replayed request?)"),
        (trigger_id(user="someone-else"), "Mattermost trigger_id is not the user's"),
    ],
)
def test_mattermost_stale_or_foreign_trigger_is_refused(
    web: Web, trigger: str, reason: str
) -> None:
    body = mattermost_form("run platform/cd-config", trigger)
    response = web.post("/chatops/mattermost", body, MM_HEADERS)
    assert (response.status_code, response.json()["reason"]) == (401, reason)
    assert web.queued() == []


# --------------------------------------------------------------------------- GitLab


def gitlab_headers(event: str = "Note Hook", key: str | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Token": SECRET,
        "X-Gitlab-Event": event,
    }
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def test_note_redelivered_with_a_new_idempotency_key_acts_once(web: Web) -> None:
    body = json.dumps(note_hook()).encode()
    for n in range(4):
        web.post("/webhooks/gitlab", body, gitlab_headers(key=f"attempt-{n}"))
    assert [name for name, _ in web.queued()] == ["remedy.mr_command"]


def test_note_redelivered_with_trailing_whitespace_acts_once(web: Web) -> None:
    web.post("/webhooks/gitlab", json.dumps(note_hook()).encode(), gitlab_headers())
    padded = json.dumps(note_hook()).encode() + b" "
    again = web.post("/webhooks/gitlab", padded, gitlab_headers())
    edited = json.dumps(note_hook("@kube-remedy rebase ")).encode()
    third = web.post("/webhooks/gitlab", edited, gitlab_headers())
    assert again.json()["reason"] == third.json()["reason"] == "duplicate delivery"
    assert len(web.queued()) == 1


def test_two_notes_with_equal_bodies_both_act(web: Web) -> None:
    for note_id in (1244, 1245):
        body = json.dumps(note_hook(note_id=note_id)).encode()
        assert web.post("/webhooks/gitlab", body, gitlab_headers()).status_code == 202
    assert [event["note_id"] for _, event in web.queued()] == [1244, 1245]


def test_merge_request_event_redelivered_acts_once_and_a_new_push_acts(web: Web) -> None:
    push = mr_hook("update", oldrev="2d4c4e0d0cbb0b8e4cc2d1c4f1f7f0f4f3b1a9c8")
    for n in range(3):
        body = json.dumps(push).encode() + b" " * n
        web.post("/webhooks/gitlab", body, gitlab_headers("Merge Request Hook", key=f"k{n}"))
    later = mr_hook("update", oldrev="da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
    later["object_attributes"]["last_commit"]["id"] = "0b4bc9a49b562e85de7cc9e834518ea6828729b9"
    later["object_attributes"]["updated_at"] = "2026-11-22 23:20:41 UTC"
    web.post("/webhooks/gitlab", json.dumps(later).encode(), gitlab_headers("Merge Request Hook"))
    assert [event["kind"] for _, event in web.queued()] == ["human-push", "human-push"]


def test_dedupe_keys_outlive_the_replay_window() -> None:
    with pytest.raises(ValueError, match="dedupe_ttl"):
        WebSettings(dedupe_ttl=60, slack_max_age=300)
