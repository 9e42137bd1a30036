"""When a proposed fix counts as resolved: only on evidence from the new report.

A bot merge request whose change set is gone from the new plan is closed as resolved only when
the new report scanned every resource it fixes and each of its controls passed there. A
resource the report does not show is unknown (a partial scan, a scanner that lists failures
only): its merge request stays open. Each description's hidden marker lists the (control,
resource) pairs its change set fixes, so the decision needs nothing but the description and
the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from bot.lifecycle import _MARKER, fixes_of, marker_for
from bot.model import ChangeSet
from bot.sources.base import Report

Fix = tuple[str, str]
"""(control id, ``ResourceRef.key``)."""

__all__ = ["Fix", "change_set_marker", "fixes_of", "marker_fixes", "resolved", "resolved_by"]


def change_set_marker(change_set: ChangeSet) -> str:
    """The hidden marker of a change set's description, naming what it fixes."""
    return marker_for(change_set)


def marker_fixes(description: str) -> tuple[Fix, ...]:
    """The fixes a description's marker names; () for a marker without them (an older MR)."""
    found = _MARKER.findall(description or "")
    try:
        data = json.loads(found[-1]) if found else {}
    except json.JSONDecodeError:
        return ()
    raw = data.get("fixes") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        return ()
    return tuple(
        (item[0], item[1])
        for item in raw
        if isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)
    )


def resolved(fixes: Iterable[Fix], report: Report) -> bool:
    """True when ``report`` shows every fix as scanned and passed, and none as failing."""
    wanted = set(fixes)
    if not wanted:
        return False
    failing = {(f.control_id, f.resource.key) for f in report.findings}
    return wanted <= report.passed and not wanted & failing


def resolved_by(report: Report) -> Callable[[str], bool]:
    """The predicate the merge-request lifecycle asks, with an MR's description, before it
    closes the MR as resolved."""
    return lambda description: resolved(marker_fixes(description), report)
