"""The command parser, authorizer and dispatcher, with a recording GitLab double."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import gitlab
import pytest
from prometheus_client import REGISTRY

from bot import commands
from bot.command_tasks import (
    handle_chat_command,
    handle_mr_event,
    handle_note_command,
)
from bot.commands import (
    HOLD_LABEL,
    IGNORE_LABEL_PREFIX,
    Actor,
    CommandError,
    Context,
    MemberCache,
    dispatch,
    find_mention,
    mr_controls,
    parse,
)
from bot.errors import ForgePermissionError, ForgeTransientError
from bot.forge.base import MergeRequestInfo
from bot.forge.gitlab import GitLabForge
from bot.settings import Settings
from bot.web_settings import WebSettings
from tests.gitlab_emulator import GitLabEmulator

PROJECT = "platform/cd-config"
BRANCH_PREFIX = "remedy/"
"""Set explicitly: the tests do not depend on the default prefix."""
DESCRIPTION = "Fixes C-0016 (allow privilege escalation) and C-0017 (immutable root fs)."


@dataclass
class FakeGitLab:
    """GitLab as the commands see it: one bot MR, members by user id, every write recorded."""

    levels: dict[int, int] = field(default_factory=lambda: {7: 30, 8: 20, 9: 40})
    mr: MergeRequestInfo = field(
        default_factory=lambda: MergeRequestInfo(
            iid=3,
            state="opened",
            source_branch="remedy/web-deployment",
            target_branch="main",
            title="Harden web",
            description=DESCRIPTION,
            web_url="http://gitlab.test/platform/cd-config/-/merge_requests/3",
        )
    )
    calls: list[tuple[str, Any]] = field(default_factory=list)
    level_lookups: int = 0
    projects: list[str] = field(default_factory=list)

    def __call__(self, project: str) -> FakeGitLab:
        """The forge of ``project`` (the commands' `bot.commands.GitLab`): this one."""
        self.projects.append(project)
        return self

    def access_level(self, user_id: int) -> int:
        self.level_lookups += 1
        return self.levels.get(user_id, 0)

    def merge_request(self, iid: int) -> MergeRequestInfo:
        return self.mr

    def open_merge_requests(self, branch_prefix: str) -> list[MergeRequestInfo]:
        return [self.mr] if self.mr.state == "opened" else []

    def award_emoji(self, iid: int, note_id: int, name: str) -> None:
        self.calls.append(("award", name))

    def reply(self, iid: int, body: str) -> None:
        self.calls.append(("reply", body))

    def rebase(self, iid: int) -> None:
        self.calls.append(("rebase", iid))

    def set_state(self, iid: int, event: Literal["close", "reopen"]) -> None:
        self.calls.append(("state", event))
        self.mr = replace(self.mr, state="closed" if event == "close" else "opened")

    def set_labels(self, iid: int, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        self.calls.append(("labels", (tuple(add), tuple(remove))))
        labels = (set(self.mr.labels) | set(add)) - set(remove)
        self.mr = replace(self.mr, labels=tuple(sorted(labels)))


@dataclass
class FakeScheduler:
    runs: list[str] = field(default_factory=list)

    def run_project(self, project: str) -> None:
        self.runs.append(project)


@pytest.fixture
def bot_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the bot's loggers (which may not propagate once JSON logging is set up)."""
    logger = logging.getLogger("kube_remedy")
    # caplog listens on the root logger; add it here only if records do not get there anyway.
    attach = not logger.propagate
    if attach:
        logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        if attach:
            logger.removeHandler(caplog.handler)
        logger.setLevel(old)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        projects=[{"id": PROJECT}, {"id": "apps/cd-config"}], branch_prefix=BRANCH_PREFIX
    )


@pytest.fixture
def web() -> WebSettings:
    return WebSettings(
        chat_users={"U1": (PROJECT,), "U2": ("*",)},
        chat_channels={"C1": (PROJECT,), "C2": ("*",)},
    )


def mr_ctx(
    settings: Settings,
    web: WebSettings,
    gitlab: FakeGitLab,
    scheduler: FakeScheduler,
    user: int = 7,
) -> Context:
    return Context(
        settings=settings,
        web=web,
        actor=Actor("gitlab", str(user), f"user{user}"),
        channel="mr",
        gitlab=gitlab,
        scheduler=scheduler,
        project=PROJECT,
        mr_iid=3,
        members=MemberCache(60),
    )


def chat_ctx(
    settings: Settings,
    web: WebSettings,
    gitlab: FakeGitLab,
    scheduler: FakeScheduler,
    user: str = "U1",
    channel: str = "C1",
) -> Context:
    return Context(settings, web, Actor("slack", user, "alice", channel), "chat", gitlab, scheduler)


# --------------------------------------------------------------------------- parsing


def test_find_mention_reads_the_first_line_addressed_to_the_bot() -> None:
    note = "Thanks!\n@kube-remedy  ignore C-0016 false positive\n@kube-remedy rebase"
    assert find_mention(note, "kube-remedy") == "ignore C-0016 false positive"


def test_find_mention_skips_quotes_code_other_users_and_slash_commands() -> None:
    assert find_mention("> @kube-remedy rebase", "kube-remedy") is None
    assert find_mention("```\n@kube-remedy rebase\n```", "kube-remedy") is None
    assert find_mention("@kube-remedy-fan rebase", "kube-remedy") is None
    assert find_mention("/rebase", "kube-remedy") is None
    assert find_mention("please @kube-remedy rebase", "kube-remedy") is None
    assert find_mention("@KUBE-REMEDY rebase", "kube-remedy") == "rebase"


def test_parse_validates_control_ids_and_projects(settings: Settings) -> None:
    inv = parse("ignore c-0016 not in prod", "mr", settings)
    assert inv.command.name == "ignore"
    assert inv.args == {"control": "C-0016", "reason": "not in prod"}
    assert parse("run platform/cd-config C-0017", "chat", settings).args == {
        "project": PROJECT,
        "controls": ["C-0017"],
    }
    with pytest.raises(CommandError, match="not a known control id"):
        parse("explain C-9999", "chat", settings)
    with pytest.raises(CommandError, match=r"unknown project .*configured: platform/cd-config"):
        parse("status other/repo", "chat", settings)
    with pytest.raises(CommandError, match="usage: status PROJECT"):
        parse("status", "chat", settings)


def test_unknown_command_lists_the_commands_of_the_channel(settings: Settings) -> None:
    with pytest.raises(CommandError) as err:
        parse("deploy now", "mr", settings)
    assert "deploy is not a command; commands: rebase, recreate, ignore" in str(err.value)
    with pytest.raises(
        CommandError, match=r"run is not a command here; commands: rebase, .*, help$"
    ):
        parse("run platform/cd-config", "mr", settings)


def test_injection_is_escaped_never_echoed_raw(settings: Settings) -> None:
    with pytest.raises(CommandError) as err:
        parse("status [x](http://evil)<img/src=x>`$(rm${IFS}-rf)`", "chat", settings)
    text = str(err.value)
    assert "<img" not in text and "[x](" not in text
    assert re.search(r"(?<!\\)`", text) is None, "every backtick is escaped"
    assert "\\[x\\]" in text and "&lt;img" in text
    inv = parse("ignore @all *now* <b>", "mr", settings)
    assert inv.args["reason"] == "\\@all \\*now\\* &lt;b&gt;"


def test_help_lists_usage_per_channel(settings: Settings) -> None:
    text = commands.help_text("mr", settings.bot_username)
    assert "`@kube-remedy ignore [CONTROL] [reason]`" in text
    assert "/remedy" not in text
    chat = commands.help_text("chat", settings.bot_username)
    assert "`/remedy run PROJECT [CONTROL...]`" in chat and "rebase" not in chat


# --------------------------------------------------------------------------- MR commands


def test_developer_can_rebase(settings: Settings, web: WebSettings) -> None:
    gitlab, scheduler = FakeGitLab(), FakeScheduler()
    reply = dispatch("rebase", mr_ctx(settings, web, gitlab, scheduler))
    assert reply.ok and "Rebase requested" in reply.text
    assert gitlab.calls == [("rebase", 3)]


def test_reporter_and_stranger_are_refused_and_nothing_is_written(
    settings: Settings, web: WebSettings, bot_logs: pytest.LogCaptureFixture
) -> None:
    gitlab, scheduler = FakeGitLab(), FakeScheduler()
    for user in (8, 99):
        reply = dispatch("rebase", mr_ctx(settings, web, gitlab, scheduler, user=user))
        assert not reply.ok
        assert "needs at least Developer access" in reply.text
    assert gitlab.calls == [] and scheduler.runs == []
    assert [r.getMessage() for r in bot_logs.records] == ["command-refused"] * 2
    assert all(r.levelname == "WARNING" for r in bot_logs.records)


def test_member_levels_are_cached_for_the_ttl(settings: Settings, web: WebSettings) -> None:
    gitlab = FakeGitLab()
    now = [100.0]
    cache = MemberCache(60, clock=lambda: now[0])
    assert cache.access_level(gitlab, PROJECT, 7) == 30
    gitlab.levels[7] = 0
    now[0] += 59
    assert cache.access_level(gitlab, PROJECT, 7) == 30
    now[0] += 2
    assert cache.access_level(gitlab, PROJECT, 7) == 0
    assert gitlab.level_lookups == 2


def test_ignore_whole_mr_closes_it_and_unignore_reopens(
    settings: Settings, web: WebSettings
) -> None:
    gitlab, scheduler = FakeGitLab(), FakeScheduler()
    ctx = mr_ctx(settings, web, gitlab, scheduler)
    reply = dispatch("ignore staging only", ctx)
    assert reply.ok and "Closed as ignored" in reply.text and "staging only" in reply.text
    assert gitlab.mr.state == "closed"
    assert not dispatch("ignore", ctx).ok
    assert dispatch("unignore", ctx).ok
    assert gitlab.mr.state == "opened"


def test_ignore_one_control_labels_the_mr(settings: Settings, web: WebSettings) -> None:
    gitlab, scheduler = FakeGitLab(), FakeScheduler()
    ctx = mr_ctx(settings, web, gitlab, scheduler)
    assert dispatch("ignore C-0017", ctx).ok
    assert gitlab.mr.labels == (IGNORE_LABEL_PREFIX + "C-0017",)
    refused = dispatch("ignore C-0034", ctx)
    assert not refused.ok and "C-0034 is not part of this merge request" in refused.text
    assert dispatch("unignore", ctx).ok
    assert gitlab.mr.labels == ()


def test_explain_without_control_explains_every_control_of_the_mr(
    settings: Settings, web: WebSettings
) -> None:
    reply = dispatch("explain", mr_ctx(settings, web, FakeGitLab(), FakeScheduler()))
    assert reply.ok
    assert "**C-0016" in reply.text and "**C-0017" in reply.text and "Why:" in reply.text


def test_retry_and_recreate_schedule_a_run(settings: Settings, web: WebSettings) -> None:
    gitlab, scheduler = FakeGitLab(), FakeScheduler()
    gitlab.mr = replace(gitlab.mr, labels=(HOLD_LABEL,))
    ctx = mr_ctx(settings, web, gitlab, scheduler)
    assert dispatch("retry", ctx).ok
    assert dispatch("recreate", ctx).ok
    assert scheduler.runs == [PROJECT, PROJECT]
    # recreate never deletes the branch: it asks the run to rewrite it (label), hold removed
    assert gitlab.mr.labels == ("kube-remedy::recreate",)


def test_commands_refuse_merge_requests_not_opened_by_the_bot(
    settings: Settings, web: WebSettings
) -> None:
    gitlab = FakeGitLab()
    gitlab.mr = replace(gitlab.mr, source_branch="feature/mine")
    reply = dispatch("rebase", mr_ctx(settings, web, gitlab, FakeScheduler()))
    assert not reply.ok and "not opened by the bot" in reply.text
    assert gitlab.calls == []


# --------------------------------------------------------------------------- chat commands


def test_chat_run_and_status_for_a_mapped_user(settings: Settings, web: WebSettings) -> None:
    gitlab, scheduler = FakeGitLab(), FakeScheduler()
    ctx = chat_ctx(settings, web, gitlab, scheduler)
    reply = dispatch("run platform/cd-config C-0016", ctx)
    assert reply.ok and "covers every control, including C-0016" in reply.text
    assert scheduler.runs == [PROJECT]
    status = dispatch("status platform/cd-config", ctx)
    assert "1 open merge request" in status.text and "!3 Harden web" in status.text


@pytest.mark.parametrize(
    ("user", "channel", "project", "why"),
    [
        ("U9", "C1", PROJECT, "you are not allowed to use this bot"),
        ("U1", "C1", "apps/cd-config", "not allowed to run commands for apps/cd-config"),
        ("U2", "C1", "apps/cd-config", "this channel is not mapped to apps/cd-config"),
        ("U1", "C7", PROJECT, "this channel is not mapped to platform/cd-config"),
    ],
)
def test_chat_authorization_by_user_and_channel(
    settings: Settings, web: WebSettings, user: str, channel: str, project: str, why: str
) -> None:
    scheduler = FakeScheduler()
    ctx = chat_ctx(settings, web, FakeGitLab(), scheduler, user=user, channel=channel)
    reply = dispatch(f"run {project}", ctx)
    assert not reply.ok and why in reply.text
    assert scheduler.runs == []


def test_chat_explain_needs_a_control(settings: Settings, web: WebSettings) -> None:
    ctx = chat_ctx(settings, web, FakeGitLab(), FakeScheduler())
    assert "**C-0016" in dispatch("explain C-0016", ctx).text
    reply = dispatch("explain", ctx)
    assert not reply.ok and "needs a control id in chat" in reply.text
    assert dispatch("", ctx).text.startswith("Commands:")


# --------------------------------------------------------------------------- tasks and REST port


@pytest.fixture
def emulated(
    gitlab_emulator: GitLabEmulator, gitlab_client: gitlab.Gitlab
) -> Iterator[dict[str, Any]]:
    """A project with one bot MR and two humans; the REST port speaking to the emulator."""
    pid = gitlab_emulator.create_project(PROJECT, {"values.yaml": "a: 1\n"})
    project = gitlab_client.projects.get(PROJECT)
    branch = BRANCH_PREFIX + "web"
    project.branches.create({"branch": branch, "ref": "main"})
    project.commits.create(
        {
            "branch": branch,
            "commit_message": "fix",
            "actions": [{"action": "update", "file_path": "values.yaml", "content": "a: 2\n"}],
        }
    )
    mr = project.mergerequests.create(
        {
            "source_branch": branch,
            "target_branch": "main",
            "title": "Fix",
            "description": DESCRIPTION,
        }
    )
    alice = gitlab_emulator.add_user("alice")
    gitlab_emulator.add_member(pid, alice, 30)
    port = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT, max_retries=3)
    yield {"pid": pid, "iid": int(mr.iid), "mr": mr, "alice": alice, "port": port, "branch": branch}
    port.close()


