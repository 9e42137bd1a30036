"""Publish a plan through a forge: one branch, one commit and one merge request per change set.

The merge-request lifecycle itself is `bot.lifecycle` (GitLab and local mode alike); this module
adapts a `Plan` to it: labels, reviewers, and each description rendered with the compliance
score the change buys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from bot.forge.base import Forge
from bot.lifecycle import SyncDecision, SyncResult, SyncSettings, sync_changes
from bot.markdown import clean, single_line
from bot.model import ChangeSet
from bot.plan import Plan
from bot.render import describe_change_set
from bot.repo_config import RepoConfig
from bot.resolution import change_set_marker, resolved_by
from bot.score import framework_label, framework_scores
from bot.sources.base import Report

log = logging.getLogger(__name__)


def change_set_scores(report: Report, change_set: ChangeSet) -> dict[str, tuple[float, float]]:
    """Per framework: the score now and the score if this change set is merged."""
    before = framework_scores(report)
    after = framework_scores(report, {f.identity for f in change_set.findings})
    return {framework_label(fw): (before[fw], after.get(fw, before[fw])) for fw in before}


def labels_for(config: RepoConfig, change_set: ChangeSet) -> list[str]:
    severities = sorted({f.severity.label.lower() for f in change_set.findings})
    return [*config.labels, *change_set.controls, *(f"severity::{s}" for s in severities[-1:])]


def publish_plan(
    forge: Forge,
    plan: Plan,
    report: Report,
    config: RepoConfig,
    *,
    bot_username: str = "kube-remedy",
    branch_prefix: str = "remedy/",
    reviewers: Callable[[ChangeSet], Sequence[str]] | None = None,
    close_missing: bool = True,
    requested: frozenset[str] = frozenset(),
    overrides: Mapping[str, str] | None = None,
    limits: bool = True,
    only: frozenset[str] | None = None,
) -> SyncResult:
    """Create, update, leave or close the bot's merge requests so they match ``plan``.

    ``overrides`` are cd-config's templates by name, rendered in the sandbox; one that fails or
    exceeds a bound for a change set falls back to the built-in template rather than failing
    the run. Titles are made single-line plain text (`bot.markdown.single_line`) here, the one
    door between a plan and the forge. ``limits=False`` (local mode, where nobody's review
    queue fills up) proposes every change set at once."""

    def describe(change_set: ChangeSet) -> str:
        def render(templates: Mapping[str, str] | None) -> str:
            return describe_change_set(
                change_set,
                marker=change_set_marker(change_set),
                bot_username=bot_username,
                scores=change_set_scores(report, change_set),
                overrides=templates,
            )

        if overrides:
            try:
                text = render(overrides)
                if change_set_marker(change_set) in text:
                    return text
                log.warning("template override for %s lost the marker", change_set.key)
            except Exception as exc:  # a repository's template never fails a run
                log.warning("template override failed for %s: %s", change_set.key, clean(exc))
        return render(None)

    # Titles (and the commit subjects built from them) are plain text: one line, no mention.
    change_sets = [replace(cs, title=single_line(cs.title)) for cs in plan.change_sets]
    settings = SyncSettings(
        branch_prefix=branch_prefix,
        max_open=config.limits.max_open if limits else None,
        max_new_per_hour=config.limits.max_new_per_hour if limits else None,
        schedule=tuple(config.limits.schedule) if limits else (),
        labels=tuple(config.labels),
    )
    return sync_changes(
        forge,
        change_sets,
        describe=describe,
        labels=lambda cs: labels_for(config, cs),
        reviewers=reviewers,
        settings=settings,
        close_missing=close_missing,
        requested=requested,
        resolved=resolved_by(report),
        only=only,
    )


def summarize(decisions: Sequence[SyncDecision]) -> str:
    counts: dict[str, int] = {}
    for decision in decisions:
        counts[decision.action] = counts.get(decision.action, 0) + 1
    return ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing to do"
