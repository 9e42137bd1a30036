"""The web process: GitLab webhooks and Slack/Mattermost slash commands (FastAPI, uvicorn).

Every handler authenticates, filters, enqueues and answers in milliseconds; the work (GitLab
calls, replies) happens in the Celery tasks of `bot.command_tasks`.

    POST /webhooks/gitlab     X-Gitlab-Token; 202 queued, 200 ignored (with the reason)
    POST /chatops/slack       X-Slack-Signature v0 over the raw body, 5-minute replay window
    POST /chatops/mattermost  Authorization: Token <slash command token>
    GET  /healthz, /metrics

Refusals: 401 bad or missing credentials (and stale requests), 400 malformed body (JSON nested
deeper than ``max_json_depth`` included, checked before it is parsed), 413 body over the cap
(counted while it is read), 503 when the secret for an endpoint is not configured or the queue is
down. Each refusal is logged and writes nothing.

Replays act once: every event that queues work carries a de-duplication key naming what it is,
not how it was delivered (`note_key`, `merge_request_key`, `pipeline_key`, `slack_key`,
`mattermost_key`), kept for ``dedupe_ttl`` seconds, which is longer than any accepted request age.

Pipeline events (GitLab's "Pipeline Hook", from a project webhook with "Pipeline events" or from
``remedy notify-pipeline`` in the CI template) queue a run of the project when a pipeline of its
default branch has a finished scan job (the project's ``report.job``): once per pipeline.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from array import array
from collections.abc import AsyncIterator, Callable
from itertools import accumulate
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from bot import commands
from bot.commands import Actor, CommandError, Context
from bot.intake import (
    DedupeStore,
    Enqueue,
    Event,
    Intake,
    LocalIntake,
    QueueUnavailable,
    RedisDedupe,
    RedisIntake,
)
from bot.observability import log_event
from bot.settings import GitlabArtifactReport, Settings
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


# Keys name the event itself, never its delivery: a retried delivery, a new Idempotency-Key, a
# second hook on the same project or re-serialised JSON (one more space) all give the same key.


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]


def note_key(project_id: int, noteable_type: str, noteable_iid: int, note_id: int) -> str:
    """One comment: GitLab's (project, noteable, note id), whatever its body looks like."""
    return f"note:{project_id}:{_digest(noteable_type)[:8]}:{noteable_iid}:{note_id}"


def merge_request_key(
    project_id: int, iid: int, action: str | None, oldrev: str | None, head: str, updated_at: str
) -> str:
    """One merge request event: its action, the push it carries (old and new head) and GitLab's
    ``updated_at`` of the merge request at that moment."""
    return f"mr:{project_id}:{iid}:" + _digest(action, oldrev, head, updated_at)


def pipeline_key(project_id: int, pipeline_id: int) -> str:
    """One pipeline: GitLab sends a hook at every status change of the pipeline and the CI
    template sends one more; all of them run the project once."""
    return f"pipeline:{project_id}:{pipeline_id}"


def slack_key(timestamp: str, signature: str) -> str:
    """One Slack request: its verified signature covers the timestamp and the whole body."""
    return "slack:" + _digest(timestamp, signature)


def mattermost_key(form: dict[str, str], body: bytes) -> str:
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


# --------------------------------------------------------------------------- bounds


def json_too_deep(body: bytes, limit: int) -> bool:
    """Does the JSON text nest arrays/objects more than ``limit`` deep? Checked on the bytes
    before parsing, in one linear pass of C-speed steps: drop escapes and string literals, map
    each opening bracket to +1 and each closing one to -1, and take the highest running sum."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common, shallow payload: no need to look closer
    # Escaped backslashes go first, so that one before a closing quote does not hide it.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    steps = array("b", outside.translate(_STEPS, _NOT_BRACKETS))
    return max(accumulate(steps), default=0) > limit


_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


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


class LastCommit(_Edge):
    id: str = ""


class MergeRequestAttributes(_Edge):
    iid: int
    source_branch: str
    state: str
    action: str | None = None
    oldrev: str | None = None
    updated_at: str | None = None
    last_commit: LastCommit | None = None


class MergeRequestHook(_Edge):
    object_kind: Literal["merge_request"]
    user: HookUser
    project: HookProject
    object_attributes: MergeRequestAttributes


class PipelineProject(HookProject):
    default_branch: str | None = None


class PipelineAttributes(_Edge):
    id: int
    ref: str
    status: str
    tag: bool = False
    source: str | None = None


class PipelineBuild(_Edge):
    name: str
    status: str


class PipelineHook(_Edge):
    object_kind: Literal["pipeline"]
    project: PipelineProject
    object_attributes: PipelineAttributes
    builds: tuple[PipelineBuild, ...] = ()


FINISHED_BUILD = frozenset({"success", "failed"})
"""Build statuses after which the scan's artifact exists (a failed scan is one with findings)."""


