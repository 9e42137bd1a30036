"""Slack and Mattermost slash commands: verify, parse, authorize, answer or enqueue.

`slack` and `mattermost` answer one request from its headers and body, without HTTP
(`bot.web` wires them to ``POST /chatops/slack`` and ``POST /chatops/mattermost``):

    Slack       X-Slack-Signature v0 over the raw body, 5-minute replay window
    Mattermost  Authorization: Token <slash command token>; a ``trigger_id`` older than the
                window, or of another user, is a replay

401 for bad or missing credentials and stale requests, 400 for a malformed form, 503 when the
secret is not configured or the queue is down. A verified command is answered ephemerally:
``help`` and ``explain`` at once (they read only the built-in catalog), every other command is
queued for `bot.command_tasks` once per request (`slack_key`, `mattermost_key`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from bot import commands
from bot.commands import Actor, CommandError, Context
from bot.web_context import Answer, Refused, WebContext

IMMEDIATE = frozenset({"help", "explain"})
"""Chat commands answered in the request: they read only the built-in catalog."""

MAX_FORM_FIELDS = 64
"""Slack and Mattermost send about a dozen fields; more is not a slash command."""

Platform = Literal["slack", "mattermost"]


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]


def slack_key(timestamp: str, signature: str) -> str:
    """One Slack request: its verified signature covers the timestamp and the whole body."""
    return "slack:" + _digest(timestamp, signature)


def mattermost_key(form: Mapping[str, str], body: bytes) -> str:
    """One Mattermost command: its ``trigger_id`` (new for every command typed), else the body
    (whose ``response_url`` is also new for every command)."""
    trigger = form.get("trigger_id", "")
    if trigger:
        return "mattermost:trigger:" + _digest(trigger)
    return "mattermost:body:" + hashlib.sha256(body).hexdigest()[:40]


def mattermost_trigger_time(trigger_id: str) -> tuple[str, float] | None:
    """(user id, seconds since the epoch) from a Mattermost ``trigger_id``: base64 of
    ``client id:user id:milliseconds:signature``; None when it has another shape."""
    if not trigger_id or len(trigger_id) > 1024:
        return None
    try:
        parts = base64.b64decode(trigger_id, validate=True).decode("ascii").split(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2]) / 1000


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> bytes:
    """Slack's v0 request signature: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    digest = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return b"v0=" + digest.hexdigest().encode()


def parse_form(body: bytes) -> dict[str, str]:
    """The URL-encoded form of a slash command; `Refused` (400) when malformed or repeated."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "body is not a valid form") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise Refused(400, f"form field {key[:40]!r} is repeated")
        form[key] = value
    return form


# --------------------------------------------------------------------------- the handlers


async def slack(
    ctx: WebContext, headers: Mapping[str, str], read_body: Callable[[], Awaitable[bytes]]
) -> Answer:
    """Verify a Slack request (configured secret, fresh timestamp, signature over the raw
    body), then answer or queue its command."""
    try:
        secret = ctx.settings.slack_signing_secret
        if secret is None:
            raise Refused(503, "Slack signing secret is not configured")
        timestamp = headers.get("x-slack-request-timestamp")
        signature = headers.get("x-slack-signature")
        if not timestamp or not signature:
            raise Refused(401, "missing X-Slack-Request-Timestamp or X-Slack-Signature")
        if not timestamp.isdigit() or abs(ctx.clock() - int(timestamp)) > ctx.web.slack_max_age:
            raise Refused(401, "stale or invalid Slack timestamp (replayed request?)")
        body = await read_body()
        expected = slack_signature(secret.get_secret_value().encode(), timestamp, body)
        if not hmac.compare_digest(signature.encode(), expected):
            raise Refused(401, "invalid X-Slack-Signature")
        return await command(ctx, "slack", parse_form(body), slack_key(timestamp, signature))
    except Refused as exc:
        return Answer.refused(exc)


async def mattermost(
    ctx: WebContext, headers: Mapping[str, str], read_body: Callable[[], Awaitable[bytes]]
) -> Answer:
    """Verify a Mattermost request (its token in the header and, when sent, in the form; a
    fresh ``trigger_id`` of the same user), then answer or queue its command."""
    try:
        secret = ctx.settings.mattermost_token
        if secret is None:
            raise Refused(503, "Mattermost command token is not configured")
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "token" or not token:
            raise Refused(401, "missing Authorization: Token header")
        expected = secret.get_secret_value().encode()
        if not hmac.compare_digest(token.strip().encode(), expected):
            raise Refused(401, "invalid Mattermost token")
        body = await read_body()
        form = parse_form(body)
        if "token" in form and not hmac.compare_digest(form["token"].encode(), expected):
            raise Refused(401, "token field does not match the Authorization header")
        trigger = mattermost_trigger_time(form.get("trigger_id", ""))
        if trigger is not None:
            user, sent_at = trigger
            if abs(ctx.clock() - sent_at) > ctx.web.mattermost_max_age:
                raise Refused(401, "stale Mattermost trigger_id (replayed request?)")
            if user != form.get("user_id"):
                raise Refused(401, "Mattermost trigger_id is not the user's")
        return await command(ctx, "mattermost", form, mattermost_key(form, body))
    except Refused as exc:
        return Answer.refused(exc)


def ephemeral(outcome: str, text: str, **fields: Any) -> Answer:
    """A 200 answer only the user sees (the chat servers' ``response_type: ephemeral``)."""
    return Answer(200, outcome, fields=fields, body={"response_type": "ephemeral", "text": text})


async def command(ctx: WebContext, platform: Platform, form: Mapping[str, str], key: str) -> Answer:
    """Answer or queue one verified command; ``key`` names the request, so a replay of a
    command that acts is answered without acting again."""
    for name in ("user_id", "channel_id", "response_url", "command"):
        if not form.get(name):
            raise Refused(400, f"form field {name!r} is missing")
    text = form.get("text", "")
    actor = Actor(platform, form["user_id"], form.get("user_name", ""), form["channel_id"])
    context = Context(ctx.settings, ctx.web, actor, "chat", gitlab=None, scheduler=_NoScheduler())
    try:
        invocation = commands.parse(text, "chat", ctx.settings)
    except CommandError as exc:
        return ephemeral("invalid", str(exc), user=actor.user_id)
    refusal = commands.authorize(context, invocation)
    if refusal is not None:
        return ephemeral("unauthorized", f"Refused: {refusal}.", user=actor.user_id, why=refusal)
    name = invocation.command.name
    if name in IMMEDIATE:
        return ephemeral("answered", commands.dispatch(text, context).text)
    if not ctx.web.allows_response_url(form["response_url"]):
        raise Refused(400, "response_url is not an allowed chat server address")
    event = {
        "platform": platform,
        "user_id": form["user_id"],
        "user_name": form.get("user_name", ""),
        "channel_id": form["channel_id"],
        "text": text[:2000],
        "response_url": form["response_url"],
    }
    if not await ctx.admit("remedy.chat_command", key, event):
        again = f"This `{name}` request was already received; it runs once."
        return ephemeral("duplicate", again, user=actor.user_id)
    return ephemeral("queued", f"Working on `{name}`; the result follows here.")


class _NoScheduler:
    """The web process schedules through tasks only; immediate commands never schedule."""

    def run_project(self, project: str) -> None:
        raise CommandError("this command runs in a worker")
