"""Prove a fix before proposing it: re-read the result and re-check the failing control.

A change that does not verify is not proposed; the finding goes to the unfixable list with the
reason. Checks: the edited file still parses (and a chart still renders: the Helm target's
``reread`` re-renders), the workload still validates against the Kubernetes schema where a
schema package is installed, and the fixer that proposed the change now answers
AlreadyCompliant for the same finding (the bot's own check for that control).
"""

from __future__ import annotations

from bot.locate.base import FileOverlay, Target
from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Finding
from fixers.policy import FixContext
from fixers.registry import run_fixer


def verify_fix(
    target: Target, overlay: FileOverlay, fixer: Fixer, finding: Finding, ctx: FixContext
) -> str | None:
    """None when the edited overlay fixes ``finding``; else the one-line reason it does not."""
    view = target.reread(overlay)
    if isinstance(view, str):
        return f"the edited file does not verify: {view}"
    again = run_fixer(fixer, view, finding, ctx)
    if not isinstance(again, AlreadyCompliant):
        detail = getattr(again, "reason", "") or "it proposes more edits"
        return f"{finding.control_id} still fails after the edit ({detail})"
    return None
