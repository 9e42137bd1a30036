"""Project webhooks: GitLab-shaped event payloads POSTed in order from one background thread."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

import httpx

EVENT_HEADERS = {
    "merge_requests_events": "Merge Request Hook",
    "note_events": "Note Hook",
    "issues_events": "Issue Hook",
    "push_events": "Push Hook",
}


@dataclass
class Hook:
    id: int
    url: str
    token: str | None
    events: frozenset[str]


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery attempt: which event went where, and the answer (or the error)."""

    hook_id: int
    event: str
    payload: dict[str, Any]
    status: int | None
    error: str | None = None


class HookDispatcher:
    """Queues deliveries and sends them one by one, so a receiver sees events in order."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[Hook, str, dict[str, Any]] | None] = queue.Queue()
        self._timeout = timeout
        self._thread: threading.Thread | None = None

    def send(self, hook: Hook, event: str, payload: dict[str, Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gitlab-hooks", daemon=True)
            self._thread.start()
        self._queue.put((hook, event, payload))

    def flush(self) -> None:
        """Wait until every queued delivery was attempted."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=self._timeout + 1)
            self._thread = None

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout) as client:
            while True:
                item = self._queue.get()
                try:
                    if item is None:
                        return
                    hook, event, payload = item
                    headers = {"X-Gitlab-Event": EVENT_HEADERS[event]}
                    if hook.token:
                        headers["X-Gitlab-Token"] = hook.token
                    try:
                        answer = client.post(hook.url, json=payload, headers=headers)
                        self.deliveries.append(
                            Delivery(hook.id, event, payload, answer.status_code)
                        )
                    except httpx.HTTPError as exc:
                        self.deliveries.append(Delivery(hook.id, event, payload, None, repr(exc)))
                finally:
                    self._queue.task_done()
