"""The first README command: `remedy demo` runs the main job on the shipped example."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.cli import main
from bot.forge.local import LocalForge


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_demo_creates_branches_and_descriptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--into", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1  # RBAC and probes are left to people: a CI gate would fail
    repo = tmp_path / "cd-config"
    branches = git(repo, "branch", "--list", "remedy/*", "--format=%(refname:short)").split()
    assert "remedy/resources/apps-shop-frontend" in branches
    # local mode has no rate limits: every change set gets its branch
    assert "remedy/security-context/apps-shop-frontend" in branches
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(repo, "status", "--porcelain") == ""
    # each branch is one commit on main, by the bot
    for branch in branches:
        assert git(repo, "rev-list", "--count", f"main..{branch}") == "1"
        assert git(repo, "log", "-1", "--format=%an", branch) == "kube-remedy"
    diff = git(repo, "diff", "main", "remedy/resources/apps-shop-frontend")
    assert "+              memory: 512Mi" in diff
    added = [x for x in diff.splitlines() if x.startswith("+") and not x.startswith("+++")]
    removed = [x for x in diff.splitlines() if x.startswith("-") and not x.startswith("---")]
    assert (len(added), removed) == (3, [])  # only the lines the fix needs
    assert "held-back" not in out  # local mode: no limits
    assert "## " not in out or "### Failed controls" in out
    forge = LocalForge(repo)
    changes = forge.find_changes()
    assert changes and all(c.state == "opened" for c in changes)
    fix = next(c for c in changes if "/waivers/" not in c.branch)
    text = forge.description_path(fix).read_text()
    assert "<!-- kube-remedy:" in text and "### Diff" in text
    # the node agent's host access and the job's explicit root user are waived, not fixed
    (waiver,) = [c for c in changes if c.branch.endswith("/waivers/remedy-yaml")]
    text = forge.description_path(waiver).read_text()
    assert "DaemonSet monitoring/node-agent" in text and "legacy: writes to /var/reports" in text


def test_apply_again_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--into", str(tmp_path)])
    repo = tmp_path / "cd-config"
    before = git(repo, "for-each-ref", "refs/heads")
    examples = Path(__file__).resolve().parent.parent / "examples"
    capsys.readouterr()
    main(["apply", "--report", str(examples / "kubescape-report.json"), "--repo", str(repo)])
    out = capsys.readouterr().out
    assert "created remedy/" not in out and "updated remedy/" not in out
    assert "unchanged remedy/resources/apps-shop-frontend" in out
    assert "held-back" not in out
    assert git(repo, "for-each-ref", "refs/heads") == before
