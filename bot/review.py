"""Review a person's merge request on cd-config: inline GitLab suggestions for the fixes.

Given the files an MR changes, plan every wanted control on every workload document of each
changed plain manifest with the scheduled run's planner (`bot.plan.build_plan`, on a scratch
copy of the one file: same triage, ignores, batching, retries of declined fixes, verification and
``.remedy.yaml`` policy), and turn the difference between the MR's text and the fixed text into
suggestions. What the planner does not fix is a note in `Review.skipped`, never dropped.

GitLab only accepts a comment on a line of the MR's diff, so each suggestion replaces a range of
lines the MR *added* (``suggestion:-0+N`` anchored on the first line of the range); a fix that
would touch lines the MR did not write is left to the scheduled run and listed in
`Review.skipped`. Helm templates and values files are not reviewed here: where a value lands
depends on the chart, which the scheduled run renders.

Each suggestion body carries a hidden marker with the head commit and a fingerprint of the
suggested change, so a task run twice (or on a later commit that leaves the lines alone) posts
nothing new: `posted_fingerprints` reads them back from the MR's notes.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from bot import controls as catalog
from bot.markdown import Md, guard
from bot.plan import build_plan
from bot.render import environment, redact_line
from bot.repo_config import CONFIG_FILE, RepoConfig
from bot.sources.base import Report
from fixers.edits import (
    EditError,
    apply_edits,
    load_documents,
)
from fixers.model import CreateManifest, Finding, ResourceRef, Risk, SourceHint
from fixers.registry import all_fixers
from fixers.view import ManifestPodView

TEMPLATE = "review_suggestion.md.j2"
MERGE_GAP = 2
"""Changes separated by at most this many unchanged lines become one suggestion."""
MARKER = re.compile(r"<!-- kube-remedy-review:(?P<head>[0-9a-f]*) (?P<fp>[0-9a-f]{16}) -->")
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,\d+)? @@")
_VALUES = re.compile(r"^values([._-].*)?\.ya?ml$")
_REVIEWED = "manifest.yaml"
"""The name the reviewed text has in the planner's scratch checkout."""
_NOT_REVIEWED = frozenset({CONFIG_FILE, ".gitlab-ci.yml", "Chart.yaml", "kustomization.yaml"})


@dataclass(frozen=True)
class ChangedFile:
    """One file of a merge request: its text before (None when new) and after the MR."""

    path: str
    old_text: str | None
    new_text: str
    diff: str | None = None
    """GitLab's unified diff of the file (its line numbers decide what the MR added); None:
    computed from the two texts."""
    old_path: str | None = None
    """The path before a rename (defaults to ``path``)."""


@dataclass(frozen=True)
class Suggestion:
    """One inline comment: replace lines ``start``..``end`` (1-based, inclusive) of ``path``."""

    path: str
    old_path: str
    start: int
    end: int
    replacement: tuple[str, ...]
    controls: tuple[str, ...]
    fingerprint: str
    body: str

    @property
    def line(self) -> int:
        """The new-file line the comment is anchored on."""
        return self.start


@dataclass(frozen=True)
class Review:
    """The suggestions for an MR and what was not reviewed, one line each (``path: why``)."""

    suggestions: tuple[Suggestion, ...] = ()
    skipped: tuple[str, ...] = ()


@dataclass
class _Step:
    """The edits of one fixer for one control on one document."""

    control: str
    risk: Risk
    workload: str
    notes: tuple[str, ...]


@dataclass
class _Fixed:
    text: str
    steps: list[_Step] = field(default_factory=list)
    origin: list[int | None] = field(default_factory=list)
    """Per line of ``text``: the step that wrote it (None: the MR's own line)."""
    source: list[int | None] = field(default_factory=list)
    """Per line of ``text``: the MR line (0-based) it still is, None for a fixer's line."""
    removed_by: dict[int, int] = field(default_factory=dict)
    """MR line index -> the step that removed or rewrote it."""


# --------------------------------------------------------------------------- diff lines


def added_lines(diff: str) -> frozenset[int]:
    """New-file line numbers (1-based) that a unified diff adds."""
    added: set[int] = set()
    line = 0
    for text in diff.splitlines():
        hunk = _HUNK.match(text)
        if hunk:
            line = int(hunk.group("start"))
            continue
        if not line or text.startswith("\\"):
            continue
        if text.startswith("+"):
            added.add(line)
            line += 1
        elif text.startswith(" ") or text == "":
            line += 1
    return frozenset(added)


