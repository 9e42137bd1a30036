"""End to end against the GitLab emulator: CODEOWNERS reviewers and a per-repository MR template."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.lifecycle import parse_marker
from tests.gitlab_emulator import GitLabEmulator
from tests.test_gitlab_run import PROJECT, REPORT, bot_mrs, example_files, run

FRONTEND = "remedy/security-context/apps-shop-frontend"
DEVELOPER = 30


def _project(
    emulator: GitLabEmulator, files: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    pid = emulator.create_project(PROJECT, files)
    emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": REPORT.read_bytes()}}
    )
    monkeypatch.setenv("REMEDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REMEDY_CONFIG", raising=False)
    return pid


def _reviewers(emulator: GitLabEmulator, pid: int, branch: str) -> list[str]:
    mr = next(m for m in bot_mrs(emulator, pid) if m["source_branch"] == branch)
    return [r["username"] for r in mr["reviewers"]]


def test_codeowners_user_is_reviewer_and_groups_are_skipped(
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = example_files()
    files[".gitlab/CODEOWNERS"] = (
        "* @fallback\n[Shop] @platform/web-group\n/apps/shop/ @alice @platform/web-group\n"
    )
    del files["CODEOWNERS"]  # the root file would win over .gitlab/
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    for name in ("alice", "fallback"):
        gitlab_emulator.add_member(pid, gitlab_emulator.add_user(name), DEVELOPER)
    run(gitlab_emulator, capsys)
    assert _reviewers(gitlab_emulator, pid, FRONTEND) == ["fallback", "alice"]
    monitoring = [
        m["source_branch"]
        for m in bot_mrs(gitlab_emulator, pid)
        if "apps-monitoring" in m["source_branch"]
    ]
    assert monitoring and all(
        _reviewers(gitlab_emulator, pid, b) == ["fallback"] for b in monitoring
    )
    # Every owner is looked up once per run, however many MRs name them: fallback, alice and
    # platform/web-group (not a user, so not a reviewer).
    lookups = [p for m, p in gitlab_emulator.requests if m == "GET" and p == "/api/v4/users"]
    assert len(bot_mrs(gitlab_emulator, pid)) > 3 and len(lookups) == 3


def test_teams_in_remedy_yaml_when_codeowners_has_no_owner(
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = example_files()
    del files["CODEOWNERS"]
    files[".remedy.yaml"] += "teams:\n  apps/shop/**: ['@bob']\n"
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    gitlab_emulator.add_member(pid, gitlab_emulator.add_user("bob"), DEVELOPER)
    run(gitlab_emulator, capsys)
    assert _reviewers(gitlab_emulator, pid, FRONTEND) == ["bob"]


def test_repository_template_override_is_used(
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = example_files()
    files[".remedy/templates/merge_request.md.j2"] = (
        "Security fix for {{ cs.title }} (ACME change policy 7).\n\n{{ marker }}\n"
    )
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    run(gitlab_emulator, capsys)
    mrs = bot_mrs(gitlab_emulator, pid)
    # the override replaces the fix template; the waiver MR keeps its own (waiver.md.j2)
    fixes = [m for m in mrs if "/waivers/" not in m["source_branch"]]
    assert fixes and all(m["description"].startswith("Security fix for ") for m in fixes)
    assert all(parse_marker(m["description"]) for m in mrs)
    (dashboard,) = gitlab_emulator.issues(pid)
    assert "template override was not used" not in dashboard["description"]
    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ cs.no_such_field }}\n{{ marker }}\n", "no_such_field"),
        ("{% if %}\n", "line 1"),
        ("A template that forgot the marker.\n", "must output"),
        ("{{ cs.title + 1 }}\n{{ marker }}\n", "str"),
    ],
)
def test_invalid_template_override_falls_back_and_is_reported(
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    template: str,
    why: str,
) -> None:
    files = example_files()
    files[".remedy/templates/merge_request.md.j2"] = template
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    run(gitlab_emulator, capsys)
    mrs = bot_mrs(gitlab_emulator, pid)
    assert mrs and all(parse_marker(m["description"]) for m in mrs)
    assert all("## " in m["description"] for m in mrs)  # the built-in template's headings
    (dashboard,) = gitlab_emulator.issues(pid)
    text = dashboard["description"]
    assert "template override was not used" in text and why.replace("_", "\\_") in text
