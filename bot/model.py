"""The bot's own domain values: where an edit goes, what one merge request changes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fixers.model import AnyEdit, Finding, Risk

LocationKind = Literal["manifest", "helm-values", "helm-template", "new-file"]


@dataclass(frozen=True)
class Location:
    """A place in cd-config to edit: a manifest document, a Helm values file, or a template."""

    kind: LocationKind
    path: str
    """Repository-relative POSIX path."""
    document_index: int = 0
    chart: str | None = None
    """Chart directory (repository-relative) for Helm locations."""
    values_prefix: tuple[str | int, ...] = ()
    """For helm-values: key path of the subchart/component the edits are relative to."""
    why: str = ""
    """One sentence for the MR: why this file (e.g. values precedence)."""


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class FileChange:
    """One file of a change set: its content before (None for a new file) and after."""

    path: str
    before: str | None
    after: str

    @property
    def is_new(self) -> bool:
        return self.before is None


@dataclass(frozen=True)
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
        seen: dict[tuple[str, str, str], Finding] = {}
        for fix in self.fixes:
            seen.setdefault(fix.finding.identity, fix.finding)
        return tuple(seen.values())

    @property
    def controls(self) -> tuple[str, ...]:
        return tuple(sorted({f.control_id for f in self.findings}))

    @property
    def findings_hash(self) -> str:
        """Hash of the findings and of the resulting file contents: changes when either does."""
        payload = {
            "findings": sorted("|".join(f.identity) for f in self.findings),
            "files": {c.path: hashlib.sha256(c.after.encode()).hexdigest() for c in self.files},
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