def added_between(old: str | None, new: str) -> frozenset[int]:
    """New-file line numbers (1-based) that differ from ``old`` (all of them for a new file)."""
    new_lines = new.splitlines()
    if old is None:
        return frozenset(range(1, len(new_lines) + 1))
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new_lines, autojunk=False)
    return frozenset(
        n + 1
        for tag, _, _, j1, j2 in matcher.get_opcodes()
        if tag in ("insert", "replace")
        for n in range(j1, j2)
    )


# --------------------------------------------------------------------------- markers


def marker(head_sha: str, fingerprint: str) -> str:
    """The hidden line identifying a posted suggestion."""
    return f"<!-- kube-remedy-review:{head_sha} {fingerprint} -->"


def posted_fingerprints(bodies: Iterable[str]) -> frozenset[str]:
    """Fingerprints of the suggestions already posted (markers in the bot's notes)."""
    return frozenset(m.group("fp") for body in bodies for m in MARKER.finditer(body))


# --------------------------------------------------------------------------- review


def not_reviewed(path: str, text: str) -> str | None:
    """Why a changed file is not reviewed inline, '' when it is silently out of scope, or
    None when it is reviewed."""
    name = PurePosixPath(path).name
    if not name.endswith((".yaml", ".yml")) or name in _NOT_REVIEWED:
        return ""
    if "/templates/" in f"/{path}" or "{{" in text:
        return "Helm template: fixed in the chart's values by the scheduled run"
    if _VALUES.match(name):
        return "Helm values: the scheduled run renders the chart and fixes them there"
    return None


def review_changes(files: Sequence[ChangedFile], config: RepoConfig, head_sha: str = "") -> Review:
    """Suggestions for every changed plain manifest of an MR (deleted files are not passed)."""
    suggestions: list[Suggestion] = []
    skipped: list[str] = []
    for changed in files:
        why = not_reviewed(changed.path, changed.new_text)
        if why is not None:
            if why:
                skipped.append(f"{changed.path}: {why}")
            continue
        found, notes = review_file(changed, config, head_sha)
        suggestions += found
        skipped += [f"{changed.path}: {n}" for n in notes]
    return Review(tuple(suggestions), tuple(skipped))


def review_file(
    changed: ChangedFile, config: RepoConfig, head_sha: str = ""
) -> tuple[list[Suggestion], list[str]]:
    """The suggestions for one plain manifest, and notes on what was left out."""
    notes: list[str] = []
    try:
        fixed = fix_text(changed.new_text, config, notes)
    except EditError as exc:
        return [], [f"not valid YAML ({exc})"]
    if fixed.text == changed.new_text:
        return [], notes
    added = (
        added_lines(changed.diff)
        if changed.diff
        else added_between(changed.old_text, changed.new_text)
    )
    ours = changed.new_text.splitlines()
    theirs = fixed.text.splitlines()
    opcodes = difflib.SequenceMatcher(None, ours, theirs, autojunk=False).get_opcodes()
    changes = [op for op in opcodes if op[0] != "equal"]
    suggestions: list[Suggestion] = []
    for cluster in _clusters(changes):
        placed = _place(cluster, changes, ours, added)
        parts = [[c] for c in cluster] if placed is None and len(cluster) > 1 else [cluster]
        for part in parts:
            span = placed if len(parts) == 1 else _place(part, changes, ours, added)
            steps = _steps_of(part, fixed)
            if span is None:
                first = part[0][1] + 1
                controls = ", ".join(sorted({s.control for s in steps}))
                notes.append(
                    f"line {first}: the fix for {controls} changes lines this MR did not "
                    "write; left to the scheduled run"
                )
                continue
            start, end = span
            replacement = tuple(_image(start, end, part, opcodes, theirs))
            suggestions.append(
                _suggestion(changed, start, end, ours[start:end], replacement, steps, head_sha)
            )
    return suggestions, notes


