"""Commands people give the bot, in merge request notes and in chat: one parser, one authorizer.

A command is one class with a name, an argument parser and ``run()``; the same classes serve
GitLab notes (``@kube-remedy rebase``; never ``/rebase``, which GitLab takes as a quick action)
and chat slash commands (``/remedy status group/cd-config``).

    dispatch(text, ctx)
      -> parse      one `Invocation`, or a `CommandError` saying what was wrong
      -> authorize  MR: project member with at least Developer, asked through the project's forge
                    chat: user (and channel) mapped to the project in `WebSettings`
      -> run        the command's effect through the ports; a `Reply` for the user

Every refusal is explained in the reply and logged. Text a user typed is escaped with
`bot.markdown.escape` before it is echoed, so a note cannot inject Markdown or mentions.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from bot import controls
from bot.errors import RemedyError
from bot.forge.base import CommandForge, MergeRequestInfo
from bot.lifecycle import IGNORED_LABEL, RECREATE_LABEL, marker_controls
from bot.markdown import escape as escape_markdown
from bot.observability import log_event
from bot.settings import Settings
from bot.web_settings import WebSettings
from fixers.registry import fixer_for

Channel = Literal["mr", "chat"]
CONTROL_ID = re.compile(r"^C-\d{4}$")
IGNORE_LABEL_PREFIX = "kube-remedy-ignore:"
HOLD_LABEL = "kube-remedy-hold"
"""Set when a person pushed to the bot's branch: the bot stops rewriting it until `recreate`."""
MAX_REASON = 200
MAX_ARGS = 20


class CommandError(RemedyError):
    """A command that cannot be run as typed; the message is safe to show (already escaped)."""


@dataclass(frozen=True)
class Actor:
    """Who gave the command: a GitLab user (numeric id) or a chat user."""

    platform: Literal["gitlab", "slack", "mattermost"]
    user_id: str
    username: str
    channel_id: str = ""


def mr_controls(info: MergeRequestInfo) -> tuple[str, ...]:
    """The controls a merge request fixes: as its hidden marker names them; for older MRs the
    control labels, else the ids the description names (it may name others too)."""
    named = marker_controls(info.description)
    if named is not None:
        return named
    labelled = tuple(label for label in info.labels if CONTROL_ID.match(label))
    if labelled:
        return labelled
    seen: dict[str, None] = {}
    for match in re.finditer(r"\bC-\d{4}\b", info.description):
        seen.setdefault(match.group(0), None)
    return tuple(seen)


GitLab = Callable[[str], CommandForge]
"""The GitLab forge of a project (`bot.forge.base.CommandForge`), by project id."""


class Scheduler(Protocol):
    """Work commands hand to the workers."""

    def run_project(self, project: str) -> None: ...


@dataclass(frozen=True)
class Reply:
    """The answer shown to the user (Markdown); ``ok`` is False for refusals and errors."""

    text: str
    ok: bool = True


@dataclass
class Context:
    """Everything a command may use; ``mr`` is set for commands given in a merge request."""

    settings: Settings
    web: WebSettings
    actor: Actor
    channel: Channel
    gitlab: GitLab | None
    scheduler: Scheduler
    project: str | None = None
    mr_iid: int | None = None
    members: MemberCache | None = None

    def forge(self, project: str) -> CommandForge:
        """The project's GitLab forge; CommandError where GitLab is not reachable (the web
        process answers ``help`` and ``explain`` only)."""
        if self.gitlab is None:
            raise CommandError("this command needs GitLab, which is not configured here")
        return self.gitlab(project)


# --------------------------------------------------------------------------- argument checks


def control_arg(token: str) -> str:
    """A known control id (``C-0016`` or a catalog alias) -> its canonical id."""
    canonical = controls.canonical_id(token)
    if canonical is None or not CONTROL_ID.match(canonical):
        raise CommandError(
            f"{escape_markdown(token[:40])} is not a known control id (use an id like C-0016)"
        )
    return canonical


def project_arg(token: str, settings: Settings) -> str:
    """A project configured in settings, by its id."""
    known = [p.id for p in settings.projects]
    if token not in known:
        listed = ", ".join(escape_markdown(p) for p in known) or "none"
        raise CommandError(f"unknown project {escape_markdown(token[:80])} (configured: {listed})")
    return token


def _reason(tokens: Sequence[str]) -> str:
    text = " ".join(tokens).strip()
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON] + "..."
    return escape_markdown(text)


# --------------------------------------------------------------------------- commands


