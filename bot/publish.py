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
from bot.render import MR_TEMPLATE, check_template, describe_change_set
from bot.repo_config import RepoConfig
from bot.resolution import change_set_marker, resolved_by
from bot.score import framework_label, framework_scores
from bot.sources.base import Report
from bot.template_sandbox import TemplateRefused

log = logging.getLogger(__name__)
TEMPLATE_OVERRIDE = f".remedy/templates/{MR_TEMPLATE}"


def change_set_scores(report: Report, change_set: ChangeSet) -> dict[str, tuple[float, float]]:
    """Per framework: the score now and the score if this change set is merged."""
    before = framework_scores(report)
    after = framework_scores(report, {f.identity for f in change_set.findings})
    return {framework_label(fw): (before[fw], after.get(fw, before[fw])) for fw in before}


def labels_for(config: RepoConfig, change_set: ChangeSet) -> list[str]:
    severities = sorted({f.severity.label.lower() for f in change_set.findings})
    return [*config.labels, *change_set.controls, *(f"severity::{s}" for s in severities[-1:])]


class Descriptions:
    """The merge-request description of each change set of a plan, rendered once per change set:
    with cd-config's template overrides (in the sandbox) when they render and keep the marker,
    otherwise with the built-in templates, so a repository's template never fails a run."""

    def __init__(
        self,
        report: Report,
        *,
        bot_username: str = "kube-remedy",
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.report = report
        self.bot_username = bot_username
        self.overrides: dict[str, str] = dict(overrides or {})
        self._rendered: dict[str, tuple[ChangeSet, str]] = {}

    def _render(self, change_set: ChangeSet, templates: Mapping[str, str] | None) -> str:
        return describe_change_set(
            change_set,
            marker=change_set_marker(change_set),
            bot_username=self.bot_username,
            scores=change_set_scores(self.report, change_set),
            overrides=templates,
        )

    def check(self, change_sets: Sequence[ChangeSet]) -> str | None:
        """Try the overrides on the first change set (with none, compile them): None when they
        are used, else why not (they are dropped for every change set of the plan)."""
        if not self.overrides:
            return None
        try:
            if not change_sets:
                for name, text in self.overrides.items():
                    check_template(text, name)
            for change_set in change_sets[:1]:
                change_set = plain_title(change_set)
                text = self._render(change_set, self.overrides)
                if change_set_marker(change_set) not in text:
                    # without the marker the bot would lose track of its merge requests
                    return self._drop(f"{TEMPLATE_OVERRIDE}: must output {{{{ marker }}}}")
                self._rendered[change_set.key] = (change_set, text)
        except TemplateRefused as exc:
            where = f" (line {exc.lineno})" if exc.lineno else ""
            return self._drop(f"{TEMPLATE_OVERRIDE}{where}: {exc}".replace("\n", " "))
        except Exception as exc:  # a repository's template must never fail the run
            return self._drop(f"{TEMPLATE_OVERRIDE}: {exc}".replace("\n", " "))
        return None

    def _drop(self, why: str) -> str:
        self.overrides = {}
        self._rendered.clear()
        return why

    def __call__(self, change_set: ChangeSet) -> str:
        change_set = plain_title(change_set)
        done = self._rendered.get(change_set.key)
        if done is not None and done[0] == change_set:
            return done[1]
        text = None
        if self.overrides:
            try:
                text = self._render(change_set, self.overrides)
                if change_set_marker(change_set) not in text:
                    log.warning("template override for %s lost the marker", change_set.key)
                    text = None
            except Exception as exc:  # a repository's template never fails a run
                log.warning("template override failed for %s: %s", change_set.key, clean(exc))
        if text is None:
            text = self._render(change_set, None)
        self._rendered[change_set.key] = (change_set, text)
        return text


def plain_title(change_set: ChangeSet) -> ChangeSet:
    """The change set with a single-line plain-text title (`bot.markdown.single_line`)."""
    title = single_line(change_set.title)
    return change_set if title == change_set.title else replace(change_set, title=title)


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
    descriptions: Descriptions | None = None,
    limits: bool = True,
    only: frozenset[str] | None = None,
) -> SyncResult:
    """Create, update, leave or close the bot's merge requests so they match ``plan``.

    ``overrides`` are cd-config's templates by name, rendered in the sandbox; one that fails or
    exceeds a bound for a change set falls back to the built-in template rather than failing
    the run. ``descriptions`` (instead of ``overrides``): the plan's `Descriptions`, whose
    renderings are reused. Titles are made single-line plain text (`bot.markdown.single_line`)
    here, the one door between a plan and the forge. ``limits=False`` (local mode, where
    nobody's review queue fills up) proposes every change set at once."""
    describe = descriptions or Descriptions(report, bot_username=bot_username, overrides=overrides)
    # Titles (and the commit subjects built from them) are plain text: one line, no mention.
    change_sets = [plain_title(cs) for cs in plan.change_sets]
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
