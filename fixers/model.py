"""The contract between finding sources, fixers and the applier.

- `Finding`: one failed control on one resource (and container), canonical Kubescape id.
- Edits (`Set`, `Ensure`, `Remove`, `AppendUnique`, `CreateManifest`): data, at a YAML path
  relative to the document (or values file) they apply to. Only `fixers.edits` applies them.
- Results: `Fixed(edits, notes)`, `AlreadyCompliant()`, `NeedsHuman(reason)`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic.dataclasses import dataclass as validated_dataclass

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


_RECORD = ConfigDict(extra="forbid", defer_build=True)
"""Config of the validated, immutable, slotted records below (the decorator is spelled out at each
class so type checkers see a dataclass): a report holds one `Finding` per failed control and
resource, so a finding must cost a few hundred bytes, not a pydantic model's ~1.2 KB (its
per-instance ``__dict__`` and fields-set). Copy with `dataclasses.replace` (it re-validates);
read JSON with ``pydantic.TypeAdapter(Finding)``. Validators are built when the first record is
made, not at import: ``remedy explain`` and a plan of an empty report make none."""


@validated_dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class ResourceRef:
    """A Kubernetes object as a scanner names it."""

    api_version: str = ""
    kind: str
    namespace: str | None = None
    name: str

    @property
    def key(self) -> str:
        """Stable, human-readable identity: ``Kind/namespace/name`` (namespace may be empty)."""
        return f"{self.kind}/{self.namespace or ''}/{self.name}"

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


@validated_dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class SourceHint:
    """Where the scanner says the resource came from (all optional, advice for the locator)."""

    path: str | None = None
    document_index: int | None = None
    chart_path: str | None = None
    line: int | None = None


@validated_dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class FixHint:
    """A scanner's own suggestion (Kubescape fixPath/failedPath/reviewPath/deletePath).

    Advice only: fixers decide from the resource itself; hints help pick the container and
    are shown to reviewers.
    """

    kind: Literal["fix", "failed", "review", "delete"]
    path: str
    value: str | None = None
    placeholder: bool = False
    """The scanner gave a placeholder (``YOUR_VALUE``), not a value: ``value`` is then None."""


@validated_dataclass(frozen=True, slots=True, kw_only=True, config=_RECORD)
class Finding:
    """One failed control on one resource, in canonical Kubescape terms."""

    control_id: str
    scanner: str = "kubescape"
    scanner_ids: tuple[str, ...] = ()
    severity: Severity = Severity.UNKNOWN
    resource: ResourceRef
    container: str | None = None
    source: SourceHint = field(default_factory=SourceHint)
    hints: tuple[FixHint, ...] = ()
    message: str = ""

    @field_validator("control_id")
    @classmethod
    def _canonical(cls, value: str) -> str:
        if CONTROL_ID.fullmatch(value):
            return value  # the reader's string, which its findings share
        value = value.strip().upper()
        if not CONTROL_ID.match(value):
            raise ValueError(f"not a canonical Kubescape control id: {value!r} (want C-NNNN)")
        return value

    @field_validator("scanner_ids", "hints", mode="wrap")
    @classmethod
    def _shared(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        """A tuple of exactly the item type is valid as it is: the finding keeps it, so equal
        tuples a reader shares across its findings stay one (validating copies a tuple)."""
        item = str if info.field_name == "scanner_ids" else FixHint
        if type(value) is tuple and all(type(v) is item for v in value):
            return value
        return handler(value)

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes two findings the same, whichever scanner reported them."""
        return (self.control_id, self.resource.key, self.container or "")


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
