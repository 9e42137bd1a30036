"""`GitLabForge` + the MR lifecycle end to end against the HTTP GitLab emulator.

Change sets are built directly (no planner), so each test pins one forge behaviour: request
counts, idempotence, updates, ignores, closes, limits, retries, foreign commits, errors and
artifact fetching.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import gitlab
import pytest

from bot.errors import ForgeConflictError, ForgeError, ForgePermissionError, ForgeTransientError
from bot.forge.gitlab import GitLabForge
from bot.lifecycle import SyncResult, SyncSettings, marker, parse_marker, sync_changes
from bot.model import ChangeSet, FileChange, Location, PlannedFix
from fixers.model import Finding, ResourceRef, Risk
from tests.gitlab_emulator import GitLabEmulator

PROJECT = "platform/cd-config"
NAMES = ("cart", "checkout", "frontend", "search")


def manifest(name: str, hardened: str = "") -> str:
    return f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{hardened}"


def change_set(name: str, fix: str = "readOnly: true\n", control: str = "C-0017") -> ChangeSet:
    path = f"apps/{name}.yaml"
    finding = Finding(control_id=control, resource=ResourceRef(kind="Deployment", name=name))
    planned = PlannedFix(finding, Location("manifest", path), "f", "security-context", Risk.LOW, ())
    return ChangeSet(
        key=f"security-context/{name}",
        title=f"Harden {name}",
        family="security-context",
        risk=Risk.LOW,
        fixes=(planned,),
        files=(FileChange(path, manifest(name), manifest(name, fix)),),
    )


def describe(cs: ChangeSet) -> str:
    return f"Fixes {', '.join(cs.controls)} on {cs.key}.\n\n{marker(cs.key, cs.findings_hash)}"


def labels(cs: ChangeSet) -> list[str]:
    return ["security", "kube-remedy", *cs.controls, f"risk:{cs.risk.name.lower()}"]


@pytest.fixture
def project(gitlab_emulator: GitLabEmulator) -> int:
    return gitlab_emulator.create_project(PROJECT, {f"apps/{n}.yaml": manifest(n) for n in NAMES})


@pytest.fixture
def forge(gitlab_emulator: GitLabEmulator, project: int) -> GitLabForge:
    return GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT)


def sync(forge: GitLabForge, sets: list[ChangeSet], **settings: object) -> SyncResult:
    opts: dict[str, object] = {"max_open": 50, "max_new_per_hour": 50, **settings}
    return sync_changes(
        forge,
        sets,
        describe=describe,
        labels=labels,
        settings=SyncSettings(**opts),  # type: ignore[arg-type]
        # real time: the hourly limit counts MRs by the emulator's created_at
        now=datetime.now(UTC),
    )


def actions(result: SyncResult) -> dict[str, str]:
    return {d.key: d.action for d in result.decisions}


def mrs(emulator: GitLabEmulator, pid: int) -> dict[str, dict]:  # type: ignore[type-arg]
    return {m["source_branch"]: m for m in emulator.merge_requests(pid)}


def test_first_run_two_writes_per_mr_then_zero_writes(
    gitlab_emulator: GitLabEmulator, project: int, forge: GitLabForge
) -> None:
    sets = [change_set(n) for n in NAMES]
    result = sync(forge, sets)
    assert set(actions(result).values()) == {"created"}
    opened = mrs(gitlab_emulator, project)
    assert sorted(opened) == [f"remedy/security-context/{n}" for n in NAMES]
    cart = opened["remedy/security-context/cart"]
    assert parse_marker(cart["description"]) == (sets[0].key, sets[0].findings_hash)
    assert {"security", "kube-remedy", "C-0017", "risk:low"} <= set(cart["labels"])
    assert cart["target_branch"] == "main"
    assert gitlab_emulator.file_at(project, cart["source_branch"], "apps/cart.yaml") == (
        sets[0].files[0].after
    )
    assert gitlab_emulator.file_at(project, "main", "apps/cart.yaml") == manifest("cart")
    assert gitlab_emulator.writes() <= 2 * len(NAMES)

    gitlab_emulator.reset_counts()
    again = sync(forge, sets)
    assert set(actions(again).values()) == {"unchanged"}
    assert gitlab_emulator.writes() == 0
    mr_lists = [
        p for m, p in gitlab_emulator.requests if m == "GET" and p.endswith("/merge_requests")
    ]
    assert len(mr_lists) == 1


def test_changed_set_updates_only_its_mr_and_gone_set_closes(
    gitlab_emulator: GitLabEmulator, project: int, forge: GitLabForge
) -> None:
    sync(forge, [change_set(n) for n in NAMES])
    gitlab_emulator.reset_counts()
    changed = change_set("cart", "readOnly: true\nrunAsNonRoot: true\n")
    result = sync(forge, [changed, change_set("checkout"), change_set("frontend")])
    assert actions(result) == {
        "security-context/cart": "updated",
        "security-context/checkout": "unchanged",
        "security-context/frontend": "unchanged",
        "security-context/search": "closed",
    }
    after = mrs(gitlab_emulator, project)
    assert parse_marker(after["remedy/security-context/cart"]["description"]) == (
        changed.key,
        changed.findings_hash,
    )
    assert "runAsNonRoot" in (
        gitlab_emulator.file_at(project, "remedy/security-context/cart", "apps/cart.yaml") or ""
    )
    search = after["remedy/security-context/search"]
    assert search["state"] == "closed"
    notes = gitlab_emulator.notes(project, search["iid"])
    assert any("no longer reported" in n["body"] for n in notes)
    # one commit + one MR edit for the update; one note, one close and one branch delete
    # for the gone set
    assert gitlab_emulator.writes() == 5
    assert "remedy/security-context/search" not in gitlab_emulator.branches(project)


def test_closed_mr_is_not_reopened_until_its_hash_changes(
    gitlab_emulator: GitLabEmulator,
    project: int,
    forge: GitLabForge,
    gitlab_client: gitlab.Gitlab,
) -> None:
    sync(forge, [change_set("cart")])
    (mr,) = gitlab_emulator.merge_requests(project)
    # a person's close (the bot's own close is no ignore)
    gitlab_emulator.add_user("alice")
    gitlab_emulator.close_as(project, mr["iid"], by="alice")

    first = sync(forge, [change_set("cart")])
    assert actions(first) == {"security-context/cart": "ignored"}
    notes = gitlab_emulator.notes(project, mr["iid"])
    assert sum("will not propose" in n["body"] for n in notes) == 1
    gitlab_emulator.reset_counts()
    assert actions(sync(forge, [change_set("cart")])) == {"security-context/cart": "ignored"}
    assert gitlab_emulator.writes() == 0
    assert [m["state"] for m in gitlab_emulator.merge_requests(project)] == ["closed"]

    changed = change_set("cart", "readOnly: true\nprivileged: false\n")
    assert actions(sync(forge, [changed])) == {"security-context/cart": "created"}
    states = [m["state"] for m in gitlab_emulator.merge_requests(project)]
    assert states == ["closed", "opened"]


def test_limits_hold_back_and_list_the_rest(
    gitlab_emulator: GitLabEmulator, project: int, forge: GitLabForge
) -> None:
    result = sync(forge, [change_set(n) for n in NAMES], max_open=2)
    assert len(result.by_action("created")) == 2
    held = result.held_back
    assert len(held) == 2 and all("limit 2" in d.reason for d in held)
    assert len(gitlab_emulator.merge_requests(project)) == 2

    hourly = sync(forge, [change_set(n) for n in NAMES], max_new_per_hour=2)
    assert len(hourly.held_back) == 2
    assert all("last hour" in d.reason for d in hourly.held_back)


def test_storms_of_429_and_500_end_with_the_same_mrs(
    gitlab_emulator: GitLabEmulator, project: int, forge: GitLabForge
) -> None:
    gitlab_emulator.inject(status=429, times=3, retry_after=0, method="POST")
    gitlab_emulator.inject(status=500, times=2, method="POST", path_contains="merge_requests")
    gitlab_emulator.inject(status=502, times=2, method="GET", path_contains="merge_requests")
    sync(forge, [change_set(n) for n in NAMES])
    branches = [m["source_branch"] for m in gitlab_emulator.merge_requests(project)]
    assert sorted(branches) == [f"remedy/security-context/{n}" for n in NAMES]
    gitlab_emulator.reset_counts()
    assert set(actions(sync(forge, [change_set(n) for n in NAMES])).values()) == {"unchanged"}
    assert gitlab_emulator.writes() == 0
    assert len(gitlab_emulator.merge_requests(project)) == len(NAMES)


def test_human_commit_stops_the_bot_rewriting_the_branch(
    gitlab_emulator: GitLabEmulator, project: int, forge: GitLabForge
) -> None:
    sync(forge, [change_set("cart")])
    branch = "remedy/security-context/cart"
    human = manifest("cart", "readOnly: true\n# tuned by a person\n")
    gitlab_emulator.push_as(
        project, branch, {"apps/cart.yaml": human}, author="alice", message="tweak"
    )
    changed = change_set("cart", "readOnly: true\nrunAsNonRoot: true\n")
    result = sync(forge, [changed])
    assert actions(result) == {"security-context/cart": "foreign-commits"}
    assert gitlab_emulator.file_at(project, branch, "apps/cart.yaml") == human
    (mr,) = gitlab_emulator.merge_requests(project)
    assert "not updating this branch" in mr["description"]
    gitlab_emulator.reset_counts()
    sync(forge, [changed])
    assert gitlab_emulator.writes() == 0
    assert gitlab_emulator.file_at(project, branch, "apps/cart.yaml") == human


def test_refuses_default_and_protected_branches(
    gitlab_emulator: GitLabEmulator, forge: GitLabForge
) -> None:
    pid = gitlab_emulator.create_project(
        "platform/other", {"a.yaml": "a: 1\n"}, protected=("main", "release")
    )
    other = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, pid)
    for branch in ("main", "release"):
        with pytest.raises(ForgeConflictError, match="default or protected"):
            other.commit_files(branch, {"a.yaml": "a: 2\n"}, "m", start_branch="main")
    assert gitlab_emulator.file_at(pid, "main", "a.yaml") == "a: 1\n"
    assert gitlab_emulator.token not in repr(other)


def test_forbidden_push_is_one_line_permission_error(
    gitlab_emulator: GitLabEmulator, project: int, forge: GitLabForge
) -> None:
    gitlab_emulator.inject(status=403, method="POST", path_contains="repository/commits")
    (failed,) = sync(forge, [change_set("cart")]).failed
    assert isinstance(failed.error, ForgePermissionError)
    message = failed.reason
    assert "\n" not in message
    assert PROJECT in message and "Developer access to push branches" in message
    assert gitlab_emulator.token not in message


def test_bad_token_is_one_line_permission_error(
    gitlab_emulator: GitLabEmulator, project: int
) -> None:
    forge = GitLabForge(gitlab_emulator.url, "wrong-token", PROJECT)
    with pytest.raises(ForgePermissionError, match="401") as info:
        forge.default_branch()
    assert "\n" not in str(info.value) and "wrong-token" not in str(info.value)


def test_fetch_artifact_takes_the_latest_pipeline_even_when_failed(
    gitlab_emulator: GitLabEmulator, project: int, forge: GitLabForge
) -> None:
    with pytest.raises(ForgeError, match="no pipeline on main"):
        forge.fetch_artifact("kubescape", "report.json")
    gitlab_emulator.add_pipeline(
        project, "main", {"kubescape": {"report.json": b"old"}}, status="success"
    )
    gitlab_emulator.add_pipeline(
        project, "main", {"kubescape": {"report.json": b"new"}, "lint": None}, status="failed"
    )
    assert forge.fetch_artifact("kubescape", "report.json") == b"new"
    with pytest.raises(ForgeError, match="no job named 'scan'"):
        forge.fetch_artifact("scan", "report.json")
    with pytest.raises(ForgeError, match=r"has no artifact 'other\.json'"):
        forge.fetch_artifact("kubescape", "other.json")


def test_commits_reuse_one_tree_listing_per_run(tmp_path: Path) -> None:
    from bench.bench_gitlab import measure

    first, again, changed = measure(6, 2, tmp_path / "gitlab")
    assert first.decisions == {"created": 6} and first.writes == 12
    # project, bot user, protected branches, MR listing, branch listing, one tree listing;
    # then 2 writes per MR
    assert first.requests <= first.writes + 6
    assert again.writes == 0 and again.requests <= 3
    assert changed.decisions == {"updated": 2, "unchanged": 4} and changed.writes == 4


def test_retry_after_is_honoured_and_storms_end_in_transient_error(
    gitlab_emulator: GitLabEmulator, project: int
) -> None:
    forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT, max_retries=2)
    forge.default_branch()
    gitlab_emulator.inject(status=429, retry_after=1, method="GET", path_contains="merge_requests")
    start = time.perf_counter()
    assert forge.find_changes() == []
    assert time.perf_counter() - start >= 0.9
    gitlab_emulator.inject(status=503, times=10, method="GET", path_contains="merge_requests")
    with pytest.raises(ForgeTransientError, match="503") as info:
        forge.find_changes()
    assert "\n" not in str(info.value) and gitlab_emulator.token not in str(info.value)


def test_a_429_that_ends_a_call_carries_gitlabs_retry_after(
    gitlab_emulator: GitLabEmulator, project: int
) -> None:
    """The Celery path (no python-gitlab retries): GitLab's Retry-After reaches the task in
    `ForgeTransientError.retry_after`; without the header it stays None (the task's backoff)."""
    forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT, max_retries=0)
    forge.default_branch()
    gitlab_emulator.inject(status=429, retry_after=7, method="GET", path_contains="merge_requests")
    with pytest.raises(ForgeTransientError, match="429") as info:
        forge.find_changes()
    assert info.value.retry_after == 7
    gitlab_emulator.inject(status=503, method="GET", path_contains="merge_requests")
    with pytest.raises(ForgeTransientError, match="503") as info:
        forge.find_changes()
    assert info.value.retry_after is None
    assert forge.find_changes() == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("999999", 3600.0),  # bounded: a task never sleeps for days on GitLab's word
        ("Sun, 06 Dec 2026 04:00:30 GMT", 30.0),
        ("Sun, 06 Dec 2026 03:59:00 GMT", 0.0),  # a date in the past: retry now
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_header_values(header: str | None, expected: float | None) -> None:
    from datetime import UTC, datetime

    from bot.forge.gitlab import retry_after_seconds

    now = datetime(2026, 12, 6, 4, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now) == expected


