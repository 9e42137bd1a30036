"""Who the bot is on GitLab: its user id, never a name, label or e-mail a person can copy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_bot_user(user: Mapping[str, Any] | None, bot_user_id: int | None) -> bool:
    """Is this GitLab user object (``{"id": ..., "username": ...}``) the bot's own user?"""
    if not user or bot_user_id is None:
        return False
    try:
        return int(user.get("id") or 0) == bot_user_id
    except (TypeError, ValueError):
        return False


def is_bot_change(
    *,
    author: Mapping[str, Any] | None,
    branch: str,
    has_marker: bool,
    bot_user_id: int | None,
    branch_prefix: str,
) -> bool:
    """A merge request is the bot's when all three hold: its author is the bot's user id, its
    source branch has the bot's prefix and its description carries the bot's marker."""
    return has_marker and branch.startswith(branch_prefix) and is_bot_user(author, bot_user_id)
