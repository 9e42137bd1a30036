"""The bot is its GitLab account, never a name someone can type.

The attack from the issue: ``web._is_bot_author`` took a commit author's name or e-mail local
part ``kube-remedy`` for the bot, so anyone could push to the bot's branch and have the push
pass as the bot's (the merge request is then not put on hold, and the bot goes on treating
the branch as its own). Here each forgery reaches the real web app and is treated as a person's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from bot.identity import BotIdentity
from bot.intake import MemoryDedupe
from bot.settings import Settings
from bot.web import create_app
from tests.gitlab_emulator import GitLabEmulator
from tests.test_web import PROJECT, SECRET, Recorder, TestClient, mr_hook, note_hook, post_hook
from tests.test_web import web as web

BOT_ID = 42
PUSH = "2d4c4e0d0cbb0b8e4cc2d1c4f1f7f0f4f3b1a9c8"


def app_for(web: Any, sent: Recorder, **identity: Any) -> TestClient:
    settings = Settings(
        projects=[{"id": PROJECT}], branch_prefix="remedy/", webhook_secret=SECRET, **identity
    )
    return TestClient(create_app(settings, sent, web=web, dedupe=MemoryDedupe()))


def push(user: dict[str, Any] | None = None, **commit: str) -> dict[str, Any]:
    """A push to the bot's merge request branch, by ``user``, of a commit by ``commit``."""
    payload = mr_hook("update", oldrev=PUSH, **commit)
    if user is not None:
        payload["user"] = user
    return payload


def person(username: str, uid: int, name: str = "") -> dict[str, Any]:
    return {"id": uid, "username": username, "name": name or username, "avatar_url": None}


def outcome(client: TestClient, payload: dict[str, Any], event: str) -> str:
    response = post_hook(client, payload, event=event)
    body = response.json()
    return str(body["reason"]) if body["status"] == "ignored" else "queued"


FORGED_PUSHES: dict[str, Callable[[], dict[str, Any]]] = {
    "commit author name": lambda: push(author_name="kube-remedy"),
    "commit e-mail local part": lambda: push(author_email="kube-remedy@evil.example"),
    "commit name and bot-like e-mail": lambda: push(
        author_name="kube-remedy", author_email="kube-remedy@users.noreply.kube-remedy"
    ),
    "display name of the pusher": lambda: push(person("mallory", 66, name="kube-remedy")),
}


@pytest.mark.parametrize("forged", FORGED_PUSHES.values(), ids=FORGED_PUSHES.keys())
def test_a_push_that_only_claims_to_be_the_bot_is_a_persons(
    web: Any, forged: Callable[[], dict[str, Any]]
) -> None:
    sent = Recorder()
    client = app_for(web, sent)
    assert outcome(client, forged(), "Merge Request Hook") == "queued"
    assert [event["kind"] for _, event in sent.sent] == ["human-push"]


def test_with_the_bot_id_known_its_old_username_is_no_longer_the_bot(web: Any) -> None:
    """Someone who took over the username the bot had: the id decides, not the name."""
    sent = Recorder()
    client = app_for(web, sent, bot_user_id=BOT_ID)
    squatter = person("kube-remedy", 666)
    assert outcome(client, push(squatter), "Merge Request Hook") == "queued"
    assert outcome(client, push(person("renamed-bot", BOT_ID)), "Merge Request Hook") == (
        "push by the bot"
    )
    assert [event["username"] for _, event in sent.sent] == ["kube-remedy"]


def test_the_bots_own_push_is_recognised_by_its_account(web: Any) -> None:
    sent = Recorder()
    client = app_for(web, sent)
    bot_push = push(person("kube-remedy", 3), author_name="Kube Remedy")
    assert outcome(client, bot_push, "Merge Request Hook") == "push by the bot"
    assert sent.sent == []


def test_a_note_is_the_bots_only_by_its_author_id_when_the_id_is_known(web: Any) -> None:
    sent = Recorder()
    client = app_for(web, sent, bot_user_id=BOT_ID)
    by_bot = note_hook(username="renamed-bot", note_id=1)
    by_bot["object_attributes"]["author_id"] = BOT_ID
    squatter = note_hook(username="kube-remedy", note_id=2)
    assert outcome(client, by_bot, "Note Hook") == "comment by the bot itself"
    assert outcome(client, squatter, "Note Hook") == "queued"
    assert [event["note_id"] for _, event in sent.sent] == [2]


def test_bot_identity_compares_ids_first_then_exact_usernames() -> None:
    known = BotIdentity("kube-remedy", BOT_ID)
    assert known.is_bot(BOT_ID, "anything")
    assert not known.is_bot(7, "kube-remedy")
    assert known.is_bot(None, "Kube-Remedy")  # GitLab usernames ignore case
    unknown = BotIdentity("kube-remedy")
    assert unknown.is_bot(7, "kube-remedy")
    for near in ("kube-remedy2", "kube-remedy@example.com", "kube", "", None):
        assert not unknown.is_bot(7, near)
    assert unknown.with_user_id(BOT_ID) == known
    assert known.with_user_id(5) == known


def lifespan_outcome(settings: Settings, payload: dict[str, Any]) -> str:
    """Start the app (its lifespan looks the bot up), deliver one note, stop it."""
    sent = Recorder()
    app = create_app(settings, sent, dedupe=MemoryDedupe())

    async def scenario() -> str:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(
                    "/webhooks/gitlab",
                    content=json.dumps(payload).encode(),
                    headers={"X-Gitlab-Token": SECRET, "Content-Type": "application/json"},
                )
        return str(response.json()["reason"])

    return anyio.run(scenario)


def test_the_web_process_looks_the_bot_id_up_at_start(
    gitlab_emulator: GitLabEmulator,
) -> None:
    settings = Settings(
        projects=[{"id": PROJECT}],
        branch_prefix="remedy/",
        webhook_secret=SECRET,
        gitlab_url=gitlab_emulator.url,
        gitlab_token=gitlab_emulator.token,
    )
    by_bot = note_hook(username="renamed-bot")
    by_bot["object_attributes"]["author_id"] = gitlab_emulator.bot_user_id
    assert lifespan_outcome(settings, by_bot) == "comment by the bot itself"
    squatter = note_hook(username="kube-remedy")
    squatter["object_attributes"]["author_id"] = gitlab_emulator.bot_user_id + 1000
    assert lifespan_outcome(settings, squatter) == "remedy.mr_command"


def test_without_gitlab_at_start_the_bot_is_its_username(caplog: Any) -> None:
    settings = Settings(
        projects=[{"id": PROJECT}],
        branch_prefix="remedy/",
        webhook_secret=SECRET,
        gitlab_url="http://127.0.0.1:9",
        gitlab_token="unused",
    )
    assert lifespan_outcome(settings, note_hook(username="kube-remedy")) == (
        "comment by the bot itself"
    )
    assert any("cannot look up the bot's user id" in str(r.__dict__) for r in caplog.records)