def test_python_gitlab_port_against_the_emulator(
    gitlab_emulator: GitLabEmulator, emulated: dict[str, Any]
) -> None:
    port: GitLabForge = emulated["port"]
    iid = emulated["iid"]
    assert port.access_level(emulated["alice"]) == 30
    assert port.access_level(9999) == 0
    info = port.merge_request(iid)
    assert (info.state, info.source_branch, mr_controls(info)) == (
        "opened",
        emulated["branch"],
        ("C-0016", "C-0017"),
    )
    assert [m.iid for m in port.open_merge_requests(BRANCH_PREFIX)] == [iid]
    assert port.open_merge_requests("other/") == []
    port.set_labels(iid, add=[HOLD_LABEL, "x"])
    port.set_labels(iid, remove=["x"])
    assert port.merge_request(iid).labels == (HOLD_LABEL,)
    port.set_state(iid, "close")
    assert port.merge_request(iid).state == "closed"
    port.set_state(iid, "reopen")
    note = emulated["mr"].notes.create({"body": "@kube-remedy help"})
    assert not port.note_has_award(iid, note.id, "eyes")
    port.award_emoji(iid, note.id, "eyes")
    port.award_emoji(iid, note.id, "eyes")  # twice is fine
    assert port.note_has_award(iid, note.id, "eyes")


