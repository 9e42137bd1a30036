"""The first README command: `remedy demo` runs the main job on the shipped example."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.cli import main
from bot.forge.local import LocalForge
from bot.plan import build_plan
from bot.repo_config import parse_repo_config
from bot.sources import load_report


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


def _table_controls(text: str) -> set[str]:
    table = text.split("### Failed controls", 1)[1].split("\n###", 1)[0]
    return set(re.findall(r"^\| \*\*(C-\d{4})\*\*", table, re.M))


def _affected(text: str) -> set[str]:
    section = text.split("### Affected resources", 1)[1].split("\n###", 1)[0]
    return {line[2:].strip() for line in section.splitlines() if line.startswith("- ")}


@pytest.mark.slow
def test_demo_merge_request_texts_are_true(tmp_path: Path) -> None:
    """Every demo MR text names no machine path, holds no placeholder, and names in its title
    and table only controls it fixes: with its branch's files the plan finds them compliant."""
    main(["demo", "--into", str(tmp_path / "demo")])
    repo = tmp_path / "demo" / "cd-config"
    report = load_report(
        Path(__file__).resolve().parent.parent / "examples" / "kubescape-report.json"
    )
    forge = LocalForge(repo)
    changes = forge.find_changes()
    assert len(changes) > 10
    for change in changes:
        text = forge.description_path(change).read_text(encoding="utf-8")
        for words in (change.title, text):
            assert str(tmp_path) not in words and str(tmp_path.resolve()) not in words
            assert "…" not in words and "-f …" not in words
        if change.branch.endswith("/waivers/remedy-yaml"):
            continue
        controls = _table_controls(text)
        assert controls, change.branch
        assert set(re.findall(r"C-\d{4}", change.title.rsplit("(", 1)[1])) == controls
        # the MR's files on a copy of main: each named control passes on each named resource
        merged = tmp_path / "merged" / change.branch.replace("/", "_")
        shutil.copytree(repo, merged, ignore=shutil.ignore_patterns(".git"))
        for path in git(repo, "diff", "--name-only", "main", change.branch).splitlines():
            (merged / path).write_text(git(repo, "show", f"{change.branch}:{path}") + "\n")
        plan = build_plan(report, merged, parse_repo_config((merged / ".remedy.yaml").read_text()))
        compliant = {(f.control_id, str(f.resource)) for f in plan.already_compliant}
        named = {
            (f.control_id, str(f.resource))
            for f in report.findings
            if f.control_id in controls and str(f.resource) in _affected(text)
        }
        assert named and named <= compliant, (change.branch, named - compliant)