def fix_text(text: str, config: RepoConfig, notes: list[str] | None = None) -> _Fixed:
    """Plan every wanted control on every workload document of ``text`` with the scheduled
    run's planner (`bot.plan.build_plan`: one view per batch, declined fixes retried after the
    rest, every fix verified); the fixed text and which fix wrote which line. A finding the
    planner does not fix, other than an ignored one, is a note. Raises `EditError` when
    ``text`` is not YAML."""
    notes = notes if notes is not None else []
    documents = load_documents(text)
    lines = len(text.splitlines())
    state = _Fixed(text, origin=[None] * lines, source=list(range(lines)))
    findings = list(_findings(documents, config))
    if not findings:
        return state
    # One file, one change set: every fix of the file is planned and verified together.
    together = config.model_copy(update={"grouping": "file", "kyverno_policies": False})
    with tempfile.TemporaryDirectory(prefix="remedy-review-") as root:
        (Path(root) / _REVIEWED).write_text(text, encoding="utf-8", newline="")
        # a review suggests every fix of the file at once (people pick suggestions one by
        # one), so risky fixes are not split off: the planner's retries then see them all
        planned = build_plan(
            Report("review", "merge request", tuple(findings)),
            Path(root),
            together,
            split_risky=False,
        )
    workloads = {index: name for index, name in _workloads(documents)}
    for change_set in planned.change_sets:
        for fix in change_set.fixes:
            index = fix.location.document_index or 0
            workload = workloads.get(index, str(fix.finding.resource))
            edits = [e for e in fix.edits if not isinstance(e, CreateManifest)]
            if len(edits) < len(fix.edits):
                notes.append(
                    f"{workload}: {fix.finding.control_id} adds a new file, which cannot be an "
                    "inline suggestion; left to the scheduled run"
                )
            if not edits:
                continue
            try:
                after = apply_edits(state.text, edits, index)
            except EditError as exc:
                notes.append(f"{workload}: {fix.finding.control_id} could not be applied ({exc})")
                continue
            if after != state.text:
                step = _Step(
                    fix.finding.control_id, fix.risk, workload, (*fix.notes, *fix.values_used)
                )
                _record(state, after, step)
    for unfixed in planned.unfixable:
        if unfixed.category != "ignored":
            index = unfixed.finding.source.document_index or 0
            workload = workloads.get(index, str(unfixed.finding.resource))
            notes.append(f"{workload}: {unfixed.finding.control_id} not fixed: {unfixed.reason}")
    return state


def _workloads(documents: Sequence[Any]) -> Iterator[tuple[int, str]]:
    """(document index, "Kind ns/name") of every workload document."""
    for index, document in enumerate(documents):
        view = ManifestPodView.from_document(document)
        if view is not None:
            yield index, f"{view.kind} {view.namespace + '/' if view.namespace else ''}{view.name}"


def _findings(documents: Sequence[Any], config: RepoConfig) -> Iterator[Finding]:
    """A finding for every wanted, fixable control on every workload document, as a scanner of
    this one file would report them."""
    controls = [
        control for fixer in all_fixers() for control in fixer.controls if config.wants(control)
    ]
    for index, document in enumerate(documents):
        view = ManifestPodView.from_document(document)
        if view is None:
            continue
        resource = ResourceRef(
            api_version=str(document.get("apiVersion", "")),
            kind=view.kind,
            namespace=view.namespace or None,
            name=view.name,
        )
        where = SourceHint(path=_REVIEWED, document_index=index)
        for control in controls:
            yield Finding(control_id=control, resource=resource, source=where)


def _record(state: _Fixed, after: str, step: _Step) -> None:
    """Move ``state`` to ``after``, labelling the lines ``step`` wrote or removed."""
    number = len(state.steps)
    state.steps.append(step)
    old, new = state.text.splitlines(), after.splitlines()
    # An edit touches one document: compare only what lies between the common head and tail.
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    matcher = difflib.SequenceMatcher(
        None, old[head : len(old) - tail], new[head : len(new) - tail], autojunk=False
    )
    origin: list[int | None] = state.origin[:head]
    source: list[int | None] = state.source[:head]
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        i1, i2 = i1 + head, i2 + head
        if tag == "equal":
            origin += state.origin[i1:i2]
            source += state.source[i1:i2]
            continue
        for mr_line in state.source[i1:i2]:
            if mr_line is not None:
                state.removed_by.setdefault(mr_line, number)
        origin += [number] * (j2 - j1)
        source += [None] * (j2 - j1)
    if tail:
        origin += state.origin[len(old) - tail :]
        source += state.source[len(old) - tail :]
    state.text, state.origin, state.source = after, origin, source


# --------------------------------------------------------------------------- placing


Op = tuple[str, int, int, int, int]


def _clusters(changes: Sequence[Op]) -> list[list[Op]]:
    clusters: list[list[Op]] = []
    for op in changes:
        if clusters and op[1] - clusters[-1][-1][2] <= MERGE_GAP:
            clusters[-1].append(op)
        else:
            clusters.append([op])
    return clusters