def test_python_gitlab_port_retries_then_translates_errors(
    gitlab_emulator: GitLabEmulator, emulated: dict[str, Any]
) -> None:
    port: GitLabForge = emulated["port"]
    # One 503 is retried by python-gitlab (Retry-After honoured); 4 in a row (the try and its
    # 3 retries) become a transient error for the task to retry later.
    gitlab_emulator.inject(status=503, retry_after=0, path_contains="/merge_requests/")
    assert port.merge_request(emulated["iid"]).iid == emulated["iid"]
    gitlab_emulator.inject(status=503, times=4, retry_after=0, path_contains="/merge_requests/")
    with pytest.raises(ForgeTransientError, match="GitLab answered 503"):
        port.merge_request(emulated["iid"])
    stranger = GitLabForge(gitlab_emulator.url, "not-a-token", PROJECT)
    with pytest.raises(ForgePermissionError, match="401") as err:
        stranger.merge_request(emulated["iid"])
    assert "not-a-token" not in str(err.value)
    with pytest.raises(ForgePermissionError, match="401"):
        stranger.access_level(emulated["alice"])  # a broken token is not "no access"
    stranger.close()


def test_note_command_task_answers_once(
    gitlab_emulator: GitLabEmulator, emulated: dict[str, Any], settings: Settings, web: WebSettings
) -> None:
    pid, iid = emulated["pid"], emulated["iid"]
    note = emulated["mr"].notes.create({"body": "@kube-remedy explain C-0016"})
    event = {
        "project": PROJECT,
        "mr_iid": iid,
        "note_id": note.id,
        "user_id": emulated["alice"],
        "username": "alice",
        "note": "@kube-remedy explain C-0016",
    }
    scheduler = FakeScheduler()
    first = handle_note_command(settings, web, lambda _: emulated["port"], scheduler, event)
    again = handle_note_command(settings, web, lambda _: emulated["port"], scheduler, event)
    assert first == {"status": "answered", "ok": True}
    assert again == {"status": "ignored", "reason": "note already answered"}
    replies = [n["body"] for n in gitlab_emulator.notes(pid, iid) if n["body"].startswith("@alice")]
    assert len(replies) == 1 and "**C-0016" in replies[0]
    awards = emulated["mr"].notes.get(note.id).awardemojis.list()
    assert sorted(a.name for a in awards) == ["eyes", "robot"]


