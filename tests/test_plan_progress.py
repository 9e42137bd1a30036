"""The planning progress counts findings as they are settled, through the fixing phase: it
reaches its total only when the last batch is fixed and verified, never while locating."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import plan as plan_module
from bot.plan import build_plan
from bot.sources import load_report

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_progress_follows_the_fixes_not_the_locating(monkeypatch: pytest.MonkeyPatch) -> None:
    report = load_report(EXAMPLES / "kubescape-report.json")
    told: list[tuple[int, int]] = []
    at_each_batch: list[tuple[int, int]] = []
    real = plan_module.Planner.fix_batch

    def fix_batch(self: plan_module.Planner, *args: object) -> None:
        at_each_batch.append(told[-1] if told else (0, 0))
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(plan_module.Planner, "fix_batch", fix_batch)
    plan = build_plan(
        report, EXAMPLES / "cd-config", progress=lambda done, total: told.append((done, total))
    )
    assert plan.change_sets and len(at_each_batch) > 1
    settled = [done for done, _ in told]
    assert settled == sorted(settled)  # never goes back
    total = told[-1][1]
    assert told[-1] == (total, total)
    assert all(done < total for done, _ in at_each_batch)  # work left at every batch
    # every finding the plan accounts for was counted once
    assert total == len(plan.fixed_findings) + len(plan.unfixable) + len(plan.already_compliant)
