"""One run of `bot.service` against the GitLab emulator does each thing once: each description
rendered once (the template override's trial included), merge requests listed once (the run's
own writes kept on the listing), with the same merge requests and writes as before."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot import publish, service
from bot.service import (
    open_forge,
    plan_project,
    plan_run,
    render_dashboard,
    run_project_once,
    sync_planned,
)
from bot.settings import ProjectConfig, Settings
from tests.gitlab_emulator import GitLabEmulator
from tests.test_gitlab_run import PROJECT, REPORT, changed_report, example_files

TEMPLATE = "Custom {{ cs.title }}\n{{ marker }}\n"


@pytest.fixture
def settings(gitlab_emulator: GitLabEmulator, tmp_path: Path) -> Settings:
    files = example_files()
    files[".remedy/templates/merge_request.md.j2"] = TEMPLATE
    pid = gitlab_emulator.create_project(PROJECT, files)
    gitlab_emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": REPORT.read_bytes()}}
    )
    return Settings(
        gitlab_url=gitlab_emulator.url,
        gitlab_token=SecretStr(gitlab_emulator.token),
        data_dir=tmp_path / "data",
        projects=(ProjectConfig(id=PROJECT),),
    )


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Change set key -> how many times its description was rendered."""
    counted: Counter[str] = Counter()
    real = publish.describe_change_set

    def counting(change_set: Any, **kwargs: Any) -> str:
        counted[change_set.key] += 1
        return real(change_set, **kwargs)

    monkeypatch.setattr(publish, "describe_change_set", counting)
    # anywhere else the service might render one (it used to trial-render the override itself)
    monkeypatch.setattr(service, "describe_change_set", counting, raising=False)
    return counted


def test_each_description_is_rendered_once_the_override_trial_included(
    gitlab_emulator: GitLabEmulator, settings: Settings, renders: Counter[str]
) -> None:
    summary = run_project_once(settings, settings.projects[0])
    assert not summary.failed, summary.lines()
    created = [d for d in summary.result.decisions if d.action == "created"]
    assert len(created) > 1
    assert all(d.change is not None for d in created)
    overridden = [d for d in created if d.change and d.change.description.startswith("Custom ")]
    assert overridden, "the override is used"
    assert set(renders.values()) == {1}, renders
    (dashboard,) = gitlab_emulator.issues(1)
    assert "template override was not used" not in dashboard["description"]


def test_worker_path_renders_each_description_once_per_process(
    gitlab_emulator: GitLabEmulator, settings: Settings, renders: Counter[str]
) -> None:
    project = settings.projects[0]
    run = plan_run(settings, project)
    assert len(run.pending) > 1
    for key, digest in run.pending:
        decision = sync_planned(settings, project, run.inputs, key, digest)
        assert decision is not None and decision.action == "created"
    # the run task's dry run rendered them; its sync tasks (same process) reuse the plan
    assert set(renders.values()) == {1}, renders


def _listings(emulator: GitLabEmulator) -> int:
    return sum(
        1
        for method, path in emulator.requests
        if method == "GET" and path.split("?")[0].endswith("/merge_requests")
    )


def test_merge_requests_are_listed_once_per_run_and_the_dashboard_matches_a_fresh_listing(
    gitlab_emulator: GitLabEmulator, settings: Settings
) -> None:
    project = settings.projects[0]
    first = run_project_once(settings, project)
    assert not first.failed and first.result.by_action("created")

    # a changed report: one MR updated, one closed as resolved; a person closes another
    gitlab_emulator.add_pipeline(
        1, "main", {"kubescape": {"kubescape-results.json": changed_report()}}
    )
    mrs = gitlab_emulator.merge_requests(1)
    target = next(m for m in mrs if m["source_branch"].startswith("remedy/network-policy/"))
    gitlab_emulator.add_user("alice")
    gitlab_emulator.close_as(1, target["iid"], by="alice")

    gitlab_emulator.reset_counts()
    second = run_project_once(settings, project)
    assert not second.failed, second.lines()
    assert {"updated", "closed", "ignored"} <= {d.action for d in second.result.decisions}
    assert _listings(gitlab_emulator) == 1, "one listing per run, its writes kept on it"

    # what the run wrote on the dashboard is what a fresh listing gives
    (dashboard,) = gitlab_emulator.issues(1)
    forge = open_forge(settings, project)
    fresh = render_dashboard(
        plan_project(settings, project),
        list(forge.find_changes()),
        second.result,
        settings.branch_prefix,
    )
    assert dashboard["description"] == fresh