def test_chat_task_posts_only_to_allowed_response_urls(
    settings: Settings, web: WebSettings
) -> None:
    posted: list[tuple[str, dict[str, Any]]] = []
    event = {
        "platform": "slack",
        "user_id": "U1",
        "channel_id": "C1",
        "text": "status platform/cd-config",
        "response_url": "https://hooks.slack.com/commands/T1/2/x",
    }
    gitlab = FakeGitLab()
    result = handle_chat_command(
        settings, web, gitlab, FakeScheduler(), event, lambda u, b: posted.append((u, b))
    )
    assert result == {"status": "answered", "ok": True, "posted": True}
    assert posted[0][1]["response_type"] == "ephemeral"
    assert "!3 Harden web" in posted[0][1]["text"]
    evil = {**event, "response_url": "http://10.0.0.1/steal"}
    result = handle_chat_command(
        settings, web, gitlab, FakeScheduler(), evil, lambda u, b: posted.append((u, b))
    )
    assert result["posted"] is False and len(posted) == 1


def test_mr_events_record_merges_reopen_and_hold_human_pushes(settings: Settings) -> None:
    gitlab = FakeGitLab()
    sent: list[tuple[str, list[Any]]] = []

    def send(name: str, args: list[Any]) -> None:
        sent.append((name, args))

    base = {"project": PROJECT, "mr_iid": 3}
    before = REGISTRY.get_sample_value("remedy_merge_requests_merged_total", {"project": PROJECT})
    assert (
        handle_mr_event(settings, gitlab, {**base, "kind": "merged"}, send)["status"] == "recorded"
    )
    after = REGISTRY.get_sample_value("remedy_merge_requests_merged_total", {"project": PROJECT})
    assert after == (before or 0) + 1
    handle_mr_event(settings, gitlab, {**base, "kind": "reopened"}, send)
    assert sent == [("remedy.run_project", [PROJECT, True]), ("remedy.run_project", [PROJECT])]
    push = {**base, "kind": "human-push", "username": "bob<script>"}
    assert handle_mr_event(settings, gitlab, push, send)["status"] == "held"
    assert handle_mr_event(settings, gitlab, push, send)["status"] == "ignored"
    assert gitlab.mr.labels == (HOLD_LABEL,)
    notes = [body for kind, body in gitlab.calls if kind == "reply"]
    assert len(notes) == 1 and notes[0].startswith("@bobscript pushed to this branch")


