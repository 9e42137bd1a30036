"""Celery tasks behind the web endpoints: MR note commands, chat commands, MR lifecycle events.

Registered on the app of `bot.tasks` (a worker started with ``celery -A bot.command_tasks``
serves them together with the scheduled tasks). Like the other tasks they take plain JSON,
re-read state from GitLab and are safe to run twice: a note command is answered once, because
the reply is skipped when the note already carries the bot's ``robot`` award (given after the
reply; ``eyes`` acknowledges the note when a worker picks it up).

GitLab is reached through the project's `bot.forge.gitlab.GitLabForge` (python-gitlab, errors
translated into the `bot.errors` forge family there), made per task on first use; tests swap
how it is made with `use_port_factory`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import Counter

from bot.commands import (
    HOLD_LABEL,
    Actor,
    Context,
    GitLab,
    MemberCache,
    Reply,
    dispatch,
    find_mention,
)
from bot.errors import (
    ForgePermissionError,
    ForgeTransientError,
)
from bot.forge.base import CommandForge
from bot.forge.gitlab import GitLabForge
from bot.observability import log_event
from bot.settings import Settings
from bot.tasks import RemedyTask, _adapter, app, get_settings
from bot.web_settings import WebSettings

ACK_EMOJI = "eyes"
"""Awarded on a command note when a worker picks it up."""
DONE_EMOJI = "robot"
"""Awarded once the reply is posted: a redelivered task sees it and does not answer twice."""

MERGED = Counter(
    "remedy_merge_requests_merged_total", "Bot merge requests merged (fixes landed)", ["project"]
)
COMMANDS_RUN = Counter(
    "remedy_commands_total", "Commands handled, by channel and outcome", ["channel", "outcome"]
)


# --------------------------------------------------------------------------- GitLab port


def default_port(settings: Settings) -> GitLab:
    """The commands' GitLab: each project's `bot.forge.gitlab.GitLabForge`, made on first use
    (``help`` and ``explain`` need no token) and kept for the task."""
    forges: dict[str, CommandForge] = {}

    def forge(project: str) -> CommandForge:
        if settings.gitlab_token is None:
            raise ForgePermissionError("REMEDY_GITLAB_TOKEN is not set; the bot cannot call GitLab")
        token = settings.gitlab_token.get_secret_value()
        if project not in forges:
            # max_retries=0: the task retries transient errors (one retry layer, never two)
            forges[project] = GitLabForge(
                settings.gitlab_url,
                token,
                project,
                bot_username=settings.bot_username,
                max_retries=0,
                timeout=10.0,
            )
        return forges[project]

    return forge


PortFactory = Callable[[Settings], GitLab]
_port_factory: PortFactory = default_port


def use_port_factory(factory: PortFactory) -> None:
    """Swap how the tasks reach GitLab (tests pass a double)."""
    global _port_factory
    _port_factory = factory


@functools.cache
def web_settings() -> WebSettings:
    return WebSettings()


_members: dict[float, MemberCache] = {}


def member_cache(ttl: float) -> MemberCache:
    return _members.setdefault(ttl, MemberCache(ttl))


class CeleryScheduler:
    """Hands work to the workers by task name (the web process never imports task bodies)."""

    def run_project(self, project: str) -> None:
        app.send_task("remedy.run_project", args=[project])


# --------------------------------------------------------------------------- note commands


def handle_note_command(
    settings: Settings, web: WebSettings, gitlab: GitLab, scheduler: Any, event: dict[str, Any]
) -> dict[str, Any]:
    """Acknowledge, authorize, run and answer one command note (the body of `mr_command`)."""
    project, iid, note_id = str(event["project"]), int(event["mr_iid"]), int(event["note_id"])
    text = find_mention(str(event["note"]), settings.bot_username)
    if text is None:
        return {"status": "ignored", "reason": "no command addressed to the bot"}
    forge = gitlab(project)
    if forge.note_has_award(iid, note_id, DONE_EMOJI):
        # Delivered twice (acks_late after a worker died): the first run already answered.
        return {"status": "ignored", "reason": "note already answered"}
    forge.award_emoji(iid, note_id, ACK_EMOJI)
    ctx = Context(
        settings=settings,
        web=web,
        actor=Actor("gitlab", str(event["user_id"]), str(event["username"])),
        channel="mr",
        gitlab=gitlab,
        scheduler=scheduler,
        project=project,
        mr_iid=iid,
        members=member_cache(web.member_cache_ttl),
    )
    reply = dispatch(text, ctx)
    forge.reply(iid, _mention_reply(str(event["username"]), reply))
    # Marked after the reply: a failure before this point is retried and answered then.
    forge.award_emoji(iid, note_id, DONE_EMOJI)
    COMMANDS_RUN.labels(channel="mr", outcome="ok" if reply.ok else "refused").inc()
    return {"status": "answered", "ok": reply.ok}


def _mention_reply(username: str, reply: Reply) -> str:
    # The username comes from GitLab's payload; keep it to a safe handle before mentioning it.
    safe = "".join(ch for ch in username if ch.isalnum() or ch in "._-")[:255]
    return f"@{safe} {reply.text}" if safe else reply.text


@app.task(bind=True, base=RemedyTask, name="remedy.mr_command")
def mr_command(self: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    """Run a command given in a merge request note (``event`` as built by `bot.web`)."""
    return _adapter(self, _mr_command_body, event)


def _mr_command_body(task: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    return handle_note_command(
        settings, web_settings(), _port_factory(settings), CeleryScheduler(), event
    )


# --------------------------------------------------------------------------- chat commands


def handle_chat_command(
    settings: Settings,
    web: WebSettings,
    gitlab: GitLab,
    scheduler: Any,
    event: dict[str, Any],
    post: Callable[[str, dict[str, Any]], None],
) -> dict[str, Any]:
    """Run one chat command and post the result to its ``response_url``."""
    ctx = Context(
        settings=settings,
        web=web,
        actor=Actor(
            event["platform"],
            str(event["user_id"]),
            str(event.get("user_name", "")),
            str(event.get("channel_id", "")),
        ),
        channel="chat",
        gitlab=gitlab,
        scheduler=scheduler,
    )
    reply = dispatch(str(event["text"]), ctx)
    url = str(event.get("response_url", ""))
    COMMANDS_RUN.labels(channel="chat", outcome="ok" if reply.ok else "refused").inc()
    if not web.allows_response_url(url):
        log_event(
            "chat-reply-dropped", reason="response_url not allowed", platform=event["platform"]
        )
        return {"status": "answered", "ok": reply.ok, "posted": False}
    post(url, {"response_type": "ephemeral", "text": reply.text})
    return {"status": "answered", "ok": reply.ok, "posted": True}


def post_json(url: str, body: dict[str, Any]) -> None:
    try:
        response = httpx.post(url, json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        raise ForgeTransientError(f"posting the chat reply failed: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ForgeTransientError(f"chat reply answered {response.status_code}")
    if response.status_code >= 400:
        log_event("chat-reply-refused", status=response.status_code)


@app.task(bind=True, base=RemedyTask, name="remedy.chat_command")
def chat_command(self: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    """Run a Slack or Mattermost slash command and post its result to ``response_url``."""
    return _adapter(self, _chat_command_body, event)


def _chat_command_body(task: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()

    return handle_chat_command(
        settings, web_settings(), _port_factory(settings), CeleryScheduler(), event, post_json
    )


# --------------------------------------------------------------------------- MR lifecycle


def handle_mr_event(
    settings: Settings,
    gitlab: GitLab,
    event: dict[str, Any],
    send: Callable[[str, list[Any]], None],
) -> dict[str, Any]:
    """React to a merge request of the bot being merged, reopened or pushed to by a person."""
    project, iid, kind = str(event["project"]), int(event["mr_iid"]), str(event["kind"])
    if kind == "merged":
        MERGED.labels(project=project).inc()
        log_event("fix-merged", project=project, mr=iid)
        # A run now, not at the next schedule: the open bot MRs touching the merged files are
        # regenerated from the new default branch (their files changed, so their hash did),
        # before they sit in conflict; the run also refreshes the dashboard.
        send("remedy.run_project", [project, True])
        return {"status": "recorded", "kind": kind}
    if kind == "reopened":
        log_event("mr-reopened", project=project, mr=iid)
        send("remedy.run_project", [project])
        return {"status": "active", "kind": kind}
    if kind == "human-push":
        forge = gitlab(project)
        info = forge.merge_request(iid)
        if HOLD_LABEL in info.labels:
            return {"status": "ignored", "reason": "already on hold"}
        forge.set_labels(iid, add=[HOLD_LABEL])
        who = "".join(ch for ch in str(event.get("username", "")) if ch.isalnum() or ch in "._-")
        forge.reply(
            iid,
            f"@{who} pushed to this branch, so the bot stops rewriting it. "
            f"Say `@{settings.bot_username} recreate` to let the bot start over from the "
            "default branch (dropping the pushed commits).",
        )
        log_event("mr-held", project=project, mr=iid)
        return {"status": "held", "kind": kind}
    raise ValueError(f"unknown merge request event kind {kind!r}")


@app.task(bind=True, base=RemedyTask, name="remedy.mr_event")
def mr_event(self: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    """A merge request of the bot was merged, reopened or pushed to by a person."""
    return _adapter(self, _mr_event_body, event)


def _mr_event_body(task: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()

    def send(name: str, args: list[Any]) -> None:
        app.send_task(name, args=args)

    return handle_mr_event(settings, _port_factory(settings), event, send)
