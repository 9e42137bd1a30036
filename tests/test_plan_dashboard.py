"""The dashboard issue shows where every finding ended, like `remedy plan` does."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.plan import build_plan
from bot.repo_config import parse_repo_config
from bot.service import ProjectPlan, render_dashboard
from bot.sources import load_report
from bot.sources.base import Skipped
from fixers.intent import WAIVE_PREFIX

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_every_finding_ends_visible_on_the_dashboard(tmp_path: Path) -> None:
    repo = tmp_path / "cd-config"
    shutil.copytree(EXAMPLES / "cd-config", repo)
    report = load_report(EXAMPLES / "kubescape-report.json")
    unmapped = Skipped("CKV_K8S_999 on Deployment/shop/frontend", "no equivalent control")
    report = type(report)(report.scanner, report.origin, report.findings, (unmapped,))
    config = parse_repo_config((repo / ".remedy.yaml").read_text(encoding="utf-8"))
    merged = build_plan(report, repo, config).change_sets[0]  # a merged MR: compliant now
    for change in merged.files:
        (repo / change.path).write_text(change.after, encoding="utf-8")
    plan = build_plan(report, repo, config)
    text = render_dashboard(ProjectPlan("shop/cd-config", plan, report, config), [])

    waived = [u for u in plan.unfixable if u.category == "ignored" or WAIVE_PREFIX in u.reason]
    not_fixed = [u for u in plan.unfixable if u not in waived]
    assert waived and not_fixed and plan.already_compliant  # the example has each outcome
    total = len(plan.fixed_findings) + len(waived) + len(not_fixed) + len(plan.already_compliant)
    assert total == len(plan.findings)
    assert (
        f"{len(plan.findings)} findings: {len(plan.fixed_findings)} fixed in the change sets "
        f"above, {len(waived)} waived or ignored, {len(not_fixed)} not fixed, "
        f"{len(plan.already_compliant)} already compliant in the repository; 1 scanner"
    ) in text
    assert f"## Waived or ignored ({len(waived)})" in text
    assert f"## Not fixed ({len(not_fixed)})" in text
    assert f"## Already compliant in the repository ({len(plan.already_compliant)})" in text
    assert "## Scanner results that map to no control (1)" in text
    assert "CKV\\_K8S\\_999" in text or "CKV_K8S_999" in text
    waived_part = text.split("## Waived or ignored", 1)[1].split("## Not fixed", 1)[0]
    assert "ignored by .remedy.yaml: redis writes its append-only file" in waived_part
    assert "DaemonSet monitoring/node-agent" in waived_part
    compliant_part = text.split("## Already compliant", 1)[1]
    for f in plan.already_compliant:
        assert f"**{f.control_id}** {f.resource}" in compliant_part
