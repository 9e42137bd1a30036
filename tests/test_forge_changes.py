"""What every forge shares when it opens and updates change requests (`bot.forge.base`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.errors import ForgeConflictError
from bot.forge.base import ChangeEdit, ChangeRequest, Forge
from bot.forge.inmemory import InMemoryForge
from bot.forge.local import LocalForge

CHANGE = ChangeRequest(1, "remedy/a", "Harden a", "Fixes C-0016", "opened", ("security", "C-0016"))


def test_an_edit_holds_only_what_differs() -> None:
    assert not ChangeEdit.between(CHANGE)
    same = ChangeEdit.between(
        CHANGE, title="Harden a", description="Fixes C-0016", labels=["C-0016", "security"]
    )
    assert not same  # a reordering of the labels is no write
    edit = ChangeEdit.between(CHANGE, title="Harden a and b", labels=["security", "security"])
    assert edit == ChangeEdit(title="Harden a and b", labels=("security",))
    updated = edit.applied(CHANGE)
    assert (updated.title, updated.description, updated.labels) == (
        "Harden a and b",
        "Fixes C-0016",
        ("security",),
    )


def _local(tmp_path: Path) -> LocalForge:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.yaml").write_text("a: 1\n")
    for args in (("init", "-q", "-b", "main"), ("add", "-A")):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "i"],
        check=True,
    )
    return LocalForge(repo)


@pytest.mark.parametrize("make", [lambda _: InMemoryForge(), _local], ids=["in-memory", "local"])
def test_forges_open_and_update_change_requests_alike(make: object, tmp_path: Path) -> None:
    forge: Forge = make(tmp_path)  # type: ignore[operator]
    forge.commit_files("remedy/a", {"a.yaml": "a: 2\n"}, "fix", start_branch="main")
    opened = forge.open_change("remedy/a", "Harden a", "Fixes C-0016", ["security"])
    assert (opened.state, opened.labels) == ("opened", ("security",))
    assert opened.extra["created_at"]
    with pytest.raises(ForgeConflictError, match="an open change request already exists"):
        forge.open_change("remedy/a", "Again", "", [])
    updated = forge.update_change(opened, description="Fixes C-0016 and C-0017")
    assert (updated.title, updated.description) == ("Harden a", "Fixes C-0016 and C-0017")
    (listed,) = forge.find_changes()
    assert listed.description == "Fixes C-0016 and C-0017"
