"""What every finding source produces.

A source module in `bot.sources` defines ``FORMAT`` (its name), ``sniff(data) -> bool`` (is this
parsed document my format?) and ``parse(data, origin) -> Report``. `bot.sources.load_report`
detects the format and dispatches; sources are discovered by a package walk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fixers.model import Finding


@dataclass(frozen=True)
class Skipped:
    """A result the source read but could not turn into a finding, with the reason."""

    what: str
    reason: str


@dataclass(frozen=True)
class Report:
    """The findings of one scan, in canonical Kubescape control ids."""

    scanner: str
    origin: str
    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...] = ()
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Resource objects embedded in the report, by ``ResourceRef.key`` (Kubescape has them)."""
    summary: Mapping[str, Any] = field(default_factory=dict)
    """Scanner-reported totals, e.g. framework scores, for comparison."""
