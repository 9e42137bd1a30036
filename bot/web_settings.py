"""Settings of the web process and the command tasks (environment prefix ``REMEDY_``).

Kept apart from `bot.settings.Settings` (which forbids unknown keys) so the chat-ops knobs can
evolve without touching the worker's settings. Secrets (webhook secret, Slack signing secret,
Mattermost token) stay in `bot.settings.Settings`.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPER = 30
"""GitLab's access level for Developer: the least a member needs to command the bot."""


class WebSettings(BaseSettings):
    """Limits of the web endpoints and who may use the chat commands for which projects."""

    model_config = SettingsConfigDict(env_prefix="REMEDY_", extra="ignore", frozen=True)

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    """Requests with a larger body are refused with 413 while they are read."""
    max_json_depth: int = Field(default=64, ge=8, le=1000)
    """Webhook JSON nested deeper is refused with 400 before it is parsed (GitLab's go ~5 deep)."""
    dedupe_ttl: int = Field(default=24 * 3600, gt=0)
    """Seconds an event's key is remembered, so a replay or retry within it acts once (GitLab
    retries within hours); longer than the accepted age of a chat request."""
    member_cache_ttl: float = Field(default=60.0, ge=0)
    """Seconds a project member's access level is cached by the command tasks."""
    min_access_level: int = Field(default=DEVELOPER, ge=10, le=50)
    slack_max_age: int = Field(default=300, gt=0)
    """Slack requests with an older timestamp are replays (Slack's own guidance: 5 minutes)."""
    mattermost_max_age: int = Field(default=300, gt=0)
    """Mattermost commands whose ``trigger_id`` carries an older time are replays."""
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

    def allows_response_url(self, url: str) -> bool:
        """May chat results be posted to ``url``? (one of `response_url_prefixes`)"""
        return url.startswith(self.response_url_prefixes)

    @model_validator(mode="after")
    def _replays_outlive_the_window(self) -> WebSettings:
        window = max(self.slack_max_age, self.mattermost_max_age)
        if self.dedupe_ttl < window:
            raise ValueError(
                f"dedupe_ttl ({self.dedupe_ttl}s) must be at least the chat request age limit "
                f"({window}s), or a replay after the key expired would act again"
            )
        return self
