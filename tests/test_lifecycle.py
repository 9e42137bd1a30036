"""The merge-request lifecycle on the in-memory forge."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.errors import ForgeConflictError
from bot.forge.base import ChangeRequest
from bot.forge.inmemory import InMemoryForge
from bot.lifecycle import (
    IGNORED_LABEL,
    SyncSettings,
    bot_changes_by_key,
    in_window,
    marker,
    parse_marker,
    sync_changes,
)
from bot.model import ChangeSet, FileChange, Location, PlannedFix
from fixers.model import Finding, ResourceRef, Risk

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


def change_set(key: str, content: str = "fixed: true\n", control: str = "C-0016") -> ChangeSet:
    finding = Finding(
        control_id=control, resource=ResourceRef(kind="Deployment", name=key.split("/")[-1])
    )
    fix = PlannedFix(
        finding, Location("manifest", f"{key}.yaml"), "f", "security-context", Risk.LOW, ()
    )
    return ChangeSet(
        key=key,
        title=f"fix {key}",
        family="security-context",
        risk=Risk.LOW,
        fixes=(fix,),
        files=(FileChange(f"{key}.yaml", "fixed: false\n", content),),
    )


def describe(cs: ChangeSet) -> str:
    return f"fixes {cs.key}\n\n{marker(cs.key, cs.findings_hash)}"


def sync(forge: InMemoryForge, sets: list[ChangeSet], **settings: object):  # type: ignore[no-untyped-def]
    return sync_changes(forge, sets, describe=describe, settings=SyncSettings(**settings), now=NOW)  # type: ignore[arg-type]


def test_marker_round_trip_and_tampering() -> None:
    text = "body\n" + marker("security-context/a", "abc123")
    assert parse_marker(text) == ("security-context/a", "abc123")
    assert parse_marker("<!-- kube-remedy:{not json} -->") is None
    assert parse_marker('<!-- kube-remedy:{"key": "../../x", "hash": "1"} -->') is None
    assert parse_marker("no marker") is None


def test_bot_changes_by_key_takes_only_the_bots_marked_mrs_on_its_prefix() -> None:
    def mr(n: int, key: str, branch: str, by_bot: bool = True, mark: bool = True) -> ChangeRequest:
        text = marker(key, "h") if mark else "no marker"
        return ChangeRequest(n, branch, "t", text, "opened", author_is_bot=by_bot)

    ours, again = mr(1, "sc/a", "remedy/sc/a"), mr(4, "sc/a", "remedy/sc/a-old")
    changes = [
        ours,
        mr(2, "sc/b", "remedy/sc/b", by_bot=False),  # a person copied the marker
        mr(3, "sc/c", "feature/sc/c"),  # not the bot's branch prefix
        again,
        mr(5, "sc/d", "remedy/sc/d", mark=False),
    ]
    assert bot_changes_by_key(changes, "remedy/") == {"sc/a": [ours, again]}


def test_create_then_zero_writes_then_update_one() -> None:
    forge = InMemoryForge({"a.yaml": "x", "b.yaml": "y"})
    first = sync(forge, [change_set("sc/a"), change_set("sc/b")])
    assert [d.action for d in first.decisions] == ["created", "created"]
    assert forge.branches["remedy/sc/a"]["sc/a.yaml"] == "fixed: true\n"
    assert forge.branches["remedy/sc/a"]["b.yaml"] == "y"
    writes = len(forge.writes)
    again = sync(forge, [change_set("sc/a"), change_set("sc/b")])
    assert [d.action for d in again.decisions] == ["unchanged", "unchanged"]
    assert len(forge.writes) == writes  # zero writes on an unchanged re-run
    changed = sync(forge, [change_set("sc/a", "fixed: 2\n"), change_set("sc/b")])
    assert sorted(d.action for d in changed.decisions) == ["unchanged", "updated"]
    assert forge.writes[writes:] == ["commit remedy/sc/a", "update remedy/sc/a"]


def test_closed_without_merge_is_ignored_until_findings_change() -> None:
    forge = InMemoryForge()
    sync(forge, [change_set("sc/a")])
    forge.human_close(1)
    result = sync(forge, [change_set("sc/a")])
    assert [d.action for d in result.decisions] == ["ignored"]
    assert IGNORED_LABEL in forge.changes[0].labels
    assert "will not propose" in forge.notes[-1][1]
    writes = len(forge.writes)
    sync(forge, [change_set("sc/a")])
    assert len(forge.writes) == writes  # acknowledged once
    fresh = sync(forge, [change_set("sc/a", "fixed: again\n")])
    assert [d.action for d in fresh.decisions] == ["created"]


def test_resolved_findings_close_the_mr() -> None:
    forge = InMemoryForge()
    sync(forge, [change_set("sc/a"), change_set("sc/b")])
    result = sync(forge, [change_set("sc/b")])
    assert ("closed", "sc/a") in [(d.action, d.key) for d in result.decisions]
    assert forge.changes[0].state == "closed"
    assert "no longer reported" in forge.notes[-1][1]


def test_foreign_commits_stop_rewrites() -> None:
    forge = InMemoryForge()
    sync(forge, [change_set("sc/a")])
    forge.human_push(1)
    result = sync(forge, [change_set("sc/a", "fixed: 3\n")])
    assert [d.action for d in result.decisions] == ["foreign-commits"]
    assert "commit remedy/sc/a" not in forge.writes[2:]
    assert "not updating this branch" in forge.changes[0].description


def test_limits_hold_back_and_list() -> None:
    forge = InMemoryForge()
    sets = [change_set(f"sc/{n}") for n in "abcdef"]
    result = sync(forge, sets, max_open=10, max_new_per_hour=2)
    assert len(result.by_action("created")) == 2
    assert [d.key for d in result.held_back] == ["sc/c", "sc/d", "sc/e", "sc/f"]
    assert all("last hour" in d.reason for d in result.held_back)
    result = sync(forge, sets, max_open=2, max_new_per_hour=10)
    assert len(result.held_back) == 4 and "limit 2" in result.held_back[0].reason


def test_schedule_window() -> None:
    assert in_window(["Mon-Fri 08:00-18:00"], NOW)
    assert not in_window(["Sat-Sun 00:00-24:00"], NOW)
    assert in_window([], NOW)
    result = sync(InMemoryForge(), [change_set("sc/a")], schedule=("Sat-Sun 00:00-24:00",))
    assert result.held_back[0].reason.startswith("outside the schedule window")


def test_never_commits_to_default_branch() -> None:
    forge = InMemoryForge()
    with pytest.raises(ForgeConflictError):
        forge.commit_files("main", {"a": "b"}, "m", start_branch="main")
    with pytest.raises(ForgeConflictError):
        sync(forge, [change_set("sc/a")], branch_prefix="")  # branch "sc/a" is fine...
        forge.commit_files("main", {}, "m", start_branch="main")  # ...main never is


def test_hold_label_stops_rewrites_and_people_labels_survive_updates() -> None:
    from bot.lifecycle import HOLD_LABEL

    forge = InMemoryForge()
    sync(forge, [change_set("sc/a"), change_set("sc/b")])
    a, b = forge.changes
    forge.update_change(a, labels=[*a.labels, HOLD_LABEL])
    forge.update_change(b, labels=[*b.labels, "team::web", "kube-remedy-ignore:C-0017"])
    writes = len(forge.writes)
    result = sync(forge, [change_set("sc/a", "v: 2\n"), change_set("sc/b", "v: 2\n")])
    assert {d.key: d.action for d in result.decisions} == {
        "sc/a": "foreign-commits",
        "sc/b": "updated",
    }
    assert "commit remedy/sc/a" not in forge.writes[writes:]
    assert {"team::web", "kube-remedy-ignore:C-0017", "security"} <= set(forge.changes[1].labels)


def test_a_conflicting_mr_on_hold_is_not_rewritten() -> None:
    from dataclasses import replace

    from bot.lifecycle import HOLD_LABEL

    forge = InMemoryForge({"sc/a.yaml": "fixed: false\n"})
    sync(forge, [change_set("sc/a")])
    (mr,) = forge.changes
    forge._put(replace(mr, has_conflicts=True, labels=(*mr.labels, HOLD_LABEL)))
    forge.writes.clear()
    result = sync(forge, [change_set("sc/a")])
    assert [d.action for d in result.decisions] == ["unchanged"]
    assert forge.writes == []
