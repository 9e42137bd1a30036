"""Admitting a verified web event: de-duplicate the delivery and enqueue its Celery task.

`RedisIntake` does both in one Redis round trip, atomically, from the event loop: a Lua script
``SET key NX EX ttl`` and, only when the key was new, ``LPUSH`` of the task message onto the
Celery queue (the events of a burst share one round trip, each its own script call). A delivery is therefore never recorded without its task being queued (or the
reverse), and a request costs no thread hop and no exchange lookup. The message is the one
Celery itself would publish: Celery builds the task protocol (``app.amqp.as_task_v2``) and
kombu serializes the body; this module only wraps it in the Redis transport's envelope, and
tests/test_intake.py checks that envelope against kombu's own and runs it in a real worker.

`LocalIntake` takes a de-duplication store and an enqueue function (tests, no Redis).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import redis
import redis.asyncio
from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.serialization import dumps as kombu_dumps
from kombu.utils.json import dumps as json_dumps
from starlette.concurrency import run_in_threadpool

Event = dict[str, Any] | str
"""The one JSON argument of a queued task: a webhook's event, or a project id (a run)."""

Enqueue = Callable[[str, Event], None]
"""Send one task by name with one JSON argument."""

DEDUPE_PREFIX = "remedy:webhook:"


class QueueUnavailable(Exception):
    """The queue (Redis) could not take the event; the caller answers 503 so GitLab retries."""


class Intake(Protocol):
    async def admit(self, task: str, event: Event, key: str, ttl: int) -> bool:
        """Queue ``task(event)`` unless ``key`` was admitted within ``ttl`` seconds (an empty
        key is never a duplicate). True when queued; raises `QueueUnavailable`."""
        ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- Redis

_ADMIT = """
if ARGV[1] ~= '' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
    return 0
  end
end
redis.call('LPUSH', KEYS[2], ARGV[3])
return 1
"""


SHOWN_FIELDS = ("project", "mr_iid", "note_id", "kind", "platform")
"""The fields of an event a worker's log shows (Celery's ``argsrepr``): never the note's text or
a chat ``response_url``, and no ``saferepr`` of the whole event on the request path."""


def args_repr(args: list[Any]) -> str:
    """What Celery logs as the task's arguments: `SHOWN_FIELDS` of each event."""
    shown = [{k: a[k] for k in SHOWN_FIELDS if k in a} if isinstance(a, dict) else a for a in args]
    return repr(shown)


def celery_message(
    app: Celery, task: str, args: list[Any], *, queue: str | None = None, origin: str | None = None
) -> tuple[str, bytes]:
    """The queue name and the Redis-transport message Celery would publish for ``task(*args)``.
    ``queue`` and ``origin`` (this process's node name) save a web process asking Celery for
    them on every event (`RedisIntake` resolves them once per task name)."""
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(
        task_id,
        task,
        args=args,
        kwargs={},
        origin=origin,
        argsrepr=args_repr(args),
        kwargsrepr="{}",
    )
    content_type, encoding, body = kombu_dumps(message.body, serializer="json")  # type: ignore[no-untyped-call]  # kombu is untyped
    if queue is None:
        queue = app.amqp.router.route({}, task, args, {})["queue"].name
    properties = {
        **message.properties,
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    envelope = {
        "body": base64.b64encode(body.encode(encoding)).decode("ascii"),
        "content-encoding": encoding,
        "content-type": content_type,
        "headers": message.headers,
        "properties": properties,
    }
    return queue, json_dumps(envelope).encode()  # type: ignore[no-untyped-call]  # kombu is untyped


_Admission = tuple[tuple[str, str], tuple[bytes, int, bytes], "asyncio.Future[bool]"]
"""One admission waiting to be sent: (keys, args) of `_ADMIT`, and its caller's future."""


class RedisIntake:
    """De-duplication and enqueue in one atomic Redis round trip (see the module docstring).

    Admissions that arrive while a round trip is under way are sent together in the next one,
    one pipeline on one connection (each event still its own atomic script call): when the
    web process falls behind (its cores busy with other work), a burst of requests costs one
    round trip, not one per request, nor one pooled connection per request in flight.
    """

    def __init__(self, redis_url: str, app: Celery) -> None:
        self.app = app
        self.client = redis.asyncio.Redis.from_url(
            redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        self._origin = anon_nodename()
        self._queues: dict[str, str] = {}
        self._waiting: list[_Admission] = []
        self._sender: asyncio.Task[None] | None = None

    def _queue(self, task: str) -> str:
        queue = self._queues.get(task)
        if queue is None:  # routes depend on the task's name only (`bot.tasks` routes none)
            queue = self._queues[task] = self.app.amqp.router.route({}, task)["queue"].name
        return queue

    async def admit(self, task: str, event: Event, key: str, ttl: int) -> bool:
        queue, message = celery_message(
            self.app, task, [event], queue=self._queue(task), origin=self._origin
        )
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        flag = b"1" if key else b""
        self._waiting.append(((DEDUPE_PREFIX + key, queue), (flag, ttl, message), answer))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return await answer

    async def _send(self) -> None:
        """Send what waits, one pipeline per round trip, until nothing does."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            pipe = self.client.pipeline(transaction=False)
            for keys, args, _ in batch:
                pipe.eval(_ADMIT, 2, *keys, *args)
            try:
                results: list[Any] = await pipe.execute(raise_on_error=False)
            except (redis.RedisError, OSError) as exc:
                results = [exc] * len(batch)
            except BaseException:  # cancelled (shut down): nobody is left without an answer
                for _, _, answer in batch:
                    answer.cancel()
                raise
            for (_, _, answer), result in zip(batch, results, strict=True):
                if answer.done():  # its request went away meanwhile
                    continue
                if isinstance(result, BaseException):
                    error = QueueUnavailable(type(result).__name__)
                    error.__cause__ = result
                    answer.set_exception(error)
                else:
                    answer.set_result(bool(result))

    async def aclose(self) -> None:
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
        await self.client.aclose()


# --------------------------------------------------------------------------- local


class DedupeStore(Protocol):
    def first_time(self, key: str, ttl: int) -> bool:
        """True the first time ``key`` is seen within ``ttl`` seconds."""
        ...


class RedisDedupe:
    """Delivery keys in Redis (``SET NX EX``), shared by every web process."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def first_time(self, key: str, ttl: int) -> bool:
        return bool(self.client.set(DEDUPE_PREFIX + key, b"1", nx=True, ex=ttl))


class MemoryDedupe:
    """Delivery keys in this process (tests, single-process deployments without Redis)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def first_time(self, key: str, ttl: int) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._seen) > 100_000:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            expires = self._seen.get(key)
            if expires is not None and expires > now:
                return False
            self._seen[key] = now + ttl
            return True


class LocalIntake:
    """A de-duplication store and a (blocking) enqueue function, run off the event loop."""

    def __init__(self, enqueue: Enqueue, dedupe: DedupeStore | None = None) -> None:
        self.enqueue = enqueue
        self.dedupe = dedupe or MemoryDedupe()

    def _admit(self, task: str, event: Event, key: str, ttl: int) -> bool:
        try:
            if key and not self.dedupe.first_time(key, ttl):
                return False
            self.enqueue(task, event)
        except (redis.RedisError, OSError, KombuOperationalError) as exc:
            raise QueueUnavailable(type(exc).__name__) from exc
        return True

    async def admit(self, task: str, event: Event, key: str, ttl: int) -> bool:
        return await run_in_threadpool(self._admit, task, event, key, ttl)

    async def aclose(self) -> None:
        return None
