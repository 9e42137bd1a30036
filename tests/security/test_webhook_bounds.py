"""Over-deep and over-large bodies on every web endpoint: 400 or 413 with one line, fast.

The attack from the issue: 200,000 nested ``[`` to ``/webhooks/gitlab`` with a valid token gave
HTTP 500 (a RecursionError in ``json.loads``). Every answer here must be a refusal with a
one-line reason within a bounded time, never a 500, and must queue nothing.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.intake import MemoryDedupe
from bot.settings import Settings
from bot.web import create_app
from bot.web_settings import WebSettings
from bot.webhooks import json_too_deep
from tests.test_web import (
    MM_TOKEN,
    NOW,
    PROJECT,
    SECRET,
    SLACK_SECRET,
    Recorder,
    TestClient,
    mattermost_form,
    note_hook,
    post_hook,
    post_slack,
    slack_form,
)

LIMITS = WebSettings(
    chat_users={"U2147483697": (PROJECT,), "mm-user-1": ("*",)},
    response_url_prefixes=("https://hooks.slack.com/", "https://chat.example.com/"),
)
"""The shipped defaults (1 MiB bodies, depth 64) with the test's chat users."""

DEEP = "JSON nested deeper than 64 levels"


@pytest.fixture
def sent() -> Recorder:
    return Recorder()


@pytest.fixture
def client(sent: Recorder) -> Iterator[TestClient]:
    settings = Settings(
        projects=[{"id": PROJECT}],
        branch_prefix="remedy/",
        webhook_secret=SECRET,
        slack_signing_secret=SLACK_SECRET,
        mattermost_token=MM_TOKEN,
    )
    app = create_app(settings, sent, web=LIMITS, dedupe=MemoryDedupe(), clock=lambda: NOW)
    with TestClient(app) as test_client:
        yield test_client


def refused(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status
    assert response.json() == {"status": "refused", "reason": reason}
    assert "\n" not in response.text


def in_note(value: Any) -> bytes:
    """A valid command note carrying ``value`` (raw JSON text if bytes) in a field the bot
    ignores."""
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    text = json.dumps(note_hook()).encode()
    assert text.count(b'"st_diff": null') == 1
    return text.replace(b'"st_diff": null', b'"st_diff": ' + raw)


def nested(depth: int) -> bytes:
    """JSON text of arrays and objects in turn, ``depth`` levels deep."""
    opening = b"".join(b"[" if n % 2 else b'{"k": ' for n in range(depth))
    closing = b"".join(b"]" if n % 2 else b"}" for n in reversed(range(depth)))
    return opening + b'"leaf"' + closing


# --------------------------------------------------------------------------- GitLab


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 200_000, id="200k-open-brackets"),
        pytest.param(b"[" * 150_000 + b"]" * 150_000, id="150k-balanced"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="100k-objects"),
        pytest.param(in_note(nested(65)), id="valid-note-65-deep"),
        pytest.param(in_note(nested(5_000)), id="valid-note-5000-deep"),
    ],
)
def test_deep_json_to_the_gitlab_webhook_is_400_fast(
    client: TestClient, sent: Recorder, body: bytes
) -> None:
    started = time.perf_counter()
    response = post_hook(client, None, raw=body)
    assert time.perf_counter() - started < 2.0
    refused(response, 400, DEEP)
    assert sent.sent == []


def test_depth_within_the_limit_is_processed(client: TestClient, sent: Recorder) -> None:
    assert post_hook(client, None, raw=in_note(nested(58))).status_code == 202
    assert len(sent.sent) == 1


def test_brackets_inside_strings_do_not_count(client: TestClient, sent: Recorder) -> None:
    tricky = '\\"[[[' + "[" * 5_000 + '\\\\"' + "{" * 5_000 + '"'
    assert post_hook(client, None, raw=in_note(tricky)).status_code == 202
    assert len(sent.sent) == 1


def test_huge_gitlab_body_is_413_before_it_is_parsed(client: TestClient, sent: Recorder) -> None:
    body = b"[" * (LIMITS.max_body_bytes + 1)
    started = time.perf_counter()
    response = post_hook(client, None, raw=body)
    assert time.perf_counter() - started < 2.0
    refused(response, 413, f"body larger than {LIMITS.max_body_bytes} bytes")
    assert sent.sent == []


def test_worst_case_depth_check_is_linear_and_bounded() -> None:
    # A full body of nesting just under the limit, over and over: the check's costliest input.
    body = (b"[" * 63 + b"]" * 63) * (LIMITS.max_body_bytes // 126)
    started = time.perf_counter()
    assert not json_too_deep(body, 64)
    assert time.perf_counter() - started < 1.0
    escapes = b'"' + b'\\"' * (LIMITS.max_body_bytes // 2 - 1)
    assert not json_too_deep(escapes, 64)


def test_depth_check_agrees_with_the_parser() -> None:
    """Random JSON with strings full of brackets, quotes and backslashes: the byte-level check
    says "too deep" exactly when the parsed value nests deeper than the limit."""
    rng = random.Random(12)

    def value(depth: int) -> Any:
        if depth == 0 or rng.random() < 0.1:
            return "".join(rng.choice('[]{}"\\ab') for _ in range(rng.randrange(6)))
        if rng.random() < 0.5:
            return [value(depth - 1) for _ in range(rng.randrange(1, 3))]
        return {"[k\\": value(depth - 1), "}": 1}

    def depth_of(item: Any) -> int:
        if isinstance(item, list):
            return 1 + max((depth_of(i) for i in item), default=0)
        if isinstance(item, dict):
            return 1 + max((depth_of(i) for i in item.values()), default=0)
        return 0

    for _ in range(300):
        data = value(rng.randrange(1, 14))
        body = json.dumps(data).encode()
        assert json_too_deep(body, 8) == (depth_of(data) > 8), body


# --------------------------------------------------------------------------- chat


def test_huge_slack_body_is_413(client: TestClient, sent: Recorder) -> None:
    body = slack_form("run platform/cd-config", padding="x" * LIMITS.max_body_bytes)
    refused(post_slack(client, body), 413, f"body larger than {LIMITS.max_body_bytes} bytes")
    assert sent.sent == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 200_000, id="200k-open-brackets"),
        pytest.param(b"&".join(b"f%d=1" % n for n in range(10_000)), id="10k-fields"),
    ],
)
def test_deep_or_wide_slack_body_is_400(client: TestClient, sent: Recorder, body: bytes) -> None:
    started = time.perf_counter()
    response = post_slack(client, body)
    assert time.perf_counter() - started < 2.0
    refused(response, 400, "body is not a valid form")
    assert sent.sent == []


MM_HEADERS = {
    "Authorization": f"Token {MM_TOKEN}",
    "Content-Type": "application/x-www-form-urlencoded",
}


def test_huge_mattermost_body_is_413(client: TestClient, sent: Recorder) -> None:
    body = mattermost_form("x" * LIMITS.max_body_bytes)
    response = client.post("/chatops/mattermost", content=body, headers=MM_HEADERS)
    refused(response, 413, f"body larger than {LIMITS.max_body_bytes} bytes")
    assert sent.sent == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 200_000, id="200k-open-brackets"),
        pytest.param(b"&".join(b"f%d=1" % n for n in range(10_000)), id="10k-fields"),
    ],
)
def test_deep_or_wide_mattermost_body_is_400(
    client: TestClient, sent: Recorder, body: bytes
) -> None:
    response = client.post("/chatops/mattermost", content=body, headers=MM_HEADERS)
    refused(response, 400, "body is not a valid form")
    assert sent.sent == []