class Command:
    """One command: a name, where it may be used, an argument parser and `run()`."""

    name: ClassVar[str]
    usage: ClassVar[str]
    summary: ClassVar[str]
    channels: ClassVar[frozenset[Channel]]

    def parse(self, tokens: list[str], settings: Settings) -> dict[str, Any]:
        """Validated arguments; CommandError when they do not fit ``usage``."""
        if tokens:
            raise self.usage_error("takes no arguments")
        return {}

    def project_of(self, ctx: Context, args: dict[str, Any]) -> str | None:
        """The project the command acts on (authorization is per project)."""
        return ctx.project if ctx.channel == "mr" else args.get("project")

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        raise NotImplementedError

    def usage_error(self, problem: str) -> CommandError:
        return CommandError(f"{self.name} {problem}; usage: {self.usage}")


def _mr(ctx: Context) -> tuple[str, int, MergeRequestInfo]:
    if ctx.project is None or ctx.mr_iid is None:
        raise CommandError("this command works only in a merge request comment")
    info = ctx.forge(ctx.project).merge_request(ctx.mr_iid)
    if not info.source_branch.startswith(ctx.settings.branch_prefix):
        raise CommandError("this merge request was not opened by the bot")
    return ctx.project, ctx.mr_iid, info


class Rebase(Command):
    name = "rebase"
    usage = "rebase"
    summary = "rebase this merge request on its target branch"
    channels = frozenset({"mr"})

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        project, iid, info = _mr(ctx)
        if info.state != "opened":
            return Reply(f"Cannot rebase: this merge request is {info.state}.", ok=False)
        ctx.forge(project).rebase(iid)
        return Reply("Rebase requested: GitLab rebases the branch on its target now.")


class Recreate(Command):
    name = "recreate"
    usage = "recreate"
    summary = "rebuild the branch from the default branch, dropping commits on it"
    channels = frozenset({"mr"})

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        project, iid, info = _mr(ctx)
        if info.state != "opened":
            return Reply(f"Cannot recreate: this merge request is {info.state}.", ok=False)
        # Never by deleting the branch: GitLab closes an open MR whose branch is deleted. The
        # run rewrites the branch from the default branch in one commit request (force).
        remove = [HOLD_LABEL] if HOLD_LABEL in info.labels else []
        ctx.forge(project).set_labels(iid, add=[RECREATE_LABEL], remove=remove)
        ctx.scheduler.run_project(project)
        return Reply(
            f"Queued a run that rewrites this branch from {escape_markdown(info.target_branch)}, "
            "dropping the commits on it; this merge request stays open."
        )


class Ignore(Command):
    name = "ignore"
    usage = "ignore [CONTROL] [reason]"
    summary = "ignore this merge request (or one control in it) until the findings change"
    channels = frozenset({"mr"})

    def parse(self, tokens: list[str], settings: Settings) -> dict[str, Any]:
        control = None
        if tokens and CONTROL_ID.match(tokens[0].upper()):
            control = control_arg(tokens[0])
            tokens = tokens[1:]
        return {"control": control, "reason": _reason(tokens)}

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        project, iid, info = _mr(ctx)
        who = escape_markdown(ctx.actor.username)
        because = f" Reason: {args['reason']}" if args["reason"] else ""
        control = args["control"]
        if control is not None:
            if control not in mr_controls(info):
                named = ", ".join(mr_controls(info)) or "none"
                return Reply(
                    f"{control} is not part of this merge request (it names: {named}).", ok=False
                )
            ctx.forge(project).set_labels(iid, add=[IGNORE_LABEL_PREFIX + control])
            return Reply(
                f"Ignoring {control} in this merge request, as {who} asked.{because} "
                f"The next update leaves it out."
            )
        if info.state != "opened":
            return Reply(f"This merge request is already {info.state}.", ok=False)
        # The bot's token closes it, so GitLab's state events name the bot: the label is what
        # tells the next run that a person asked for this close (labelled first, so that a
        # failed close leaves an open MR, never an unlabelled closed one that is proposed again).
        ctx.forge(project).set_labels(iid, add=[IGNORED_LABEL])
        ctx.forge(project).set_state(iid, "close")
        return Reply(
            f"Closed as ignored, as {who} asked.{because} The bot will not reopen it until the "
            f"findings change; say `@{ctx.settings.bot_username} unignore` to undo."
        )


class Unignore(Command):
    name = "unignore"
    usage = "unignore"
    summary = "undo ignore: reopen this merge request and include every control again"
    channels = frozenset({"mr"})

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        project, iid, info = _mr(ctx)
        ignored = [
            label
            for label in info.labels
            if label.startswith(IGNORE_LABEL_PREFIX) or label == IGNORED_LABEL
        ]
        if info.state == "merged":
            return Reply("This merge request is merged; there is nothing to unignore.", ok=False)
        if info.state != "closed" and not ignored:
            return Reply("Nothing is ignored in this merge request.", ok=False)
        if ignored:
            ctx.forge(project).set_labels(iid, remove=ignored)
        if info.state == "closed":
            ctx.forge(project).set_state(iid, "reopen")
        return Reply("Active again: the bot keeps this merge request up to date.")


