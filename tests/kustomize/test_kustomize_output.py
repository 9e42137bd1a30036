"""`remedy plan` and the merge request name the file a Kustomize fix edits and every overlay
whose rendered output it changes."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from bot import cli
from bot.plan import build_plan
from bot.render import describe_change_set
from bot.sources import load_report

REPOS = Path(__file__).parent / "repos"
REPORT = REPOS / "staging-checkov.json"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(REPOS / "shop", tmp_path / "repo")
    return tmp_path / "repo"


def test_plan_table_shows_the_patch_and_the_overlays_it_changes(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=screen, width=200, highlight=False))
    cli.main(["plan", "--report", str(REPORT), "--repo", str(repo)])
    text = screen.getvalue()
    assert "overlays/staging/remedy-patch-deployment-web.yaml (new)" in text
    assert "changes overlays: overlays/staging" in text
    assert "base/deployment.yaml" not in text


def test_merge_request_lists_overlays_with_their_rendered_diff(repo: Path) -> None:
    plan = build_plan(load_report(REPORT), repo)
    (cs,) = plan.change_sets
    text = describe_change_set(cs, marker="<!-- kube-remedy -->")
    section = text.split("### Kustomize overlays whose rendered output changes", 1)[1]
    assert "`overlays/staging`" in section.split("###", 1)[0]
    assert "+          allowPrivilegeEscalation: false" in section
    assert "overlays/staging (rendered, after)" in section
