"""The validated records of a finding: `Finding` and the `ResourceRef`, `SourceHint` and
`FixHint` it holds (pydantic dataclasses).

Their home is `fixers.model`, which loads this module (and pydantic) when one of them is first
asked for: discovering the fixers, which name a finding only in annotations, imports no pydantic
(``remedy explain`` and ``remedy controls`` start in a fraction of the time).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic.dataclasses import dataclass as validated_dataclass

from fixers.model import CONTROL_ID, Severity

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
