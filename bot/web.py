"""The web process: GitLab webhooks and Slack/Mattermost slash commands (FastAPI, uvicorn).

Every handler authenticates, filters, enqueues and answers in milliseconds; the work (GitLab
calls, replies) happens in the Celery tasks of `bot.command_tasks`.

    POST /webhooks/gitlab     X-Gitlab-Token; 202 queued, 200 ignored (with the reason)
    POST /chatops/slack       X-Slack-Signature v0 over the raw body, 5-minute replay window
    POST /chatops/mattermost  Authorization: Token <slash command token>
    GET  /healthz, /metrics

Refusals: 401 bad or missing credentials (and replays), 400 malformed body, 413 body over the cap
(counted while it is read), 503 when the secret for an endpoint is not configured or the queue is
down. Each refusal is logged and writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal
from urllib.parse import parse_qsl

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, ValidationError

from bot import commands
from bot.commands import Actor, CommandError, Context
from bot.intake import (
    DedupeStore,
    Enqueue,
    Intake,
    LocalIntake,
    QueueUnavailable,
    RedisDedupe,
    RedisIntake,
)
from bot.observability import log_event
from bot.settings import Settings
from bot.web_settings import WebSettings

REQUESTS = Counter(
    "remedy_web_requests_total", "Web requests by endpoint and outcome", ["endpoint", "outcome"]
)
LATENCY = Histogram(
    "remedy_web_request_seconds",
    "Time to answer a web request",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)

IMMEDIATE = frozenset({"help", "explain"})
"""Chat commands answered in the request: they read only the built-in catalog."""


class Refused(Exception):
    """Ends a request with a status and a reason (logged, never echoing secrets)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --------------------------------------------------------------------------- de-duplication


def delivery_key(headers: Any, body: bytes) -> str:
    """``Idempotency-Key`` (GitLab 17.4+, the same on every retry of one delivery), else a hash
    of the body. Not ``X-Gitlab-Event-UUID``: every hook fired by one event shares it."""
    key = headers.get("idempotency-key", "").strip()
    if key and len(key) <= 200:
        return "idem:" + hashlib.sha256(key.encode()).hexdigest()
    return "body:" + hashlib.sha256(body).hexdigest()


# --------------------------------------------------------------------------- GitLab payloads


