"""Diff notes: discussions anchored on a line of a merge request's diff (``position``).

GitLab (``POST /projects/:id/merge_requests/:iid/discussions``) takes ``position[position_type]
=text`` with ``base_sha``, ``start_sha``, ``head_sha``, ``new_path``, ``old_path`` and the line:
``new_line`` alone for an added line, ``old_line`` alone for a removed one, both for an unchanged
line shown in the diff. A line that is not in the diff between ``base_sha`` and ``head_sha`` is
refused with GitLab's own 400 ("line_code can't be blank"), so a client that anchors a comment
outside the diff fails here as it would on GitLab.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .git import GitRepo

_HUNK = re.compile(r"^@@ -(?P<old>\d+)(?:,\d+)? \+(?P<new>\d+)(?:,\d+)? @@")
_SHAS = ("base_sha", "start_sha", "head_sha")
LINE_CODE_ERROR = (
    '400 Bad request - Note {:line_code=>["can\'t be blank", "must be a valid line code"]}'
)


class PositionError(Exception):
    """A position GitLab would refuse; ``message`` is GitLab's answer."""


def position_from(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``position`` of a request: a JSON object, or form fields ``position[key]``."""
    nested = params.get("position")
    if isinstance(nested, Mapping):
        return dict(nested)
    flat = {
        key[len("position[") : -1]: value
        for key, value in params.items()
        if key.startswith("position[") and key.endswith("]")
    }
    return flat or None


def _line(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


def diff_lines(patch: str) -> set[tuple[int | None, int | None]]:
    """Every (old_line, new_line) a unified diff shows: (None, n) added, (o, None) removed,
    (o, n) unchanged context."""
    shown: set[tuple[int | None, int | None]] = set()
    old = new = 0
    in_hunk = False
    for text in patch.splitlines():
        hunk = _HUNK.match(text)
        if hunk:
            old, new, in_hunk = int(hunk.group("old")), int(hunk.group("new")), True
            continue
        if not in_hunk or text.startswith("\\"):
            continue
        if text.startswith("+"):
            shown.add((None, new))
            new += 1
        elif text.startswith("-"):
            shown.add((old, None))
            old += 1
        else:
            shown.add((old, new))
            old += 1
            new += 1
    return shown


def check_position(repo: GitRepo, position: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of a valid text position; `PositionError` for one GitLab refuses."""
    kind = position.get("position_type")
    if kind != "text":
        raise PositionError(f"400 Bad request - position_type {kind!r} is not supported")
    missing = [k for k in (*_SHAS, "new_path") if not position.get(k)]
    if missing:
        raise PositionError(f"400 Bad request - position[{missing[0]}] is missing")
    for key in _SHAS:
        if repo.commit(str(position[key])) is None:
            raise PositionError(LINE_CODE_ERROR)
    new_path = str(position["new_path"])
    old_path = str(position.get("old_path") or new_path)
    old_line, new_line = _line(position.get("old_line")), _line(position.get("new_line"))
    if old_line is None and new_line is None:
        raise PositionError(LINE_CODE_ERROR)
    diffs = repo.diff(str(position["base_sha"]), str(position["head_sha"]))
    patch = next(
        (str(d["diff"]) for d in diffs if d["new_path"] == new_path and d["old_path"] == old_path),
        None,
    )
    if patch is None or (old_line, new_line) not in diff_lines(patch):
        raise PositionError(LINE_CODE_ERROR)
    return {
        "base_sha": str(position["base_sha"]),
        "start_sha": str(position["start_sha"]),
        "head_sha": str(position["head_sha"]),
        "old_path": old_path,
        "new_path": new_path,
        "position_type": "text",
        "old_line": old_line,
        "new_line": new_line,
        "line_range": position.get("line_range"),
    }
