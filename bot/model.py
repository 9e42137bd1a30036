"""The bot's own domain values: where an edit goes, what one merge request changes."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fixers.model import AnyEdit, Finding, Risk

LocationKind = Literal["manifest", "helm-values", "helm-template", "helm-post-renderer", "new-file"]


@dataclass(frozen=True, slots=True)
class Location:
    """A place in cd-config to edit: a manifest document, a Helm values file, or a template."""

    kind: LocationKind
    path: str
    """Repository-relative POSIX path."""
    document_index: int = 0
    chart: str | None = None
    """Chart directory (repository-relative) for Helm locations; for a chart pulled from a
    chart repository, the chart as ``helm template`` takes it."""
    why: str = ""
    """One sentence for the MR: why this file (e.g. values precedence)."""
    chart_source: str = ""
    """For a chart pulled from a chart repository: the version rendered and where it came
    from (``podinfo 6.14.1 from https://... (chart cache: podinfo-6.14.1.tgz)``)."""


@dataclass(frozen=True, slots=True)
class PlannedFix:
    """The edits one fixer proposes for one finding at one location."""

    finding: Finding
    location: Location
    fixer: str
    family: str
    risk: Risk
    edits: tuple[AnyEdit, ...]
    notes: tuple[str, ...] = ()
    values_used: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unfixable:
    """A finding the bot will not fix in git, with the reason shown to people."""

    finding: Finding
    reason: str
    category: Literal[
        "no-fixer",
        "needs-human",
        "not-in-repo",
        "rbac",
        "node",
        "image",
        "verify-failed",
        "ignored",
        "unknown-control",
        "chart",
        "cluster-config",
    ] = "needs-human"


def _head(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (a binary search of C-speed
    comparisons, not a loop over characters)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a.startswith(b[low:mid], low):
            low = mid
        else:
            high = mid - 1
    return low


def _tail(a: str, b: str, most: int) -> int:
    """The length of the longest common suffix of ``a`` and ``b``, at most ``most``."""
    low, high = 0, min(most, len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a.endswith(b[len(b) - mid : len(b) - low], 0, len(a) - low):
            low = mid
        else:
            high = mid - 1
    return low


_DEFLATE = -15
"""Raw deflate: the delta lives in memory only, it needs no header or checksum."""
_WINDOW = 32 * 1024
"""How much of the base's text deflate can refer back to (its largest window)."""
_MEMORY = 4
"""Deflate's memory level: zlib clears a hash table of 2 ** (level + 8) bytes for every
delta, 64 KB at its default 8, which cost more than compressing the few changed lines; at 4
the deltas of edited manifests came out the same size."""


def _utf8(text: str) -> bytes:
    # surrogatepass: a YAML escape (\ud800) can put a lone surrogate into an edited text
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A text held as what it changes in another, its base: the length of the head and of
    the tail they share, and the middle in between, deflated with the base's middle as the
    dictionary (an edit rewrites a few lines; the lines around it are mostly the base's).

    A big plan keeps the text of a file after the edits of each change set that touches it,
    next to the one text before that they share: as deltas these cost about a tenth of the
    texts, for about 10 us to make and 5 us to spell out (`apply`)."""

    head: int
    tail: int
    middle: bytes

    @classmethod
    def between(cls, base: str, text: str) -> TextDelta:
        """``text`` as a delta against ``base``."""
        head = _head(base, text)
        tail = _tail(base, text, min(len(base), len(text)) - head)
        middle = text[head : len(text) - tail]
        if not middle:
            return cls(head, tail, b"")
        deflate = zlib.compressobj(
            wbits=_DEFLATE, memLevel=_MEMORY, zdict=cls._dictionary(base, head, tail)
        )
        return cls(head, tail, deflate.compress(_utf8(middle)) + deflate.flush())

    def apply(self, base: str) -> str:
        """The text: ``base`` with the middle replaced (``base`` is the one it was made on)."""
        middle = ""
        if self.middle:
            inflate = zlib.decompressobj(
                wbits=_DEFLATE, zdict=self._dictionary(base, self.head, self.tail)
            )
            raw = inflate.decompress(self.middle) + inflate.flush()
            middle = raw.decode("utf-8", "surrogatepass")
        return base[: self.head] + middle + base[len(base) - self.tail :]

    @staticmethod
    def _dictionary(base: str, head: int, tail: int) -> bytes:
        return _utf8(base[head : len(base) - tail])[-_WINDOW:] or b"\0"


@dataclass(frozen=True, slots=True, init=False, eq=False, repr=False)
class FileChange:
    """One file of a change set: its content before (None for a new file) and after.

    ``after`` may be given as a `TextDelta` against ``before`` (the planner keeps it so): it is
    spelled out on each read of `after`. Equal when path and texts are."""

    path: str
    before: str | None
    _after: str | TextDelta

    def __init__(self, path: str, before: str | None, after: str | TextDelta) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "before", before)
        object.__setattr__(self, "_after", after)

    @property
    def after(self) -> str:
        after = self._after
        return after if isinstance(after, str) else after.apply(self.before or "")

    @property
    def is_new(self) -> bool:
        return self.before is None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileChange):
            return NotImplemented
        return (self.path, self.before, self.after) == (other.path, other.before, other.after)

    def __hash__(self) -> int:
        return hash((self.path, self.before, self.after))

    def __repr__(self) -> str:
        return f"FileChange(path={self.path!r}, before={self.before!r}, after={self.after!r})"


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """The edits of one merge request."""

    key: str
    """Stable identity, used as the branch name after the configured prefix."""
    title: str
    family: str
    risk: Risk
    fixes: tuple[PlannedFix, ...]
    files: tuple[FileChange, ...] = ()
    unresolved: tuple[Unfixable, ...] = ()
    """Findings on the same resources that this change could not fix."""
    notes: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """The findings fixed, one per control, resource and container (as a merge request
        lists them)."""
        seen: dict[tuple[str, str, str], Finding] = {}
        for fix in self.fixes:
            seen.setdefault(fix.finding.identity, fix.finding)
        return tuple(seen.values())

    @property
    def fixed(self) -> tuple[Finding, ...]:
        """Every finding of the report this change set fixes: the same resource scanned in two
        overlays is two findings, one edit of their shared base."""
        return tuple(dict.fromkeys(fix.finding for fix in self.fixes))

    @property
    def is_waiver(self) -> bool:
        """Whether this change set records waivers (`bot.waivers`) rather than fixes."""
        return self.meta.get("kind") == "waiver"

    @property
    def controls(self) -> tuple[str, ...]:
        """The controls this change set fixes, or for a waiver change set those it waives."""
        findings = [u.finding for u in self.unresolved] if self.is_waiver else self.findings
        return tuple(sorted({f.control_id for f in findings}))

    @property
    def commit_message(self) -> str:
        """The message of the change set's commit."""
        if self.is_waiver:
            what = f"Waive {', '.join(self.controls)} (reasons in .remedy.yaml)"
        else:
            # not "Fixes C-0016": GitLab's Jira integration reads that as closing an issue
            what = f"Controls: {', '.join(self.controls)}"
        return f"{self.title}\n\n{what}. Generated by kube-remedy."

    @property
    def findings_hash(self) -> str:
        """Hash of the findings and of the resulting file contents: changes when either does."""
        payload = {
            "findings": sorted("|".join(f.identity) for f in self.findings),
            "files": {c.path: hashlib.sha256(c.after.encode()).hexdigest() for c in self.files},
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
