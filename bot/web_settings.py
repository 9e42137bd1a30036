"""Settings of the web process and the command tasks (environment prefix ``REMEDY_``).

Kept apart from `bot.settings.Settings` (which forbids unknown keys) so the chat-ops knobs can
evolve without touching the worker's settings. Secrets (webhook secret, Slack signing secret,
Mattermost token) stay in `bot.settings.Settings`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPER = 30
"""GitLab's access level for Developer: the least a member needs to command the bot."""


class WebSettings(BaseSettings):
    """Limits of the web endpoints and who may use the chat commands for which projects."""

    model_config = SettingsConfigDict(env_prefix="REMEDY_", extra="ignore", frozen=True)

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    """Requests with a larger body are refused with 413 while they are read."""
    dedupe_ttl: int = Field(default=24 * 3600, gt=0)
    """Seconds a webhook delivery key is remembered (GitLab retries within hours)."""
    member_cache_ttl: float = Field(default=60.0, ge=0)
    """Seconds a project member's access level is cached by the command tasks."""
    min_access_level: int = Field(default=DEVELOPER, ge=10, le=50)
    slack_max_age: int = Field(default=300, gt=0)
    """Slack requests with an older timestamp are replays (Slack's own guidance: 5 minutes)."""
    chat_users: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Chat user id -> projects that user may command (``*`` for every configured project)."""
    chat_channels: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Channel id -> projects commands may name there; when empty, any channel is accepted."""
    response_url_prefixes: tuple[str, ...] = (
        "https://hooks.slack.com/",
        "https://hooks.slack-gov.com/",
    )
    """Where chat results may be posted: a forged ``response_url`` must not make the bot call
    an arbitrary address (add the Mattermost server's URL here)."""
