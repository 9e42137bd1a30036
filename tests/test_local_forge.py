"""Local mode: branches with one commit each, working tree and HEAD untouched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.errors import ForgeConflictError, RepositoryError
from bot.forge.local import LocalForge


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "cd-config"
    (repo / "apps").mkdir(parents=True)
    (repo / "apps" / "a.yaml").write_text("kind: Pod\r\nmetadata:\r\n  name: a\r\n", newline="")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init")
    return repo


def test_commit_creates_branch_without_touching_worktree(repo: Path) -> None:
    forge = LocalForge(repo)
    (repo / "scratch.txt").write_text("uncommitted work\n")
    head_before = git(repo, "rev-parse", "HEAD")
    sha = forge.commit_files(
        "remedy/sec/a",
        {
            "apps/a.yaml": "kind: Pod\r\nmetadata:\r\n  name: a\r\nspec: {}\r\n",
            "apps/b.yaml": "x: 1\n",
        },
        "fix a",
        start_branch="main",
    )
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert (repo / "scratch.txt").read_text() == "uncommitted work\n"
    assert git(repo, "status", "--porcelain") == "?? scratch.txt"
    assert git(repo, "rev-parse", "remedy/sec/a") == sha
    assert git(repo, "log", "--format=%an %s", "-1", sha) == "kube-remedy fix a"
    assert git(repo, "rev-parse", f"{sha}^") == head_before
    # bytes, CRLF included, are exactly what was committed
    blob = subprocess.run(
        ["git", "-C", str(repo), "show", f"{sha}:apps/a.yaml"], capture_output=True, check=True
    ).stdout
    assert blob == b"kind: Pod\r\nmetadata:\r\n  name: a\r\nspec: {}\r\n"
    assert forge.read_file("apps/b.yaml", "remedy/sec/a") == "x: 1\n"
    assert forge.read_file("apps/b.yaml") is None
    assert sorted(forge.list_files("remedy/sec/a")) == ["apps/a.yaml", "apps/b.yaml"]


def test_refuses_default_and_protected_branches(repo: Path) -> None:
    forge = LocalForge(repo, protected=("release",))
    with pytest.raises(ForgeConflictError):
        forge.commit_files("main", {"x": "y"}, "m", start_branch="main")
    with pytest.raises(ForgeConflictError):
        forge.commit_files("release", {"x": "y"}, "m", start_branch="main")


def test_change_records_round_trip(repo: Path) -> None:
    forge = LocalForge(repo)
    forge.commit_files("remedy/x", {"x.yaml": "a: 1\n"}, "m", start_branch="main")
    change = forge.open_change("remedy/x", "Fix x", "body <!-- marker -->", ["security"])
    assert change.id == 1 and change.state == "opened"
    with pytest.raises(ForgeConflictError):
        forge.open_change("remedy/x", "again", "", [])
    updated = forge.update_change(change, description="new body")
    assert [c.description for c in forge.find_changes()] == ["new body"]
    assert forge.description_path(updated).read_text().startswith("# Fix x")
    forge.close_change(updated, "findings are gone")
    assert [c.state for c in forge.find_changes()] == ["closed"]


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="not the top of a git repository"):
        LocalForge(tmp_path)


def test_a_closed_branch_opens_again_and_other_writers_are_seen(repo: Path) -> None:
    """The open branches and the next MR id follow every record: one closed frees its branch
    for a new MR (the next id); a second forge's records are seen by the first."""
    first, second = LocalForge(repo), LocalForge(repo)
    for branch in ("remedy/x", "remedy/y"):
        first.commit_files(branch, {"x.yaml": "a: 1\n"}, "m", start_branch="main")
    change = first.open_change("remedy/x", "Fix x", "", [])
    with pytest.raises(ForgeConflictError):
        second.open_change("remedy/x", "Fix x again", "", [])  # written by the first
    first.close_change(change, "gone")
    again = second.open_change("remedy/x", "Fix x again", "", [])
    assert again.id == 2
    with pytest.raises(ForgeConflictError):
        first.open_change("remedy/x", "a third", "", [])  # written by the second
    assert first.open_change("remedy/y", "Fix y", "", []).id == 3
    assert [(c.id, c.state) for c in second.find_changes()] == [
        (1, "closed"),
        (2, "opened"),
        (3, "opened"),
    ]