class Explain(Command):
    name = "explain"
    usage = "explain [CONTROL]"
    summary = "explain a control (in a merge request: every control it fixes)"
    channels = frozenset({"mr", "chat"})

    def parse(self, tokens: list[str], settings: Settings) -> dict[str, Any]:
        if len(tokens) > 1:
            raise self.usage_error("takes at most one control id")
        return {"control": control_arg(tokens[0]) if tokens else None}

    def project_of(self, ctx: Context, args: dict[str, Any]) -> str | None:
        return ctx.project

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        ids: Sequence[str]
        if args["control"] is not None:
            ids = [args["control"]]
        elif ctx.channel == "chat":
            raise self.usage_error("needs a control id in chat")
        else:
            ids = mr_controls(_mr(ctx)[2])
            if not ids:
                return Reply("This merge request names no control.", ok=False)
        return Reply("\n\n".join(explain_control(cid) for cid in ids))


def explain_control(control_id: str) -> str:
    """A short Markdown explanation of one control from the catalog."""
    control = controls.require(control_id)
    text = (
        f"**{control.id} {escape_markdown(control.name)}** ({control.severity})\n"
        f"Why: {escape_markdown(control.why.strip())}\n"
        f"Fix: {escape_markdown(control.fix.strip())}"
    )
    fixer = fixer_for(control.id)
    if fixer is not None:
        text += f"\nFixer: `{fixer.name}` (risk {fixer.risk.label})"
    elif (why := controls.not_fixable_in_git(control)) is not None:
        text += f"\nNot fixable in git: {escape_markdown(why.action.strip())}"
    return text


class Retry(Command):
    name = "retry"
    usage = "retry"
    summary = "run this project again now"
    channels = frozenset({"mr"})

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        project, _, _ = _mr(ctx)
        ctx.scheduler.run_project(project)
        return Reply("Queued a new run of this project; this merge request is updated after it.")


class Run(Command):
    name = "run"
    usage = "run PROJECT [CONTROL...]"
    summary = "run the bot on a project now"
    channels = frozenset({"chat"})

    def parse(self, tokens: list[str], settings: Settings) -> dict[str, Any]:
        if not tokens:
            raise self.usage_error("needs a project")
        return {
            "project": project_arg(tokens[0], settings),
            "controls": [control_arg(t) for t in tokens[1:]],
        }

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        ctx.scheduler.run_project(args["project"])
        text = f"Queued a run of {escape_markdown(args['project'])}."
        if args["controls"]:
            # A run always plans the whole project; say so rather than pretend to filter.
            text += f" It covers every control, including {', '.join(args['controls'])}."
        return Reply(text)


class Status(Command):
    name = "status"
    usage = "status PROJECT"
    summary = "list the bot's open merge requests of a project"
    channels = frozenset({"chat"})

    def parse(self, tokens: list[str], settings: Settings) -> dict[str, Any]:
        if len(tokens) != 1:
            raise self.usage_error("needs exactly one project")
        return {"project": project_arg(tokens[0], settings)}

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        project = args["project"]
        mrs = ctx.forge(project).open_merge_requests(ctx.settings.branch_prefix)
        name = escape_markdown(project)
        if not mrs:
            return Reply(f"{name}: no open merge request by the bot.")
        lines = [f"{name}: {len(mrs)} open merge request(s)"]
        for mr in mrs:
            lines.append(f"- !{mr.iid} {escape_markdown(mr.title)} {mr.web_url}".rstrip())
        return Reply("\n".join(lines))


class Help(Command):
    name = "help"
    usage = "help"
    summary = "list the commands"
    channels = frozenset({"mr", "chat"})

    def project_of(self, ctx: Context, args: dict[str, Any]) -> str | None:
        return None

    def run(self, ctx: Context, args: dict[str, Any]) -> Reply:
        return Reply(help_text(ctx.channel, ctx.settings.bot_username))


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Rebase(),
        Recreate(),
        Ignore(),
        Unignore(),
        Explain(),
        Retry(),
        Run(),
        Status(),
        Help(),
    )
}


def commands_for(channel: Channel) -> list[Command]:
    return [c for c in COMMANDS.values() if channel in c.channels]


