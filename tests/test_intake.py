"""The web intake: atomic de-duplication + enqueue, and messages identical in shape to Celery's."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from celery import Celery

from bot.intake import (
    DEDUPE_PREFIX,
    LocalIntake,
    QueueUnavailable,
    RedisIntake,
    args_repr,
    celery_message,
)
from tests.redis_server import RedisServer, free_port, redis_server_fixture  # noqa: F401 - fixture

EVENT = {"project": "platform/cd-config", "mr_iid": 7, "note": "@kube-remedy rebase"}
IDS = {"id", "root_id", "correlation_id", "delivery_tag", "reply_to", "origin"}


def shape(value: Any, key: str = "") -> Any:
    """A message with its per-message identifiers blanked, for comparison."""
    if key in IDS:
        return "<id>"
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def decoded(raw: bytes) -> dict[str, Any]:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


@pytest.fixture
def celery_app(redis_server: RedisServer) -> Celery:
    app = Celery("intake-test", broker=redis_server.url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    return app


def test_the_message_is_the_one_celery_publishes(
    redis_server: RedisServer, celery_app: Celery
) -> None:
    client = redis_server.client()
    client.flushdb()
    celery_app.send_task(
        "remedy.mr_command", args=[EVENT], argsrepr=args_repr([EVENT]), kwargsrepr="{}"
    )
    theirs = decoded(client.rpop("celery"))
    queue, raw = celery_message(celery_app, "remedy.mr_command", [EVENT])
    ours = decoded(raw)
    assert queue == "celery"
    # send_task leaves ignore_result unset (None) where as_task_v2 says False: same meaning.
    theirs["headers"]["ignore_result"] = bool(theirs["headers"]["ignore_result"])
    # send_task also copies its argsrepr/kwargsrepr options into the properties; the worker
    # reads them from the headers only.
    del theirs["properties"]["argsrepr"], theirs["properties"]["kwargsrepr"]
    assert shape(ours) == shape(theirs)
    assert ours["body"][0] == [EVENT]
    # what the worker logs of the event: its ids, never the note a person typed
    assert ours["headers"]["argsrepr"] == "[{'project': 'platform/cd-config', 'mr_iid': 7}]"
    assert ours["headers"]["id"] == ours["properties"]["correlation_id"]
    client.close()


def test_a_routed_task_goes_to_its_queue(celery_app: Celery) -> None:
    celery_app.conf.task_routes = {"remedy.review_mr": {"queue": "review"}}
    queue, raw = celery_message(celery_app, "remedy.review_mr", [EVENT])
    assert queue == "review"
    assert json.loads(raw)["properties"]["delivery_info"]["routing_key"] == "review"


def test_redis_intake_queues_once_per_key(redis_server: RedisServer, celery_app: Celery) -> None:
    client = redis_server.client()
    client.flushdb()

    async def scenario() -> list[bool]:
        intake = RedisIntake(redis_server.url, celery_app)
        try:
            return [
                await intake.admit("remedy.mr_command", EVENT, "idem:a", 30),
                await intake.admit("remedy.mr_command", EVENT, "idem:a", 30),
                await intake.admit("remedy.mr_command", EVENT, "idem:b", 30),
                # An empty key (a request with no identity of its own) is never a duplicate;
                # chat commands are keyed by the platform's request identity (test_replays).
                await intake.admit("remedy.chat_command", EVENT, "", 30),
                await intake.admit("remedy.chat_command", EVENT, "", 30),
            ]
        finally:
            await intake.aclose()

    assert asyncio.run(scenario()) == [True, False, True, True, True]
    assert client.llen("celery") == 4
    assert 0 < client.ttl(DEDUPE_PREFIX + "idem:a") <= 30
    assert sorted(client.keys(DEDUPE_PREFIX + "*")) == [
        b"remedy:webhook:idem:a",
        b"remedy:webhook:idem:b",
    ]
    client.close()


def test_concurrent_deliveries_of_one_event_queue_one_task(
    redis_server: RedisServer, celery_app: Celery
) -> None:
    client = redis_server.client()
    client.flushdb()

    async def scenario() -> list[bool]:
        intakes = [RedisIntake(redis_server.url, celery_app) for _ in range(4)]
        try:
            return await asyncio.gather(
                *(
                    intake.admit("remedy.mr_command", EVENT, "idem:same", 30)
                    for intake in intakes
                    for _ in range(10)
                )
            )
        finally:
            for intake in intakes:
                await intake.aclose()

    assert sum(asyncio.run(scenario())) == 1
    assert client.llen("celery") == 1
    client.close()


def test_a_burst_shares_one_connection_and_each_event_keeps_its_answer(
    redis_server: RedisServer, celery_app: Celery
) -> None:
    client = redis_server.client()
    client.flushdb()
    connections = client.info("stats")["total_connections_received"]

    async def scenario() -> list[bool]:
        intake = RedisIntake(redis_server.url, celery_app)
        try:
            return await asyncio.gather(
                *(intake.admit("remedy.mr_command", EVENT, f"idem:{n % 25}", 30) for n in range(50))
            )
        finally:
            await intake.aclose()

    assert asyncio.run(scenario()) == [True] * 25 + [False] * 25
    assert client.llen("celery") == 25
    # one pipelined connection for the burst, not one pooled connection per event in flight
    assert client.info("stats")["total_connections_received"] - connections == 1
    client.close()


def test_redis_down_is_queue_unavailable_and_records_nothing(celery_app: Celery) -> None:
    async def scenario() -> None:
        intake = RedisIntake(f"redis://127.0.0.1:{free_port()}/0", celery_app)
        try:
            await intake.admit("remedy.mr_command", EVENT, "idem:x", 30)
        finally:
            await intake.aclose()

    with pytest.raises(QueueUnavailable, match="ConnectionError"):
        asyncio.run(scenario())


def test_local_intake_dedupes_and_enqueues() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    intake = LocalIntake(lambda name, event: sent.append((name, event)))

    async def scenario() -> list[bool]:
        return [
            await intake.admit("remedy.mr_event", EVENT, "k", 30),
            await intake.admit("remedy.mr_event", EVENT, "k", 30),
        ]

    assert asyncio.run(scenario()) == [True, False]
    assert sent == [("remedy.mr_event", EVENT)]