class _Edge(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class HookUser(_Edge):
    username: str
    id: int | None = None


class HookProject(_Edge):
    id: int
    path_with_namespace: str


class NoteAttributes(_Edge):
    id: int
    note: str
    noteable_type: str
    author_id: int
    action: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    system: bool = False


class HookMergeRequest(_Edge):
    iid: int
    source_branch: str


class NoteHook(_Edge):
    object_kind: Literal["note"]
    user: HookUser
    project: HookProject
    object_attributes: NoteAttributes
    merge_request: HookMergeRequest | None = None


class CommitAuthor(_Edge):
    name: str = ""
    email: str = ""


class LastCommit(_Edge):
    id: str = ""
    author: CommitAuthor = CommitAuthor()


class MergeRequestAttributes(_Edge):
    iid: int
    source_branch: str
    state: str
    action: str | None = None
    oldrev: str | None = None
    last_commit: LastCommit | None = None


class MergeRequestHook(_Edge):
    object_kind: Literal["merge_request"]
    user: HookUser
    project: HookProject
    object_attributes: MergeRequestAttributes


def _validate(model: type[BaseModel], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(400, f"malformed {payload.get('object_kind')} event: {where}") from None


# --------------------------------------------------------------------------- the app


def _default_intake(settings: Settings) -> Intake:
    from bot import tasks

    tasks.configure(settings)
    return RedisIntake(settings.redis_url, tasks.app)


def _celery_enqueue(settings: Settings) -> Enqueue:
    from bot import tasks

    tasks.configure(settings)

    def enqueue(name: str, event: dict[str, Any]) -> None:
        tasks.app.send_task(name, args=[event])

    return enqueue


def create_app(
    settings: Settings,
    enqueue: Enqueue | None = None,
    *,
    web: WebSettings | None = None,
    dedupe: DedupeStore | None = None,
    intake: Intake | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The FastAPI app. Events go to ``intake``: by default `RedisIntake` (one atomic Redis round
    trip); given ``enqueue`` and/or ``dedupe``, a `LocalIntake` over them (Redis and Celery's
    ``send_task`` fill in whichever is missing)."""
    web = web or WebSettings()
    if intake is None and enqueue is None and dedupe is None:
        intake = _default_intake(settings)
    elif intake is None:
        store = dedupe or RedisDedupe(
            redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        )
        intake = LocalIntake(enqueue or _celery_enqueue(settings), store)
    events: Intake = intake

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await events.aclose()

    app = FastAPI(
        title="kube-remedy", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )

    def done(endpoint: str, status: int, outcome: str, reason: str, **fields: Any) -> Response:
        REQUESTS.labels(endpoint=endpoint, outcome=outcome).inc()
        level = 30 if status >= 400 else 20
        log_event(
            "web", level, endpoint=endpoint, status=status, outcome=outcome, reason=reason, **fields
        )
        return JSONResponse({"status": outcome, "reason": reason}, status_code=status)

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Refused(400, "invalid Content-Length")
            if int(length) > web.max_body_bytes:
                raise Refused(413, f"body larger than {web.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > web.max_body_bytes:
                raise Refused(413, f"body larger than {web.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def queue(name: str, key: str, event: dict[str, Any]) -> bool:
        """Record the delivery and enqueue; False when it was delivered before."""
        try:
            return await events.admit(name, event, key, web.dedupe_ttl)
        except QueueUnavailable as exc:
            raise Refused(503, f"queue unavailable ({exc})") from None

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # -- GitLab -------------------------------------------------------------------------------

    # The hot endpoints are plain Starlette routes: they read the raw body themselves, so
    # FastAPI's dependency solving and response validation would only cost time.
    async def gitlab_webhook(request: Request) -> Response:
        started = time.perf_counter()
        try:
            status, outcome, reason, fields = await _gitlab(request)
        except Refused as exc:
            status, outcome, reason, fields = exc.status, "refused", exc.reason, {}
        LATENCY.labels(endpoint="gitlab").observe(time.perf_counter() - started)
        return done("gitlab", status, outcome, reason, **fields)

    async def _gitlab(request: Request) -> tuple[int, str, str, dict[str, Any]]:
        if settings.webhook_secret is None:
            raise Refused(503, "webhook secret is not configured (REMEDY_WEBHOOK_SECRET)")
        token = request.headers.get("x-gitlab-token")
        if token is None:
            raise Refused(401, "missing X-Gitlab-Token")
        expected = settings.webhook_secret.get_secret_value().encode()
        if not hmac.compare_digest(token.encode(), expected):
            raise Refused(401, "invalid X-Gitlab-Token")
        body = await read_body(request)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise Refused(400, "body is not a JSON object")
        kind = payload.get("object_kind")
        if kind == "note":
            decision = _note(payload)
        elif kind == "merge_request":
            decision = _merge_request(payload)
        else:
            header = request.headers.get("x-gitlab-event", "")
            shown = str(kind if kind is not None else header)[:60]
            return 200, "ignored", f"event type {shown!r} is not handled", {}
        if isinstance(decision, str):
            return 200, "ignored", decision, {}
        task, event = decision
        queued = await queue(task, delivery_key(request.headers, body), event)
        fields = {"project": event["project"], "mr": event["mr_iid"], "task": task}
        if not queued:
            return 200, "ignored", "duplicate delivery", fields
        return 202, "queued", task, fields

    def _configured(project: HookProject) -> bool:
        ids = {p.id for p in settings.projects}
        return project.path_with_namespace in ids or str(project.id) in ids

    def _project_key(project: HookProject) -> str:
        ids = {p.id for p in settings.projects}
        return (
            project.path_with_namespace if project.path_with_namespace in ids else str(project.id)
        )

    def _note(payload: dict[str, Any]) -> str | tuple[str, dict[str, Any]]:
        attrs = payload.get("object_attributes")
        kind = attrs.get("noteable_type") if isinstance(attrs, dict) else None
        if isinstance(kind, str) and kind != "MergeRequest":
            return f"note on {kind[:40]!r}, not on a merge request"
        hook: NoteHook = _validate(NoteHook, payload)
        note = hook.object_attributes
        if hook.user.username.lower() == settings.bot_username.lower():
            return "comment by the bot itself"
        if note.system:
            return "system note"
        if note.action is not None and note.action != "create":
            return f"note {note.action[:20]!r}, only new notes carry commands"
        if note.action is None and note.created_at != note.updated_at:
            return "edited note, only new notes carry commands"
        if hook.merge_request is None:
            raise Refused(400, "malformed note event: merge_request")
        if not hook.merge_request.source_branch.startswith(settings.branch_prefix):
            return "not a merge request of the bot"
        if not _configured(hook.project):
            return "project is not configured"
        if commands.find_mention(note.note, settings.bot_username) is None:
            return "no command addressed to the bot"
        return "remedy.mr_command", {
            "project": _project_key(hook.project),
            "mr_iid": hook.merge_request.iid,
            "note_id": note.id,
            "user_id": note.author_id,
            "username": hook.user.username,
            "note": note.note[:10_000],
        }

    def _merge_request(payload: dict[str, Any]) -> str | tuple[str, dict[str, Any]]:
        hook: MergeRequestHook = _validate(MergeRequestHook, payload)
        attrs = hook.object_attributes
        if not attrs.source_branch.startswith(settings.branch_prefix):
            return _human_merge_request(hook)
        if not _configured(hook.project):
            return "project is not configured"
        event = {"project": _project_key(hook.project), "mr_iid": attrs.iid}
        if attrs.action == "merge":
            return "remedy.mr_event", {**event, "kind": "merged"}
        if attrs.action == "close":
            return "closed without merge: the bot treats it as ignored"
        if attrs.action == "reopen":
            return "remedy.mr_event", {**event, "kind": "reopened"}
        if attrs.action == "update" and attrs.oldrev:
            if _is_bot(hook.user.username) or (
                attrs.last_commit is not None and _is_bot_author(attrs.last_commit.author)
            ):
                return "push by the bot"
            return "remedy.mr_event", {
                **event,
                "kind": "human-push",
                "username": hook.user.username,
            }
        return f"merge request action {str(attrs.action)[:20]!r} needs nothing"

    def _human_merge_request(hook: MergeRequestHook) -> str | tuple[str, dict[str, Any]]:
        """A person's MR: new commits go to the review task, which checks the repository's
        opt-in (``review_human_mrs``); everything else is not the bot's business."""
        attrs = hook.object_attributes
        if attrs.action not in ("open", "reopen", "update"):
            return "not a merge request of the bot"
        if attrs.action == "update" and not attrs.oldrev:
            return "merge request update without new commits needs no review"
        if attrs.state != "opened":
            return f"merge request is {attrs.state[:20]!r}"
        if not _configured(hook.project):
            return "project is not configured"
        return "remedy.review_mr", {"project": _project_key(hook.project), "mr_iid": attrs.iid}

    def _is_bot(username: str) -> bool:
        return username.lower() == settings.bot_username.lower()

    def _is_bot_author(author: CommitAuthor) -> bool:
        local = author.email.split("@", 1)[0]
        return _is_bot(author.name) or _is_bot(local)

    # -- chat ---------------------------------------------------------------------------------

    async def slack(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if settings.slack_signing_secret is None:
                raise Refused(503, "Slack signing secret is not configured")
            timestamp = request.headers.get("x-slack-request-timestamp")
            signature = request.headers.get("x-slack-signature")
            if not timestamp or not signature:
                raise Refused(401, "missing X-Slack-Request-Timestamp or X-Slack-Signature")
            if not timestamp.isdigit() or abs(clock() - int(timestamp)) > web.slack_max_age:
                raise Refused(401, "stale or invalid Slack timestamp (replayed request?)")
            body = await read_body(request)
            secret = settings.slack_signing_secret.get_secret_value().encode()
            if not hmac.compare_digest(
                signature.encode(), slack_signature(secret, timestamp, body)
            ):
                raise Refused(401, "invalid X-Slack-Signature")
            result = await _chat("slack", _form(body))
        except Refused as exc:
            result = done("slack", exc.status, "refused", exc.reason)
        LATENCY.labels(endpoint="slack").observe(time.perf_counter() - started)
        return result

    async def mattermost(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if settings.mattermost_token is None:
                raise Refused(503, "Mattermost command token is not configured")
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "token" or not token:
                raise Refused(401, "missing Authorization: Token header")
            expected = settings.mattermost_token.get_secret_value().encode()
            if not hmac.compare_digest(token.strip().encode(), expected):
                raise Refused(401, "invalid Mattermost token")
            form = _form(await read_body(request))
            if "token" in form and not hmac.compare_digest(form["token"].encode(), expected):
                raise Refused(401, "token field does not match the Authorization header")
            result = await _chat("mattermost", form)
        except Refused as exc:
            result = done("mattermost", exc.status, "refused", exc.reason)
        LATENCY.labels(endpoint="mattermost").observe(time.perf_counter() - started)
        return result

    async def _chat(platform: Literal["slack", "mattermost"], form: dict[str, str]) -> Response:
        for name in ("user_id", "channel_id", "response_url", "command"):
            if not form.get(name):
                raise Refused(400, f"form field {name!r} is missing")
        text = form.get("text", "")
        actor = Actor(platform, form["user_id"], form.get("user_name", ""), form["channel_id"])
        ctx = Context(settings, web, actor, "chat", gitlab=None, scheduler=_NoScheduler())
        try:
            invocation = commands.parse(text, "chat", settings)
        except CommandError as exc:
            return _ephemeral(platform, "invalid", str(exc), user=actor.user_id)
        refusal = commands.authorize(ctx, invocation)
        if refusal is not None:
            return _ephemeral(
                platform, "unauthorized", f"Refused: {refusal}.", user=actor.user_id, why=refusal
            )
        if invocation.command.name in IMMEDIATE:
            reply = commands.dispatch(text, ctx)
            return _ephemeral(platform, "answered", reply.text)
        from bot.command_tasks import allowed_response_url

        if not allowed_response_url(form["response_url"], web):
            raise Refused(400, "response_url is not an allowed chat server address")
        event = {
            "platform": platform,
            "user_id": form["user_id"],
            "user_name": form.get("user_name", ""),
            "channel_id": form["channel_id"],
            "text": text[:2000],
            "response_url": form["response_url"],
        }
        await queue("remedy.chat_command", "", event)
        name = invocation.command.name
        return _ephemeral(platform, "queued", f"Working on `{name}`; the result follows here.")

    app.add_route("/webhooks/gitlab", gitlab_webhook, methods=["POST"])
    app.add_route("/chatops/slack", slack, methods=["POST"])
    app.add_route("/chatops/mattermost", mattermost, methods=["POST"])

    def _ephemeral(platform: str, outcome: str, text: str, **fields: Any) -> Response:
        REQUESTS.labels(endpoint=platform, outcome=outcome).inc()
        level = 30 if outcome in ("invalid", "unauthorized") else 20
        log_event("web", level, endpoint=platform, status=200, outcome=outcome, **fields)
        return JSONResponse({"response_type": "ephemeral", "text": text})

    return app


class _NoScheduler:
    """The web process schedules through tasks only; immediate commands never schedule."""

    def run_project(self, project: str) -> None:
        raise CommandError("this command runs in a worker")


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> bytes:
    """Slack's v0 request signature: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    digest = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return b"v0=" + digest.hexdigest().encode()


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "body is not a valid form") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise Refused(400, f"form field {key[:40]!r} is repeated")
        form[key] = value
    return form


def serve(settings: Settings) -> None:
    """Run the web process (``remedy serve``) on ``settings.web_host:web_port``."""
    import uvicorn

    from bot.observability import configure_logging

    configure_logging()
    uvicorn.run(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        access_log=False,
        proxy_headers=False,
        timeout_keep_alive=5,
    )
