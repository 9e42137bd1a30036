"""The web process: GitLab webhooks and Slack/Mattermost slash commands (FastAPI, uvicorn).

Thin wiring only: each endpoint reads its body under the size cap and hands the headers and
body to its handler (`bot.webhooks`, `bot.chatops`: authenticate, filter, enqueue, answer, all
testable without HTTP); the work (GitLab calls, replies) happens in the Celery tasks of
`bot.command_tasks`.

    POST /webhooks/gitlab     X-Gitlab-Token; 202 queued, 200 ignored (with the reason)
    POST /chatops/slack       X-Slack-Signature v0 over the raw body, 5-minute replay window
    POST /chatops/mattermost  Authorization: Token <slash command token>
    GET  /healthz, /metrics

413 when a body is over ``max_body_bytes`` (announced, or counted while it is read). Every
answer is counted and logged with its outcome, off the request's latency: the log line is
written after the response is sent, through `bot.observability`'s queued handler in ``serve``.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from bot import chatops, webhooks
from bot.intake import DedupeStore, Enqueue, Event, Intake, LocalIntake, RedisDedupe, RedisIntake
from bot.observability import log_event
from bot.settings import Settings
from bot.web_context import Answer, Refused, WebContext
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

Handler = Callable[
    [WebContext, Mapping[str, str], Callable[[], Awaitable[bytes]]], Awaitable[Answer]
]
"""An endpoint's handler: (context, the request's headers, a reader of its body) -> `Answer`."""


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


def _intake(
    settings: Settings, enqueue: Enqueue | None, dedupe: DedupeStore | None, intake: Intake | None
) -> Intake:
    if intake is not None:
        return intake
    if enqueue is None and dedupe is None:
        return _default_intake(settings)
    store = dedupe or RedisDedupe(
        redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    )
    return LocalIntake(enqueue or _celery_enqueue(settings), store)


def body_reader(request: Request, limit: int) -> Callable[[], Awaitable[bytes]]:
    """Reads the request's body, refusing (413) one announced or counted over ``limit``."""

    async def read() -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Refused(400, "invalid Content-Length")
            if int(length) > limit:
                raise Refused(413, f"body larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    return read


class _Metrics:
    """The request counter's and latency histogram's children, resolved once per label set
    (``labels()`` takes a lock and builds a key on every call)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], Any] = {}
        self._latency = {e: LATENCY.labels(endpoint=e) for e in ("gitlab", "slack", "mattermost")}

    def record(self, endpoint: str, outcome: str, seconds: float) -> None:
        child = self._counts.get((endpoint, outcome))
        if child is None:
            child = self._counts[(endpoint, outcome)] = REQUESTS.labels(endpoint, outcome)
        child.inc()
        self._latency[endpoint].observe(seconds)


async def _log_answer(endpoint: str, answer: Answer) -> None:
    fields = {"reason": answer.reason} if answer.reason else {}
    log_event(
        "web",
        30 if answer.warning else 20,
        endpoint=endpoint,
        status=answer.status,
        outcome=answer.outcome,
        **fields,
        **answer.fields,
    )


class _App(FastAPI):
    """FastAPI, with the hot POST endpoints served straight from ASGI: per request, FastAPI's
    middleware stack (error pages, exception handlers, exit stacks, telemetry) cost more than
    the handler itself. Other paths and methods go through FastAPI as usual (the hot routes are
    registered there too, so e.g. a GET on them is answered 405 alike)."""

    hot: dict[str, Callable[[Request], Awaitable[Response]]]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.hot.get(scope["path"])
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


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
    ctx = WebContext(settings, web, _intake(settings, enqueue, dedupe, intake), settings.bot, clock)
    metrics = _Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if ctx.bot.user_id is None and settings.gitlab_token is not None:
            ctx.bot = ctx.bot.with_user_id(await run_in_threadpool(_look_up_bot_id, settings))
        yield
        await ctx.intake.aclose()

    app = _App(
        title="kube-remedy", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics_page() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The hot endpoints are plain Starlette routes: they read the raw body themselves, so
    # FastAPI's dependency solving and response validation would only cost time.
    def endpoint(name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            started = time.perf_counter()
            result = await handler(ctx, request.headers, body_reader(request, web.max_body_bytes))
            metrics.record(name, result.outcome, time.perf_counter() - started)
            return JSONResponse(
                result.json(),
                status_code=result.status,
                background=BackgroundTask(_log_answer, name, result),
            )

        return answer

    app.hot = {
        "/webhooks/gitlab": endpoint("gitlab", webhooks.handle),
        "/chatops/slack": endpoint("slack", chatops.slack),
        "/chatops/mattermost": endpoint("mattermost", chatops.mattermost),
    }
    for path, route in app.hot.items():
        app.add_route(path, route, methods=["POST"])
    return app


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
    from bot.observability import configure_logging

    configure_logging(queued=True)
    run_app(create_app(settings), settings.web_host, settings.web_port)


def run_app(app: FastAPI, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until it is stopped, the heap settled first (`settle_heap`)."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, proxy_headers=False, timeout_keep_alive=5
    )
    config.load()  # imports the protocol modules now, so that they settle with the rest
    settle_heap()
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise SystemExit(3)  # as ``uvicorn.run`` does when the server cannot start


def settle_heap() -> None:
    """Put everything allocated so far (modules, the app, its settings: over 100,000 objects)
    out of the garbage collector's reach, once the web process is ready to serve.

    A full collection walks every tracked object: measured on a loaded 2-core machine, one took
    150-370 ms, and every request in flight waited for it. A request leaves next to no cyclic
    garbage, so after this the collections that still run walk only what was allocated since.
    """
    gc.collect()
    gc.freeze()