def is_scan_job(name: str, job: str) -> bool:
    """Is ``name`` the scan job ``job``, alone or as one of its ``parallel`` instances
    (``kubescape 1/2``, ``kubescape: [prod]``)?"""
    return name == job or name.startswith((f"{job} ", f"{job}: "))


Decision: TypeAlias = str | tuple[str, Event, str]
"""The reason an event is ignored, or (task, its one JSON argument, de-duplication key)."""


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

    def enqueue(name: str, event: Event) -> None:
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
    bot = settings.bot

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal bot
        if bot.user_id is None and settings.gitlab_token is not None:
            bot = bot.with_user_id(await run_in_threadpool(_look_up_bot_id, settings))
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

    async def queue(name: str, key: str, event: Event) -> bool:
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
        if json_too_deep(body, web.max_json_depth):
            raise Refused(400, f"JSON nested deeper than {web.max_json_depth} levels")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "body is not JSON") from None
        except RecursionError:  # json_too_deep should have caught it; never a 500
            raise Refused(400, f"JSON nested deeper than {web.max_json_depth} levels") from None
        if not isinstance(payload, dict):
            raise Refused(400, "body is not a JSON object")
        kind = payload.get("object_kind")
        if kind == "note":
            decision = _note(payload)
        elif kind == "merge_request":
            decision = _merge_request(payload)
        elif kind == "pipeline":
            decision = _pipeline(payload)
        else:
            header = request.headers.get("x-gitlab-event", "")
            shown = str(kind if kind is not None else header)[:60]
            return 200, "ignored", f"event type {shown!r} is not handled", {}
        if isinstance(decision, str):
            return 200, "ignored", decision, {}
        task, event, key = decision
        queued = await queue(task, key, event)
        fields: dict[str, Any] = {"task": task}
        if isinstance(event, dict):
            fields.update(project=event["project"], mr=event["mr_iid"])
        else:  # a project run takes the project id alone
            fields["project"] = event
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

    def _note(payload: dict[str, Any]) -> Decision:
        attrs = payload.get("object_attributes")
        kind = attrs.get("noteable_type") if isinstance(attrs, dict) else None
        if isinstance(kind, str) and kind != "MergeRequest":
            return f"note on {kind[:40]!r}, not on a merge request"
        hook: NoteHook = _validate(NoteHook, payload)
        note = hook.object_attributes
        if bot.is_bot(note.author_id, hook.user.username):
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
        event = {
            "project": _project_key(hook.project),
            "mr_iid": hook.merge_request.iid,
            "note_id": note.id,
            "user_id": note.author_id,
            "username": hook.user.username,
            "note": note.note[:10_000],
        }
        key = note_key(hook.project.id, note.noteable_type, hook.merge_request.iid, note.id)
        return "remedy.mr_command", event, key

    def _mr_key(hook: MergeRequestHook) -> str:
        attrs = hook.object_attributes
        head = attrs.last_commit.id if attrs.last_commit is not None else ""
        return merge_request_key(
            hook.project.id, attrs.iid, attrs.action, attrs.oldrev, head, attrs.updated_at or ""
        )

    def _merge_request(payload: dict[str, Any]) -> Decision:
        hook: MergeRequestHook = _validate(MergeRequestHook, payload)
        attrs = hook.object_attributes
        if not attrs.source_branch.startswith(settings.branch_prefix):
            return _human_merge_request(hook)
        if not _configured(hook.project):
            return "project is not configured"
        event = {"project": _project_key(hook.project), "mr_iid": attrs.iid}
        if attrs.action == "merge":
            return "remedy.mr_event", {**event, "kind": "merged"}, _mr_key(hook)
        if attrs.action == "close":
            return "closed without merge: the bot treats it as ignored"
        if attrs.action == "reopen":
            return "remedy.mr_event", {**event, "kind": "reopened"}, _mr_key(hook)
        if attrs.action == "update" and attrs.oldrev:
            # The hook's user is the account that pushed; the commit's author name and e-mail
            # are whatever the pusher typed, so they never make a push the bot's.
            if bot.is_bot(hook.user.id, hook.user.username):
                return "push by the bot"
            human = {**event, "kind": "human-push", "username": hook.user.username}
            return "remedy.mr_event", human, _mr_key(hook)
        return f"merge request action {str(attrs.action)[:20]!r} needs nothing"

    def _human_merge_request(hook: MergeRequestHook) -> Decision:
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
        event = {"project": _project_key(hook.project), "mr_iid": attrs.iid}
        return "remedy.review_mr", event, _mr_key(hook)

    def _pipeline(payload: dict[str, Any]) -> Decision:
        """A pipeline of the default branch whose scan job finished: run the project now (the
        task the schedule and ``/remedy run`` queue), once per pipeline."""
        hook: PipelineHook = _validate(PipelineHook, payload)
        attrs = hook.object_attributes
        if not _configured(hook.project):
            return "project is not configured"
        project_id = _project_key(hook.project)
        report = settings.project(project_id).report
        job, branch = "kubescape", hook.project.default_branch
        if isinstance(report, GitlabArtifactReport):
            job, branch = report.job, report.ref or branch
        if attrs.tag:
            return "tag pipeline, not a scan of the default branch"
        if attrs.source == "merge_request_event":
            return "merge request pipeline, not a scan of the default branch"
        if branch is None:
            raise Refused(400, "malformed pipeline event: project.default_branch")
        if attrs.ref != branch:
            return f"pipeline of {attrs.ref[:60]!r}, not of the default branch {branch[:60]!r}"
        scans = [b for b in hook.builds if is_scan_job(b.name, job)]
        if not any(b.status in FINISHED_BUILD for b in scans):
            shown = scans[0].status[:20] if scans else "absent"
            return f"scan job {job[:60]!r} has not finished in this pipeline ({shown})"
        return "remedy.run_project", project_id, pipeline_key(hook.project.id, attrs.id)

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
            result = await _chat("slack", _form(body), slack_key(timestamp, signature))
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
            body = await read_body(request)
            form = _form(body)
            if "token" in form and not hmac.compare_digest(form["token"].encode(), expected):
                raise Refused(401, "token field does not match the Authorization header")
            trigger = mattermost_trigger_time(form.get("trigger_id", ""))
            if trigger is not None:
                user, sent_at = trigger
                if abs(clock() - sent_at) > web.mattermost_max_age:
                    raise Refused(401, "stale Mattermost trigger_id (replayed request?)")
                if user != form.get("user_id"):
                    raise Refused(401, "Mattermost trigger_id is not the user's")
            result = await _chat("mattermost", form, mattermost_key(form, body))
        except Refused as exc:
            result = done("mattermost", exc.status, "refused", exc.reason)
        LATENCY.labels(endpoint="mattermost").observe(time.perf_counter() - started)
        return result

    async def _chat(
        platform: Literal["slack", "mattermost"], form: dict[str, str], key: str
    ) -> Response:
        """Answer or queue one verified command; ``key`` names the request, so a replay of a
        command that acts is answered without acting again."""
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
        name = invocation.command.name
        if not await queue("remedy.chat_command", key, event):
            text = f"This `{name}` request was already received; it runs once."
            return _ephemeral(platform, "duplicate", text, user=actor.user_id)
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


MAX_FORM_FIELDS = 64
"""Slack and Mattermost send about a dozen fields; more is not a slash command."""


def _form(body: bytes) -> dict[str, str]:
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


def _look_up_bot_id(settings: Settings) -> int | None:
    """The bot's GitLab user id from its token, once at start; None (and a warning: the bot is
    then recognised by its GitLab username alone) when GitLab cannot be asked."""
    from bot.errors import RemedyError
    from bot.forge.gitlab import current_user_id

    assert settings.gitlab_token is not None
    try:
        return current_user_id(settings.gitlab_url, settings.gitlab_token.get_secret_value())
    except RemedyError as exc:
        log_event("bot-identity", 30, reason=f"cannot look up the bot's user id: {exc}")
        return None


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
