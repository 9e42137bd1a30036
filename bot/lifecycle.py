"""The merge-request lifecycle over any `Forge`: GitLab and local mode behave alike.

GitLab is the source of truth, as with the best dependency bots: each bot MR carries a hidden
marker ``<!-- kube-remedy:{"key": ..., "hash": ...} -->`` naming its change set and the hash of
the findings and file contents it fixes. One listing of the bot's MRs per run decides:

- new change set -> one commit on a fresh branch + one MR (unless a limit holds it back);
- open MR, same hash -> left alone: zero write requests (rebased only when it conflicts);
- open MR, new hash -> recommitted from the default branch and described anew, unless the
  branch carries someone else's commit: then it is left alone and the MR says so, once;
- MR closed without merging, same hash -> ignored (acknowledged once, like Renovate) until the
  findings change, when a new MR is proposed;
- open bot MR whose change set is gone -> closed with a comment (the findings are resolved).

Held-back change sets (limits, schedule window) are listed in the result, never lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.forge.base import ChangeRequest, Forge
from bot.model import ChangeSet

IGNORED_LABEL = "kube-remedy::ignored"
HOLD_LABEL = "kube-remedy-hold"
"""Set when a human pushed to the bot's branch (or by a reviewer): the bot stops rewriting it."""
IGNORE_CONTROL_PREFIX = "kube-remedy-ignore:"
"""``kube-remedy-ignore:C-0017`` on an MR: its next update leaves that control out."""
_MANAGED_LABEL = re.compile(r"^(C-\d{4}|severity::.*)$")
_MARKER = re.compile(r"<!-- kube-remedy:(\{[^<>]*\}) -->")
_KEY = re.compile(r"^[a-z0-9][a-z0-9/._-]{0,200}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def marker(key: str, findings_hash: str, fixes: Sequence[tuple[str, str]] = ()) -> str:
    """The hidden line that ties an MR description to its change set (and, with ``fixes``,
    names the (control, resource) pairs it fixes: `bot.resolution` reads them)."""
    data: dict[str, object] = {"key": key, "hash": findings_hash}
    if fixes:
        data["fixes"] = [list(fix) for fix in fixes]
    text = json.dumps(data, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return "<!-- kube-remedy:" + text + " -->"


def parse_marker(description: str) -> tuple[str, str] | None:
    """(key, hash) from a description, or None when it carries no valid marker of ours."""
    found = _MARKER.findall(description or "")
    if not found:
        return None
    try:
        data = json.loads(found[-1])
    except json.JSONDecodeError:
        return None
    key, digest = data.get("key"), data.get("hash")
    if not isinstance(key, str) or not isinstance(digest, str) or not _KEY.match(key):
        return None
    return key, digest


def in_window(windows: Sequence[str], now: datetime) -> bool:
    """Is ``now`` (UTC) inside one of the windows ('Mon-Fri 08:00-18:00', '* 00:00-24:00')?
    No windows means any time."""
    if not windows:
        return True
    for window in windows:
        days, _, hours = window.strip().partition(" ")
        start, _, end = hours.partition("-")
        if days != "*":
            first, _, last = days.lower().partition("-")
            i, j = _DAYS.index(first[:3]), _DAYS.index((last or first)[:3])
            allowed = {_DAYS[(i + k) % 7] for k in range((j - i) % 7 + 1)}
            if _DAYS[now.weekday()] not in allowed:
                continue
        minute = now.hour * 60 + now.minute
        h1, m1 = (int(x) for x in start.split(":"))
        h2, m2 = (int(x) for x in end.split(":"))
        if h1 * 60 + m1 <= minute < h2 * 60 + m2:
            return True
    return False


@dataclass(frozen=True)
class SyncSettings:
    branch_prefix: str = "remedy/"
    max_open: int = 10
    max_new_per_hour: int = 5
    schedule: tuple[str, ...] = ()
    labels: tuple[str, ...] = ("security", "kube-remedy")


@dataclass(frozen=True)
class SyncDecision:
    """What happened to one change set or one existing bot MR, and why."""

    action: str
    """created | updated | unchanged | rebased | closed | ignored | held-back | foreign-commits"""
    key: str
    branch: str
    reason: str
    change: ChangeRequest | None = None


@dataclass(frozen=True)
class SyncResult:
    decisions: tuple[SyncDecision, ...] = ()

    def by_action(self, action: str) -> tuple[SyncDecision, ...]:
        return tuple(d for d in self.decisions if d.action == action)

    @property
    def held_back(self) -> tuple[SyncDecision, ...]:
        return self.by_action("held-back")


def _created_at(change: ChangeRequest) -> datetime | None:
    raw = change.extra.get("created_at") if change.extra else None
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class _Run:
    forge: Forge
    settings: SyncSettings
    describe: Callable[[ChangeSet], str]
    labels: Callable[[ChangeSet], Sequence[str]]
    reviewers: Callable[[ChangeSet], Sequence[str]]
    now: datetime
    decisions: list[SyncDecision] = field(default_factory=list)

    def decide(
        self,
        action: str,
        cs_key: str,
        branch: str,
        reason: str,
        change: ChangeRequest | None = None,
    ) -> None:
        self.decisions.append(SyncDecision(action, cs_key, branch, reason, change))

    def commit(self, cs: ChangeSet, branch: str, default: str) -> None:
        files = {c.path: c.after for c in cs.files}
        message = f"{cs.title}\n\nFixes {', '.join(cs.controls)}. Generated by kube-remedy."
        self.forge.commit_files(branch, files, message, start_branch=default)


def sync_changes(
    forge: Forge,
    change_sets: Sequence[ChangeSet],
    *,
    describe: Callable[[ChangeSet], str],
    labels: Callable[[ChangeSet], Sequence[str]] | None = None,
    reviewers: Callable[[ChangeSet], Sequence[str]] | None = None,
    settings: SyncSettings | None = None,
    now: datetime | None = None,
    close_missing: bool = True,
    requested: frozenset[str] = frozenset(),
    resolved: Callable[[str], bool] | None = None,
) -> SyncResult:
    """Make the bot's merge requests match ``change_sets`` (see the module docstring).

    ``resolved`` (given an MR description) says whether the new report proves an MR's findings
    fixed; an open MR whose change set is gone but is not proven fixed stays open.

    ``requested`` keys (ticked on the dashboard) are proposed despite the limits and despite an
    earlier close: a person asked for them.
    """
    settings = settings or SyncSettings()
    run = _Run(
        forge,
        settings,
        describe,
        labels or (lambda cs: list(settings.labels)),
        reviewers or (lambda cs: []),
        now or datetime.now(UTC),
    )
    existing: dict[str, list[ChangeRequest]] = {}
    for change in forge.find_changes():
        parsed = parse_marker(change.description)
        if parsed and change.author_is_bot and change.branch.startswith(settings.branch_prefix):
            existing.setdefault(parsed[0], []).append(change)
    default = forge.default_branch()
    open_count = sum(1 for cs in existing.values() for c in cs if c.state == "opened")
    hour_ago = run.now - timedelta(hours=1)
    new_this_hour = sum(
        1
        for cs in existing.values()
        for c in cs
        if (t := _created_at(c)) is not None and t > hour_ago
    )
    window_open = in_window(settings.schedule, run.now)

    # workloads with Falco alerts first, then higher risk last: with limits, the safest
    # fixes are proposed first
    for cs in sorted(change_sets, key=lambda c: ("falco-alerts" not in c.meta, c.risk, c.key)):
        branch = settings.branch_prefix + cs.key
        mine = existing.get(cs.key, [])
        opened = [c for c in mine if c.state == "opened"]
        if opened:
            _update(run, cs, opened[0], branch, default)
            continue
        closed = [
            c
            for c in mine
            if c.state == "closed" and parse_marker(c.description) == (cs.key, cs.findings_hash)
        ]
        if closed and cs.key not in requested:
            _acknowledge_ignored(run, cs, closed[-1], branch)
            continue
        merged = [
            c
            for c in mine
            if c.state == "merged" and parse_marker(c.description) == (cs.key, cs.findings_hash)
        ]
        if merged:
            run.decide(
                "unchanged",
                cs.key,
                branch,
                "merged; waiting for the next scan to see the fix",
                merged[-1],
            )
            continue
        if cs.key in requested:
            pass
        elif not window_open:
            run.decide(
                "held-back",
                cs.key,
                branch,
                "outside the schedule window " + ", ".join(settings.schedule),
            )
            continue
        if cs.key not in requested and open_count >= settings.max_open:
            run.decide(
                "held-back",
                cs.key,
                branch,
                f"{open_count} bot merge requests are open (limit {settings.max_open})",
            )
            continue
        if cs.key not in requested and new_this_hour >= settings.max_new_per_hour:
            run.decide(
                "held-back",
                cs.key,
                branch,
                f"{new_this_hour} merge requests opened in the last hour (limit {settings.max_new_per_hour})",
            )
            continue
        run.commit(cs, branch, default)
        change = forge.open_change(
            branch, cs.title, run.describe(cs), run.labels(cs), run.reviewers(cs)
        )
        open_count += 1
        new_this_hour += 1
        run.decide("created", cs.key, branch, f"new: fixes {', '.join(cs.controls)}", change)

    if close_missing:
        wanted = {cs.key for cs in change_sets}
        for key, changes in sorted(existing.items()):
            for change in changes:
                if change.state == "opened" and key not in wanted:
                    if resolved is not None and not resolved(change.description):
                        run.decide(
                            "kept",
                            key,
                            change.branch,
                            "not planned now, but the report does not show its resources "
                            "scanned and passing: left open",
                            change,
                        )
                        continue
                    forge.close_change(
                        change,
                        "The findings this merge request fixed are no longer reported (fixed "
                        "elsewhere, or the resource is gone), so kube-remedy closes it.",
                    )
                    why = "findings no longer reported"
                    if resolved is not None:
                        why = "the new report shows its resources scanned and passing"
                    run.decide("closed", key, change.branch, why, change)
    return SyncResult(tuple(run.decisions))


def _update(run: _Run, cs: ChangeSet, change: ChangeRequest, branch: str, default: str) -> None:
    parsed = parse_marker(change.description)
    if parsed == (cs.key, cs.findings_hash):
        if change.has_conflicts and not run.forge.has_foreign_commits(change):
            run.commit(cs, branch, default)
            run.decide("rebased", cs.key, branch, "conflicted with the default branch", change)
        else:
            run.decide("unchanged", cs.key, branch, "findings and files unchanged", change)
        return
    if (
        HOLD_LABEL in change.labels
        or change.foreign_commits
        or run.forge.has_foreign_commits(change)
    ):
        note = (
            "\n\n> **kube-remedy is not updating this branch:** it carries commits by someone "
            "else. The findings changed; close this MR to get a fresh one."
        )
        run.forge.update_change(change, description=run.describe(cs) + note)
        run.decide(
            "foreign-commits", cs.key, branch, "branch has commits by others; left alone", change
        )
        return
    run.commit(cs, branch, default)
    # keep labels people added (hold, ignore:C-NNNN, team labels); refresh the bot's own
    kept = [label for label in change.labels if not _MANAGED_LABEL.match(label)]
    labels = list(dict.fromkeys([*run.labels(cs), *kept]))
    updated = run.forge.update_change(
        change, title=cs.title, description=run.describe(cs), labels=labels
    )
    run.decide("updated", cs.key, branch, "findings or target files changed", updated)


def _acknowledge_ignored(run: _Run, cs: ChangeSet, change: ChangeRequest, branch: str) -> None:
    if IGNORED_LABEL not in change.labels:
        run.forge.comment(
            change,
            "kube-remedy will not propose these fixes again until the findings change. To get "
            "them back, tick this change on the dashboard issue, comment "
            "`unignore`, or reopen this merge request.",
        )
        run.forge.update_change(change, labels=[*change.labels, IGNORED_LABEL])
    run.decide(
        "ignored",
        cs.key,
        branch,
        "closed without merging: ignored until the findings change",
        change,
    )
