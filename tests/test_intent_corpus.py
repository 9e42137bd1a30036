"""Workload intent on real third-party workloads (tests/fixtures/intent/workloads.yaml): each
is fixed, waived or left to a person as labelled, and running again after merging every change
set (waivers included) changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.model import ChangeSet
from bot.plan import Plan, build_plan
from bot.repo_config import CONFIG_FILE, parse_repo_config
from bot.sources.base import Report
from fixers.intent import WAIVE_PREFIX
from fixers.model import Finding, ResourceRef, SourceHint
from tests.conftest import corpus_path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "intent" / "workloads.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))

pytestmark = pytest.mark.corpus


def _findings(case: dict[str, Any]) -> tuple[Finding, ...]:
    ref = ResourceRef(kind=case["kind"], namespace=case.get("namespace"), name=case["name"])
    return tuple(
        Finding(
            control_id=control,
            resource=ref,
            container=case.get("container"),
            source=SourceHint(path=case["file"]),
        )
        for control in case["expect"]
    )


def _plan(root: Path, findings: tuple[Finding, ...]) -> Plan:
    config_file = root / CONFIG_FILE
    config = parse_repo_config(config_file.read_text() if config_file.exists() else None)
    return build_plan(Report("kubescape", "intent fixture", findings), root, config)


def _waiver(plan: Plan) -> ChangeSet | None:
    return next((cs for cs in plan.change_sets if cs.meta.get("kind") == "waiver"), None)


def test_fixture_is_big_enough_and_labelled() -> None:
    assert len(CASES) >= 30
    assert len({c["id"] for c in CASES}) == len(CASES)
    for case in CASES:
        assert case["why"] and case["expect"]
        assert set(case["expect"].values()) <= {"fix", "waive", "human"}
    outcomes = {o for c in CASES for o in c["expect"].values()}
    assert outcomes == {"fix", "waive", "human"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_outcome_per_control(case: dict[str, Any], tmp_path: Path) -> None:
    source = corpus_path(*case["root"].split("/"))
    assert (source / case["file"]).is_file(), case["file"]
    findings = _findings(case)
    plan = _plan(source, findings)

    fixed = {
        f.identity
        for cs in plan.change_sets
        if cs.meta.get("kind") != "waiver"
        for f in cs.findings
    }
    waiver = _waiver(plan)
    waived = {u.finding.identity for u in waiver.unresolved} if waiver else set()
    left = {u.finding.identity: u for u in plan.unfixable}
    for finding in findings:
        want = case["expect"][finding.control_id]
        where = f"{case['id']} {finding.control_id}"
        if want == "fix":
            assert finding.identity in fixed, f"{where}: {left.get(finding.identity)}"
        elif want == "waive":
            assert finding.identity in waived, f"{where}: {left.get(finding.identity)}"
            assert left[finding.identity].reason.startswith(WAIVE_PREFIX)
            assert finding.identity not in fixed
        else:
            u = left.get(finding.identity)
            assert u is not None and finding.identity not in waived, where
            assert u.category == "needs-human", where
            assert case.get("reason_contains", "") in u.reason, u.reason
    # every change names only files inside the repository, with no absolute paths
    for cs in plan.change_sets:
        for change in cs.files:
            assert not change.path.startswith("/") and ".." not in change.path.split("/")

    # Merge every change set, one at a time (planning again after each), as reviewers would.
    repo = tmp_path / "repo"
    shutil.copytree(source, repo, symlinks=True)
    for _ in range(12):
        plan = _plan(repo, findings)
        if not plan.change_sets:
            break
        for change in plan.change_sets[0].files:
            target = repo / change.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(change.after, encoding="utf-8")
    again = _plan(repo, findings)
    assert again.change_sets == (), [cs.key for cs in again.change_sets]
    ignored = {u.finding.identity for u in again.unfixable if u.category == "ignored"}
    compliant = {f.identity for f in again.already_compliant}
    for finding in findings:
        want = case["expect"][finding.control_id]
        if want == "waive":
            assert finding.identity in ignored, finding.control_id
        elif want == "fix":
            assert finding.identity in compliant, finding.control_id