def _place(
    part: Sequence[Op], changes: Sequence[Op], ours: Sequence[str], added: frozenset[int]
) -> tuple[int, int] | None:
    """The 0-based, end-exclusive range of MR lines a suggestion for ``part`` replaces: only
    lines the MR added, and no change outside ``part`` inside it."""
    start, end = part[0][1], part[-1][2]
    candidates = [(start, end)] if start < end else [(start - 1, start), (start, start + 1)]
    others = [c for c in changes if c not in part]
    for s, e in candidates:
        if s < 0 or e > len(ours):
            continue
        if not all(n + 1 in added for n in range(s, e)):
            continue
        if any(_touches(c, s, e) for c in others):
            continue
        return s, e
    return None


def _touches(op: Op, start: int, end: int) -> bool:
    _, i1, i2, _, _ = op
    if i1 == i2:
        return start <= i1 <= end
    return i1 < end and start < i2


def _image(
    start: int, end: int, part: Sequence[Op], opcodes: Sequence[Op], theirs: Sequence[str]
) -> Iterator[str]:
    """The fixed lines that replace MR lines ``start``..``end`` (``part``'s changes applied)."""
    for op in opcodes:
        tag, i1, i2, j1, j2 = op
        if tag == "equal":
            lo, hi = max(i1, start), min(i2, end)
            if lo < hi:
                yield from theirs[j1 + lo - i1 : j1 + hi - i1]
        elif op in part:
            yield from theirs[j1:j2]


def _steps_of(part: Sequence[Op], fixed: _Fixed) -> list[_Step]:
    numbers: set[int] = set()
    for _, i1, i2, j1, j2 in part:
        numbers |= {n for n in fixed.origin[j1:j2] if n is not None}
        numbers |= {fixed.removed_by[i] for i in range(i1, i2) if i in fixed.removed_by}
    return [fixed.steps[n] for n in sorted(numbers)]


# --------------------------------------------------------------------------- rendering


def _suggestion(
    changed: ChangedFile,
    start: int,
    end: int,
    original: Sequence[str],
    replacement: tuple[str, ...],
    steps: Sequence[_Step],
    head_sha: str,
) -> Suggestion:
    ids = tuple(dict.fromkeys(s.control for s in steps))
    digest = hashlib.sha256(
        "\0".join([changed.path, str(start), *original, "\0", *replacement]).encode()
    ).hexdigest()[:16]
    body = render_body(
        marker(head_sha, digest), end - start - 1, replacement, steps, _controls(ids)
    )
    return Suggestion(
        path=changed.path,
        old_path=changed.old_path or changed.path,
        start=start + 1,
        end=end,
        replacement=replacement,
        controls=ids,
        fingerprint=digest,
        body=body,
    )


def _controls(ids: Sequence[str]) -> list[Mapping[str, str]]:
    out: list[Mapping[str, str]] = []
    for control_id in ids:
        entry = catalog.get(control_id)
        out.append(
            {
                "id": control_id,
                "name": entry.name if entry else control_id,
                "severity": entry.severity if entry else "Unknown",
                "why": entry.why if entry else "",
            }
        )
    return out


@functools.cache
def _template() -> jinja2.Template:
    return environment().get_template(TEMPLATE)


def render_body(
    hidden: str,
    below: int,
    replacement: Sequence[str],
    steps: Sequence[_Step],
    controls: Sequence[Mapping[str, str]],
) -> str:
    """The Markdown of one suggestion: controls and why, notes, the ```suggestion block.

    A range whose lines look like they hold a credential is described but not repeated.
    """
    withheld = None
    if any(redact_line(line) != line for line in replacement):
        withheld = "credential"
    elif any(not _postable(line) for line in replacement):
        withheld = "unsafe"
    risk = max((s.risk for s in steps), default=Risk.LOW)
    text = _template().render(
        marker=Md(hidden),
        workloads=list(dict.fromkeys(s.workload for s in steps)),
        risk=risk.label,
        controls=[dict(c) for c in controls],
        notes=list(dict.fromkeys(n for s in steps for n in s.notes)),
        content=None if withheld else list(replacement),
        withheld=withheld,
        below=below,
    )
    return guard(text)


def _postable(line: str) -> bool:
    """A line a suggestion can carry verbatim: GitLab would take one starting with ``/`` as a
    quick action, and invisible or control characters would be shown escaped, not applied."""
    return not line.startswith("/") and line.replace("\t", "").isprintable()