def test_the_forge_asks_bot_identity_who_the_bot_is(forge: GitLabForge) -> None:
    """One definition of "is this the bot" (`bot.identity.BotIdentity`), the id deciding."""
    import importlib.util

    from bot.identity import BotIdentity

    me = forge.bot_user_id
    assert forge.identity == BotIdentity(forge.bot_username, me)
    assert forge.identity.is_bot_user({"id": me, "username": "renamed-bot"})
    assert not forge.identity.is_bot_user({"id": me + 1, "username": forge.bot_username})
    assert not forge.identity.is_bot_user({"id": "x", "username": "someone"})
    assert not forge.identity.is_bot_user(None)
    assert importlib.util.find_spec("bot.forge.identity") is None


@pytest.mark.parametrize("assign", [False, True])
def test_reviewers_are_requested_and_assigned_only_when_set(
    gitlab_emulator: GitLabEmulator, project: int, assign: bool
) -> None:
    alice = gitlab_emulator.add_user("alice")
    bob = gitlab_emulator.add_user("bob")
    forge = GitLabForge(
        gitlab_emulator.url, gitlab_emulator.token, PROJECT, assign_reviewers=assign
    )
    forge.commit_files(
        "remedy/security-context/cart",
        {"apps/cart.yaml": manifest("cart", "readOnly: true\n")},
        "Harden cart",
        start_branch="main",
    )
    forge.open_change(
        "remedy/security-context/cart",
        "Harden cart",
        "d",
        ["security"],
        ["@alice", "bob", "nobody"],
    )
    (mr,) = gitlab_emulator.merge_requests(project)
    assert [u["id"] for u in mr["reviewers"]] == [alice, bob]  # an unknown name is left out
    assert [u["id"] for u in mr["assignees"]] == ([alice] if assign else [])
