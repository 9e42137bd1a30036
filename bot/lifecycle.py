"""The merge-request lifecycle over any `Forge`: GitLab and local mode behave alike.

GitLab is the source of truth, as with the best dependency bots: each bot MR carries a hidden
marker ``<!-- kube-remedy:{"key": ..., "hash": ..., "ignore": ...} -->`` naming its change set,
the hash of the findings and file contents it fixes, and its ignore key (the findings alone).
An MR is the bot's when its author is the bot's user, its branch has the bot's prefix and it
carries the marker; labels play no part. One listing of the bot's MRs per run decides:

- new change set -> one commit on a fresh branch + one MR (unless a limit holds it back); a
  branch that already exists with someone else's commit is left alone and reported;
- open MR, same hash -> left alone: zero write requests (rebased only when it conflicts);
- open MR, new hash -> recommitted from the default branch and described anew, unless the
  branch carries someone else's commit: then it is left alone and the MR says so, once;
- open MR labelled `RECREATE_LABEL` (the ``recreate`` command) -> rewritten from the default
  branch in one commit request, whatever is on the branch; the MR keeps its iid;
- MR closed by a person without merging, same ignore key -> ignored (acknowledged once, like
  Renovate) until the findings change; an MR the bot closed itself is no ignore;
- open bot MR whose change set is gone -> closed with a comment and its branch deleted.

No path writes a branch that carries a commit the bot did not author (except ``recreate``, which
a person asked for). One change set's failure is recorded and the others go on. Held-back change
sets (limits, schedule window) are listed in the result, never lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.errors import ForgeConflictError, ForgeTransientError, RemedyError
from bot.forge.base import ChangeRequest, Forge
from bot.model import ChangeSet

log = logging.getLogger(__name__)

IGNORED_LABEL = "kube-remedy::ignored"
HOLD_LABEL = "kube-remedy-hold"
"""Set when a human pushed to the bot's branch (or by a reviewer): the bot stops rewriting it."""
IGNORE_CONTROL_PREFIX = "kube-remedy-ignore:"
"""``kube-remedy-ignore:C-0017`` on an MR: its next update leaves that control out."""
RECREATE_LABEL = "kube-remedy::recreate"
"""Set by the ``recreate`` command: the next run rewrites the branch from the default branch."""
LIMIT_SETTINGS = {
    "max_open": "`.remedy.yaml` limits.max_open",
    "max_new_per_hour": "`.remedy.yaml` limits.max_new_per_hour",
    "schedule": "`.remedy.yaml` limits.schedule",
}
_MANAGED_LABEL = re.compile(r"^(C-\d{4}|severity::.*)$")
_MARKER = re.compile(r"<!-- kube-remedy:(\{[^<>]*\}) -->")
_KEY = re.compile(r"^[a-z0-9][a-z0-9/._-]{0,200}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def ignore_key(cs: ChangeSet) -> str:
    """What a person's ignore is keyed on: the change set key and its findings (control,
    resource, container), never file contents, so a later edit of the file keeps the ignore."""
    payload = {"key": cs.key, "findings": sorted("|".join(f.identity) for f in cs.findings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fixes_of(cs: ChangeSet) -> tuple[tuple[str, str], ...]:
    """The (control, resource) pairs a change set fixes, sorted (`bot.resolution` reads them)."""
    return tuple(sorted({(f.control_id, f.resource.key) for f in cs.findings}))


def marker(
    key: str,
    findings_hash: str,
    ignore: str | None = None,
    controls: Sequence[str] = (),
    fixes: Sequence[tuple[str, str]] = (),
) -> str:
    """The hidden line that ties an MR description to its change set: its key, findings hash,
    ignore key, the controls it fixes and the (control, resource) pairs it fixes. ``<`` and
    ``>`` are escaped so that no resource name can close the comment."""
    data: dict[str, object] = {"key": key, "hash": findings_hash}
    if ignore is not None:
        data["ignore"] = ignore
    if controls:
        data["controls"] = list(controls)
    if fixes:
        data["fixes"] = [list(fix) for fix in fixes]
    text = json.dumps(data, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return "<!-- kube-remedy:" + text + " -->"


def marker_for(cs: ChangeSet) -> str:
    """The marker of one change set (key, findings hash, ignore key, the controls and the
    (control, resource) pairs it fixes)."""
    return marker(cs.key, cs.findings_hash, ignore_key(cs), cs.controls, fixes_of(cs))


def marker_controls(description: str) -> tuple[str, ...] | None:
    """The controls the MR fixes, as its marker names them (None: an older marker)."""
    found = _MARKER.findall(description or "")
    try:
        data = json.loads(found[-1]) if found else None
    except json.JSONDecodeError:
        return None
    controls = data.get("controls") if isinstance(data, dict) else None
    if not isinstance(controls, list):
        return None
    return tuple(c for c in controls if isinstance(c, str) and re.fullmatch(r"C-\d{4}", c))


def marker_data(description: str) -> dict[str, str] | None:
    """The marker's fields (``key``, ``hash``, maybe ``ignore``), or None when there is no
    valid marker of ours."""
    found = _MARKER.findall(description or "")
    if not found:
        return None
    try:
        data = json.loads(found[-1])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    key, digest = data.get("key"), data.get("hash")
    if not isinstance(key, str) or not isinstance(digest, str) or not _KEY.match(key):
        return None
    out = {"key": key, "hash": digest}
    if isinstance(data.get("ignore"), str):
        out["ignore"] = data["ignore"]
    return out


def parse_marker(description: str) -> tuple[str, str] | None:
    """(key, hash) from a description, or None when it carries no valid marker of ours."""
    data = marker_data(description)
    return None if data is None else (data["key"], data["hash"])


def same_findings(change: ChangeRequest, cs: ChangeSet) -> bool:
    """Does this MR fix the same findings as ``cs`` (its ignore key; the findings hash for MRs
    made before ignore keys existed)?"""
    data = marker_data(change.description)
    if data is None or data["key"] != cs.key:
        return False
    if "ignore" in data:
        return data["ignore"] == ignore_key(cs)
    return data["hash"] == cs.findings_hash


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
    max_open: int | None = 10
    """None: no limit (local mode)."""
    max_new_per_hour: int | None = 5
    schedule: tuple[str, ...] = ()
    labels: tuple[str, ...] = ("security", "kube-remedy")


@dataclass(frozen=True)
class SyncDecision:
    """What happened to one change set or one existing bot MR, and why."""

    action: str
    """created | updated | recreated | unchanged | rebased | closed | ignored | held-back |
    foreign-commits | skipped | failed"""
    key: str
    branch: str
    reason: str
    change: ChangeRequest | None = None
    error: RemedyError | None = None
    """Set when ``action`` is ``failed``."""


@dataclass(frozen=True)
class SyncResult:
    decisions: tuple[SyncDecision, ...] = ()
    next_slot: datetime | None = None
    """When ``max_new_per_hour`` lets the next held-back change set be opened (None: now)."""

    def by_action(self, action: str) -> tuple[SyncDecision, ...]:
        return tuple(d for d in self.decisions if d.action == action)

    @property
    def held_back(self) -> tuple[SyncDecision, ...]:
        return self.by_action("held-back")

    @property
    def failed(self) -> tuple[SyncDecision, ...]:
        return self.by_action("failed")

    @property
    def transient_only(self) -> bool:
        """Every failure is transient (429/5xx/network): trying again later may succeed."""
        return all(isinstance(d.error, ForgeTransientError) for d in self.failed)


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
    rate_limited: ForgeTransientError | None = None
    """Set by GitLab's first 429 that outlasted the retries: the run asks GitLab nothing more
    (each later change set fails transiently, to be retried), rather than hammer it."""

    def failed(
        self, key: str, branch: str, exc: RemedyError, change: ChangeRequest | None = None
    ) -> None:
        """Record one change set's failure; a 429 stops the run's requests to GitLab."""
        if isinstance(exc, ForgeTransientError) and exc.rate_limited:
            self.rate_limited = self.rate_limited or exc
        self.decide("failed", key, branch, str(exc), change, error=exc)

    def held_by_rate_limit(
        self, key: str, branch: str, change: ChangeRequest | None = None
    ) -> bool:
        """After a 429: record ``key`` as failed (transient) without asking GitLab."""
        if self.rate_limited is None:
            return False
        reason = f"not tried: GitLab is rate limiting the bot ({self.rate_limited})"
        self.decide("failed", key, branch, reason, change, error=self.rate_limited)
        return True

    def decide(
        self,
        action: str,
        cs_key: str,
        branch: str,
        reason: str,
        change: ChangeRequest | None = None,
        error: RemedyError | None = None,
    ) -> None:
        self.decisions.append(SyncDecision(action, cs_key, branch, reason, change, error))

    def by_action(self, action: str) -> list[SyncDecision]:
        return [d for d in self.decisions if d.action == action]

    def commit(self, cs: ChangeSet, branch: str, default: str) -> None:
        files = {c.path: c.after for c in cs.files}
        self.forge.commit_files(branch, files, cs.commit_message, start_branch=default)


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
    only: frozenset[str] | None = None,
) -> SyncResult:
    """Make the bot's merge requests match ``change_sets`` (see the module docstring).

    ``only`` restricts the run to those change set keys (a worker's sync task of one change
    set): the others are neither synced nor closed, but still count as wanted.

    ``resolved`` (given an MR description) says whether the new report proves an MR's findings
    fixed; an open MR whose change set is gone but is not proven fixed stays open.

    ``requested`` keys (ticked on the dashboard) are proposed despite the limits and despite an
    earlier close: a person asked for them. A `RemedyError` of one change set becomes a
    ``failed`` decision and the others go on.
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
    existing = bot_changes_by_key(forge.find_changes(), settings.branch_prefix)
    default = forge.default_branch()
    counts = _Counts(existing, run.now)
    _propose(run, change_sets, existing, default, counts, requested, only)
    if close_missing:
        _close_gone(run, {cs.key for cs in change_sets}, existing, resolved, only)
    next_slot = counts.next_slot(settings) if run.by_action("held-back") else None
    return SyncResult(tuple(run.decisions), next_slot)


def bot_changes_by_key(
    changes: Iterable[ChangeRequest], branch_prefix: str
) -> dict[str, list[ChangeRequest]]:
    """The bot's merge requests among ``changes`` by change-set key, in the order listed: an
    MR is the bot's when its author is the bot's user, its branch has ``branch_prefix`` and
    its description carries a valid marker (labels play no part)."""
    by_key: dict[str, list[ChangeRequest]] = {}
    for change in changes:
        parsed = parse_marker(change.description)
        if parsed and change.author_is_bot and change.branch.startswith(branch_prefix):
            by_key.setdefault(parsed[0], []).append(change)
    return by_key


def _propose(
    run: _Run,
    change_sets: Sequence[ChangeSet],
    existing: dict[str, list[ChangeRequest]],
    default: str,
    counts: _Counts,
    requested: frozenset[str],
    only: frozenset[str] | None,
) -> None:
    """Sync every change set (of ``only``, when given) with its MRs: workloads with Falco
    alerts first, then higher risk last, so that with limits the safest fixes are proposed
    first. One change set's `RemedyError` is a ``failed`` decision; the others go on."""
    window_open = in_window(run.settings.schedule, run.now)
    for cs in sorted(change_sets, key=lambda c: ("falco-alerts" not in c.meta, c.risk, c.key)):
        if only is not None and cs.key not in only:
            continue
        branch = run.settings.branch_prefix + cs.key
        if run.held_by_rate_limit(cs.key, branch):
            continue
        try:
            _sync_one(
                run, cs, existing.get(cs.key, []), branch, default, counts, window_open, requested
            )
        except RemedyError as exc:
            log.warning("change set %s failed: %s", cs.key, exc)
            run.failed(cs.key, branch, exc)


def _close_gone(
    run: _Run,
    wanted: set[str],
    existing: dict[str, list[ChangeRequest]],
    resolved: Callable[[str], bool] | None,
    only: frozenset[str] | None,
) -> None:
    """Close the open bot MRs whose change set is no longer ``wanted`` (of ``only``, when
    given), unless ``resolved`` says the report does not prove their findings fixed: those
    are kept open."""
    for key, changes in sorted(existing.items()):
        if only is not None and key not in only:
            continue
        for change in changes:
            if change.state != "opened" or key in wanted:
                continue
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
            if run.held_by_rate_limit(key, change.branch, change):
                continue
            try:
                _close_resolved(run, key, change, proven=resolved is not None)
            except RemedyError as exc:
                run.failed(key, change.branch, exc, change)


@dataclass
class _Counts:
    """Open bot MRs and MRs opened in the last hour, kept current as the run creates more."""

    existing: dict[str, list[ChangeRequest]]
    now: datetime
    open_count: int = 0
    created: list[datetime] = field(default_factory=list)

    def __post_init__(self) -> None:
        changes = [c for cs in self.existing.values() for c in cs]
        self.open_count = sum(1 for c in changes if c.state == "opened")
        hour_ago = self.now - timedelta(hours=1)
        self.created = sorted(
            t for c in changes if (t := _created_at(c)) is not None and t > hour_ago
        )

    def add(self) -> None:
        self.open_count += 1
        self.created.append(self.now)

    def next_slot(self, settings: SyncSettings) -> datetime | None:
        limit = settings.max_new_per_hour
        if limit is None or len(self.created) < limit or not self.created:
            return None
        # the hour window frees one slot when the oldest creation in it turns an hour old
        return self.created[len(self.created) - limit] + timedelta(hours=1)


def _held(run: _Run, cs: ChangeSet, counts: _Counts, window_open: bool) -> str | None:
    """Why a new change set must wait (naming the setting to change), or None."""
    settings = run.settings
    if not window_open:
        return (
            "outside the schedule window "
            + ", ".join(settings.schedule)
            + f" (set by {LIMIT_SETTINGS['schedule']})"
        )
    if settings.max_open is not None and counts.open_count >= settings.max_open:
        return (
            f"{counts.open_count} bot merge requests are open (limit {settings.max_open}, "
            f"set by {LIMIT_SETTINGS['max_open']})"
        )
    if settings.max_new_per_hour is not None and len(counts.created) >= settings.max_new_per_hour:
        return (
            f"{len(counts.created)} merge requests opened in the last hour (limit "
            f"{settings.max_new_per_hour}, set by {LIMIT_SETTINGS['max_new_per_hour']})"
        )
    return None


def _sync_one(
    run: _Run,
    cs: ChangeSet,
    mine: list[ChangeRequest],
    branch: str,
    default: str,
    counts: _Counts,
    window_open: bool,
    requested: frozenset[str],
) -> None:
    opened = [c for c in mine if c.state == "opened"]
    if opened:
        _update(run, cs, opened[0], branch, default)
        return
    if cs.key not in requested:
        closed = [c for c in mine if c.state == "closed" and same_findings(c, cs)]
        ignored = next((c for c in reversed(closed) if _closed_by_person(run, c)), None)
        if ignored is not None:
            _acknowledge_ignored(run, cs, ignored, branch)
            return
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
        return
    if cs.key not in requested:
        reason = _held(run, cs, counts, window_open)
        if reason is not None:
            run.decide("held-back", cs.key, branch, reason)
            return
    foreign = _branch_foreign(run, branch)
    if foreign:
        run.decide(
            "foreign-commits",
            cs.key,
            branch,
            "the branch already exists with commits by someone else; left alone (delete or "
            "rename it to let kube-remedy propose this fix)",
        )
        return
    run.commit(cs, branch, default)
    try:
        change = run.forge.open_change(
            branch, cs.title, run.describe(cs), run.labels(cs), run.reviewers(cs)
        )
    except ForgeConflictError as exc:
        _adopt(run, cs, branch, default, exc)
        return
    counts.add()
    run.decide("created", cs.key, branch, f"new: fixes {', '.join(cs.controls)}", change)


def _closed_by_person(run: _Run, change: ChangeRequest) -> bool:
    """A close means "ignore" only when a person did it; the bot's own close (findings gone)
    does not. Once acknowledged (labelled), GitLab is not asked again."""
    if IGNORED_LABEL in change.labels:
        return True
    by_bot = getattr(run.forge, "closed_by_bot", None)
    return not (by_bot is not None and by_bot(change))


def _recreate_commanded(run: _Run, change: ChangeRequest) -> bool:
    """Did the ``recreate`` command (authorized, run with the bot's token) set the recreate
    label? Anyone who may edit labels can add it by hand, and a recreate drops people's
    commits: a label the bot did not add is not obeyed."""
    check = getattr(run.forge, "label_added_by_bot", None)
    return check is None or bool(check(change, RECREATE_LABEL))


def _branch_foreign(run: _Run, branch: str) -> bool:
    check = getattr(run.forge, "branch_has_foreign_commits", None)
    return bool(check is not None and check(branch, run.settings.branch_prefix))


def _adopt(run: _Run, cs: ChangeSet, branch: str, default: str, exc: ForgeConflictError) -> None:
    """GitLab said an open MR already uses the branch (409): adopt it when it is the bot's,
    otherwise leave it and say so; never stop the run."""
    if "already exists" not in str(exc):
        raise exc
    find = getattr(run.forge, "find_open_change", None)
    found = find(branch) if find is not None else None
    if found is not None and found.author_is_bot and parse_marker(found.description):
        _update(run, cs, found, branch, default)
        return
    who = "someone else's" if found is not None else "an"
    run.decide(
        "skipped",
        cs.key,
        branch,
        f"{who} open merge request already uses this branch; left alone",
        found,
    )


def _close_resolved(run: _Run, key: str, change: ChangeRequest, proven: bool) -> None:
    run.forge.close_change(
        change,
        "The findings this merge request fixed are no longer reported (fixed "
        "elsewhere, or the resource is gone), so kube-remedy closes it.",
    )
    delete = getattr(run.forge, "delete_branch", None)
    # closed first, then the branch: deleting an open MR's branch would close it as well
    if delete is not None and not run.forge.has_foreign_commits(change):
        delete(change.branch)
    why = (
        "the new report shows its resources scanned and passing"
        if proven
        else "findings no longer reported"
    )
    run.decide("closed", key, change.branch, why, change)


def _update(run: _Run, cs: ChangeSet, change: ChangeRequest, branch: str, default: str) -> None:
    if IGNORED_LABEL in change.labels:
        # open again (reopened by a person, or `unignore`): no longer ignored, so that a later
        # close by the bot (findings resolved) is not taken for a person's ignore
        change = run.forge.update_change(
            change, labels=[label for label in change.labels if label != IGNORED_LABEL]
        )
    if RECREATE_LABEL in change.labels and _recreate_commanded(run, change):
        # a person asked for it: one commit request rewrites the branch from the default branch
        run.commit(cs, branch, default)
        kept = [
            label
            for label in change.labels
            if not _MANAGED_LABEL.match(label) and label not in (RECREATE_LABEL, HOLD_LABEL)
        ]
        updated = run.forge.update_change(
            change,
            title=cs.title,
            description=run.describe(cs),
            labels=list(dict.fromkeys([*run.labels(cs), *kept])),
        )
        run.decide("recreated", cs.key, branch, "rewritten from the default branch", updated)
        return
    parsed = parse_marker(change.description)
    if parsed == (cs.key, cs.findings_hash):
        if (
            change.has_conflicts
            and HOLD_LABEL not in change.labels
            and not run.forge.has_foreign_commits(change)
        ):
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
        # The description keeps describing what is on the branch (the person's commits
        # included), never a diff the branch lacks; only the note is added, once.
        if _FOREIGN_NOTE not in change.description:
            run.forge.update_change(change, description=change.description + _FOREIGN_NOTE)
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


_FOREIGN_NOTE = (
    "\n\n> **kube-remedy is not updating this branch:** it carries commits by someone "
    "else. The findings changed; say `recreate` to the bot to rewrite it from the default "
    "branch, or close this MR to get a fresh one."
)


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
