"""Who the bot is: the one function every "is this the bot?" decision goes through.

The bot is a GitLab account. GitLab vouches for an account's numeric id and its username (unique,
case-insensitively) in webhook ``user`` objects and API ``author`` objects, so those identify the
bot. A commit's author name and e-mail are free text anyone can set (``git -c user.name=...``),
so they never make a push, a note or a merge request the bot's.

When ``bot_user_id`` is configured (or was looked up from the token once at start), an account
is the bot only when its id is that id; the username is compared only where the caller has no id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BotIdentity:
    """The bot's GitLab account: its username and, when known, its numeric user id."""

    username: str
    user_id: int | None = None

    def is_bot(self, user_id: int | None, username: str | None) -> bool:
        """Is the GitLab account (``user_id`` and/or ``username``, as GitLab reports them) the
        bot's? The id decides when both sides have one; otherwise the exact username."""
        if self.user_id is not None and user_id is not None:
            return user_id == self.user_id
        if username is None:
            return False
        # GitLab usernames are unique ignoring case, so the comparison ignores case too.
        return username.casefold() == self.username.casefold()

    def is_bot_user(self, user: Mapping[str, Any] | None) -> bool:
        """Is this GitLab user object (an API ``author``, a state event's ``user``:
        ``{"id": ..., "username": ...}``) the bot's account?"""
        if not user:
            return False
        raw = user.get("id")
        try:
            user_id = int(raw) if raw is not None and not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            user_id = None
        username = user.get("username")
        return self.is_bot(user_id, username if isinstance(username, str) else None)

    def with_user_id(self, user_id: int | None) -> BotIdentity:
        """The same identity with its numeric id filled in (a configured id is kept)."""
        if self.user_id is not None or user_id is None:
            return self
        return BotIdentity(self.username, user_id)