def test_every_call_takes_the_forges_retry_limit(
    gitlab_emulator: GitLabEmulator, emulated: dict[str, Any]
) -> None:
    """The worker's forge (``max_retries=0``: the task retries) makes each call once, whatever
    python-gitlab's default for that call; the start-up identity lookup never retries either."""
    from bot.forge.gitlab import current_user_id

    forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT, max_retries=0)
    iid = emulated["iid"]
    calls: list[tuple[str, Any]] = [
        ("/merge_requests/", lambda: forge.merge_request(iid)),
        ("/award_emoji", lambda: forge.award_emoji(iid, 1, "eyes")),
        ("/notes", lambda: forge.reply(iid, "hello")),
        ("/members/all/", lambda: forge.access_level(emulated["alice"])),
    ]
    for fragment, call in calls:
        gitlab_emulator.inject(status=429, retry_after=0, path_contains=fragment)
        gitlab_emulator.reset_counts()
        with pytest.raises(ForgeTransientError, match="429"):
            call()
        assert len([p for _, p in gitlab_emulator.requests if fragment in p]) == 1, fragment
    gitlab_emulator.inject(status=503, retry_after=0, path_contains="/user")
    gitlab_emulator.reset_counts()
    with pytest.raises(ForgeTransientError, match="503"):
        current_user_id(gitlab_emulator.url, gitlab_emulator.token)
    assert len(gitlab_emulator.requests) == 1
    forge.close()