def help_text(channel: Channel, bot_username: str) -> str:
    """The commands of one channel with their usage, as the bot shows them."""
    prefix = f"@{bot_username} " if channel == "mr" else "/remedy "
    lines = ["Commands:"]
    lines += [f"- `{prefix}{c.usage}`: {c.summary}" for c in commands_for(channel)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Invocation:
    """A parsed command with validated arguments."""

    command: Command
    args: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _mention_pattern(bot_username: str) -> re.Pattern[str]:
    return re.compile(rf"^@{re.escape(bot_username)}(?![\w.-])(.*)$", re.IGNORECASE)


def find_mention(note: str, bot_username: str) -> str | None:
    """The text after the first line starting with ``@bot_username``, outside code and quotes."""
    mention = _mention_pattern(bot_username)
    fenced = False
    for raw in note.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced or line.startswith(">"):
            continue
        match = mention.match(line)
        if match:
            return match.group(1).strip()
    return None


def parse(text: str, channel: Channel, settings: Settings) -> Invocation:
    """Parse the words after the mention (MR) or after ``/remedy`` (chat)."""
    tokens = text.split()
    if not tokens:
        return Invocation(COMMANDS["help"])
    if len(tokens) > MAX_ARGS + 1:
        raise CommandError(f"too many words ({len(tokens)}); a command takes at most {MAX_ARGS}")
    name = tokens[0].lower()
    command = COMMANDS.get(name)
    if command is None or channel not in command.channels:
        where = "here" if command is not None else ""
        known = ", ".join(c.name for c in commands_for(channel))
        what = f"{escape_markdown(tokens[0][:40])} is not a command{' ' + where if where else ''}"
        raise CommandError(f"{what}; commands: {known}")
    return Invocation(command, command.parse(tokens[1:], settings))


# --------------------------------------------------------------------------- authorization


class MemberCache:
    """Access levels from GitLab, cached briefly so a burst of notes costs one API call."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._levels: dict[tuple[str, int], tuple[float, int]] = {}

    def access_level(self, forge: CommandForge, project: str, user_id: int) -> int:
        key = (project, user_id)
        now = self.clock()
        with self._lock:
            hit = self._levels.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        level = forge.access_level(user_id)
        with self._lock:
            self._levels[key] = (now, level)
        return level


def authorize(ctx: Context, invocation: Invocation) -> str | None:
    """None when the actor may run the command; otherwise why not (shown and logged)."""
    if ctx.channel == "mr":
        project = ctx.project
        if project is None or not ctx.actor.user_id.isdigit():
            return "the command did not come from a merge request of a known project"
        members = ctx.members or MemberCache(0)
        level = members.access_level(ctx.forge(project), project, int(ctx.actor.user_id))
        if level < ctx.web.min_access_level:
            return (
                f"@{escape_markdown(ctx.actor.username)} needs at least Developer access "
                f"to this project to command the bot"
            )
        return None
    project = invocation.command.project_of(ctx, invocation.args)
    granted = ctx.web.chat_users.get(ctx.actor.user_id)
    if granted is None:
        return "you are not allowed to use this bot; ask an administrator to add your user id"
    if project is None:
        return None
    if "*" not in granted and project not in granted:
        return f"you are not allowed to run commands for {escape_markdown(project)}"
    if ctx.web.chat_channels:
        in_channel = ctx.web.chat_channels.get(ctx.actor.channel_id, ())
        if "*" not in in_channel and project not in in_channel:
            return f"this channel is not mapped to {escape_markdown(project)}"
    return None


# --------------------------------------------------------------------------- dispatch


def dispatch(text: str, ctx: Context) -> Reply:
    """Parse, authorize and run one command; every refusal is a logged `Reply` with ok=False."""
    try:
        invocation = parse(text, ctx.channel, ctx.settings)
    except CommandError as exc:
        _refused(ctx, "invalid", str(exc))
        return Reply(str(exc), ok=False)
    name = invocation.command.name
    try:
        refusal = authorize(ctx, invocation)
        if refusal is not None:
            _refused(ctx, "unauthorized", refusal, command=name)
            return Reply(f"Refused: {refusal}.", ok=False)
        reply = invocation.command.run(ctx, invocation.args)
    except CommandError as exc:
        _refused(ctx, "invalid", str(exc), command=name)
        return Reply(str(exc), ok=False)
    log_event(
        "command",
        command=name,
        channel=ctx.channel,
        platform=ctx.actor.platform,
        user=ctx.actor.user_id,
        project=ctx.project or invocation.args.get("project"),
        ok=reply.ok,
    )
    return reply


def _refused(ctx: Context, kind: str, reason: str, command: str | None = None) -> None:
    log_event(
        "command-refused",
        logging.WARNING,
        kind=kind,
        command=command,
        channel=ctx.channel,
        platform=ctx.actor.platform,
        user=ctx.actor.user_id,
        project=ctx.project,
        reason=reason,
    )
