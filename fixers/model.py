"""The contract between finding sources, fixers and the applier.

- `Finding`: one failed control on one resource (and container), canonical Kubescape id; it
  and the records it holds are pydantic dataclasses in `fixers.records`, loaded on first use.
- Edits (`Set`, `Ensure`, `Remove`, `AppendUnique`, `CreateManifest`): data, at a YAML path
  relative to the document (or values file) they apply to. Only `fixers.edits` applies them.
- Results: `Fixed(edits, notes)`, `AlreadyCompliant()`, `NeedsHuman(reason)`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fixers.records import Finding as Finding
    from fixers.records import FixHint as FixHint
    from fixers.records import ResourceRef as ResourceRef
    from fixers.records import SourceHint as SourceHint

YamlPath = tuple[str | int, ...]
"""A path into a YAML document: mapping keys (str) and sequence indices (int)."""

CONTROL_ID = re.compile(r"^C-\d{4}$")


class Severity(enum.IntEnum):
    """Kubescape's severity scale (scoreFactor bands)."""

    UNKNOWN = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: object) -> Severity:
        """Read a severity from a name ('High'), a Kubescape scoreFactor (float) or an int."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                return cls.UNKNOWN
        if isinstance(value, int | float) and not isinstance(value, bool):
            # Kubescape: scoreFactor 1-3 low, 4-6 medium, 7-8 high, 9-10 critical.
            score = float(value)
            if score >= 9:
                return cls.CRITICAL
            if score >= 7:
                return cls.HIGH
            if score >= 4:
                return cls.MEDIUM
            if score > 0:
                return cls.LOW
        return cls.UNKNOWN

    @property
    def label(self) -> str:
        return self.name.capitalize()


class Risk(enum.IntEnum):
    """How likely a fix is to change the behaviour of the workload it is applied to."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


# --------------------------------------------------------------------------- edits


@dataclass(frozen=True, slots=True)
class Set:
    """Set ``path`` to ``value``, creating missing parent mappings."""

    path: YamlPath
    value: Any
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Ensure:
    """Set ``path`` to ``value`` only when ``path`` is absent; an existing value is kept."""

    path: YamlPath
    value: Any
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Remove:
    """Delete the key (or sequence item) at ``path``; absent is fine."""

    path: YamlPath
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class AppendUnique:
    """Append ``value`` to the sequence at ``path`` (created when missing) unless present.

    With ``key``, items are mappings and an item with the same ``value[key]`` counts as present
    (e.g. volumes by ``name``).
    """

    path: YamlPath
    value: Any
    key: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class CreateManifest:
    """A new Kubernetes manifest, written by the locator next to the workload's own file."""

    name: str
    document: Mapping[str, Any]
    comment: str | None = None


Edit = Set | Ensure | Remove | AppendUnique
AnyEdit = Edit | CreateManifest


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Fixed:
    """The fixer knows what to change: ``edits`` (applied in order) and notes for reviewers."""

    edits: tuple[AnyEdit, ...]
    notes: tuple[str, ...] = ()
    values_used: tuple[str, ...] = field(default=())
    """Where judgement values came from (e.g. 'memory limit 256Mi: policy default')."""


@dataclass(frozen=True, slots=True)
class AlreadyCompliant:
    """Nothing to change: the resource already satisfies the control."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class NeedsHuman:
    """The fixer declines: a person must decide. ``reason`` says why, in one sentence."""

    reason: str


Result = Fixed | AlreadyCompliant | NeedsHuman


_RECORDS = frozenset({"Finding", "FixHint", "ResourceRef", "SourceHint"})


def __getattr__(name: str) -> Any:
    """The finding records (`fixers.records`), loaded with pydantic on first use."""
    if name in _RECORDS:
        from fixers import records

        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
