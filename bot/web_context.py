"""What every web handler shares: the `WebContext`, its `Answer` and the `Refused` exception.

Handlers (`bot.webhooks`, `bot.chatops`) take a context, the request's headers and its body
and return an `Answer`; `bot.web` only reads bodies under the size cap, turns answers into
HTTP responses and counts and logs them. So each handler is tested without HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.identity import BotIdentity
from bot.intake import Event, Intake, QueueUnavailable
from bot.settings import Settings
from bot.web_settings import WebSettings


class Refused(Exception):
    """Ends a request with a status and a reason (logged, never echoing secrets)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    """A handler's answer: HTTP status, outcome (the metric label), the reason logged and shown,
    fields for the log line, and for chat the message (``body``) instead of the reason."""

    status: int
    outcome: str
    reason: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None

    @classmethod
    def refused(cls, exc: Refused) -> Answer:
        return cls(exc.status, "refused", exc.reason)

    @property
    def warning(self) -> bool:
        """Logged as a warning: a refusal, or a chat command that was invalid or not allowed."""
        return self.status >= 400 or self.outcome in ("invalid", "unauthorized")

    def json(self) -> Mapping[str, Any]:
        """The response body: the chat message, else ``{"status", "reason"}``."""
        if self.body is not None:
            return self.body
        return {"status": self.outcome, "reason": self.reason}


@dataclass
class WebContext:
    """Settings, limits, the intake, the bot's identity (its user id is filled in at start) and
    a clock: everything a handler reads."""

    settings: Settings
    web: WebSettings
    intake: Intake
    bot: BotIdentity
    clock: Callable[[], float] = time.time
    project_ids: frozenset[str] = field(init=False)
    """The configured projects' ids, computed once: asked on every event."""

    def __post_init__(self) -> None:
        self.project_ids = frozenset(p.id for p in self.settings.projects)

    async def admit(self, task: str, key: str, event: Event) -> bool:
        """Record the delivery and enqueue; False when it was delivered before; 503 when the
        queue is down (GitLab and the chat servers retry)."""
        try:
            return await self.intake.admit(task, event, key, self.web.dedupe_ttl)
        except QueueUnavailable as exc:
            raise Refused(503, f"queue unavailable ({exc})") from None
