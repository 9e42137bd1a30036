"""GitLab webhooks: authenticate, bound, parse, decide and enqueue (``POST /webhooks/gitlab``).

`handle` answers one delivery from its headers and body, without HTTP (`bot.web` wires it):

    X-Gitlab-Token   checked before the body is read: 401 bad or missing, 503 not configured
    body             400 not a JSON object (or nested deeper than ``max_json_depth``, checked
                     before it is parsed)
    decide           a `Decision`: the reason the event is ignored (200), or the task to queue
    admit            one atomic de-duplication + enqueue (`bot.intake`): 202 queued, 200 when
                     the event was delivered before, 503 when the queue is down

Replays act once: every event that queues work carries a de-duplication key naming what it is,
not how it was delivered (`note_key`, `merge_request_key`, `pipeline_key`).

Pipeline events (GitLab's "Pipeline Hook", from a project webhook with "Pipeline events" or from
``remedy notify-pipeline`` in the CI template) queue a run of the project when a pipeline of its
default branch has a finished scan job (the project's ``report.job``): once per pipeline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from array import array
from collections.abc import Awaitable, Callable, Mapping
from itertools import accumulate
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, ValidationError

from bot import commands
from bot.intake import Event
from bot.settings import GitlabArtifactReport
from bot.web_context import Answer, Refused, WebContext

# --------------------------------------------------------------------------- de-duplication


# Keys name the event itself, never its delivery: a retried delivery, a new Idempotency-Key, a
# second hook on the same project or re-serialised JSON (one more space) all give the same key.


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]


def note_key(project_id: int, noteable_type: str, noteable_iid: int, note_id: int) -> str:
    """One comment: GitLab's (project, noteable, note id), whatever its body looks like."""
    return f"note:{project_id}:{_digest(noteable_type)[:8]}:{noteable_iid}:{note_id}"


def merge_request_key(
    project_id: int, iid: int, action: str | None, oldrev: str | None, head: str, updated_at: str
) -> str:
    """One merge request event: its action, the push it carries (old and new head) and GitLab's
    ``updated_at`` of the merge request at that moment."""
    return f"mr:{project_id}:{iid}:" + _digest(action, oldrev, head, updated_at)


def pipeline_key(project_id: int, pipeline_id: int) -> str:
    """One pipeline: GitLab sends a hook at every status change of the pipeline and the CI
    template sends one more; all of them run the project once."""
    return f"pipeline:{project_id}:{pipeline_id}"


# --------------------------------------------------------------------------- bounds


def json_too_deep(body: bytes, limit: int) -> bool:
    """Does the JSON text nest arrays/objects more than ``limit`` deep? Checked on the bytes
    before parsing, in one linear pass of C-speed steps: drop escapes and string literals, map
    each opening bracket to +1 and each closing one to -1, and take the highest running sum."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common, shallow payload: no need to look closer
    # Escaped backslashes go first, so that one before a closing quote does not hide it.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    steps = array("b", outside.translate(_STEPS, _NOT_BRACKETS))
    return max(accumulate(steps), default=0) > limit


_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


# --------------------------------------------------------------------------- payloads


class _Edge(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class HookUser(_Edge):
    username: str
    id: int | None = None


class HookProject(_Edge):
    id: int
    path_with_namespace: str


class NoteAttributes(_Edge):
    id: int
    note: str
    noteable_type: str
    author_id: int
    action: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    system: bool = False


class HookMergeRequest(_Edge):
    iid: int
    source_branch: str


class NoteHook(_Edge):
    object_kind: Literal["note"]
    user: HookUser
    project: HookProject
    object_attributes: NoteAttributes
    merge_request: HookMergeRequest | None = None


class LastCommit(_Edge):
    id: str = ""


class MergeRequestAttributes(_Edge):
    iid: int
    source_branch: str
    state: str
    action: str | None = None
    oldrev: str | None = None
    updated_at: str | None = None
    last_commit: LastCommit | None = None


class MergeRequestHook(_Edge):
    object_kind: Literal["merge_request"]
    user: HookUser
    project: HookProject
    object_attributes: MergeRequestAttributes


class PipelineProject(HookProject):
    default_branch: str | None = None


class PipelineAttributes(_Edge):
    id: int
    ref: str
    status: str
    tag: bool = False
    source: str | None = None


class PipelineBuild(_Edge):
    name: str
    status: str


class PipelineHook(_Edge):
    object_kind: Literal["pipeline"]
    project: PipelineProject
    object_attributes: PipelineAttributes
    builds: tuple[PipelineBuild, ...] = ()


FINISHED_BUILD = frozenset({"success", "failed"})
"""Build statuses after which the scan's artifact exists (a failed scan is one with findings)."""


def is_scan_job(name: str, job: str) -> bool:
    """Is ``name`` the scan job ``job``, alone or as one of its ``parallel`` instances
    (``kubescape 1/2``, ``kubescape: [prod]``)?"""
    return name == job or name.startswith((f"{job} ", f"{job}: "))


Decision: TypeAlias = str | tuple[str, Event, str]
"""The reason an event is ignored, or (task, its one JSON argument, de-duplication key)."""


def _validate(model: type[BaseModel], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(400, f"malformed {payload.get('object_kind')} event: {where}") from None


# --------------------------------------------------------------------------- the handler


def authenticate(ctx: WebContext, headers: Mapping[str, str]) -> None:
    """The shared secret in ``X-Gitlab-Token`` (compared in constant time), or `Refused`."""
    secret = ctx.settings.webhook_secret
    if secret is None:
        raise Refused(503, "webhook secret is not configured (REMEDY_WEBHOOK_SECRET)")
    token = headers.get("x-gitlab-token")
    if token is None:
        raise Refused(401, "missing X-Gitlab-Token")
    if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        raise Refused(401, "invalid X-Gitlab-Token")


def parse_body(ctx: WebContext, body: bytes) -> dict[str, Any]:
    """The delivery's JSON object; `Refused` (400) for anything else."""
    limit = ctx.web.max_json_depth
    if json_too_deep(body, limit):
        raise Refused(400, f"JSON nested deeper than {limit} levels")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "body is not JSON") from None
    except RecursionError:  # json_too_deep should have caught it; never a 500
        raise Refused(400, f"JSON nested deeper than {limit} levels") from None
    if not isinstance(payload, dict):
        raise Refused(400, "body is not a JSON object")
    return payload


async def handle(
    ctx: WebContext, headers: Mapping[str, str], read_body: Callable[[], Awaitable[bytes]]
) -> Answer:
    """Answer one delivery; the body is read only once the token is right."""
    try:
        authenticate(ctx, headers)
        payload = parse_body(ctx, await read_body())
        decision = decide(ctx, payload, headers.get("x-gitlab-event", ""))
        if isinstance(decision, str):
            return Answer(200, "ignored", decision)
        task, event, key = decision
        fields = _log_fields(task, event)
        if not await ctx.admit(task, key, event):
            return Answer(200, "ignored", "duplicate delivery", fields)
        return Answer(202, "queued", task, fields)
    except Refused as exc:
        return Answer.refused(exc)


def _log_fields(task: str, event: Event) -> dict[str, Any]:
    if isinstance(event, dict):
        return {"task": task, "project": event["project"], "mr": event["mr_iid"]}
    return {"task": task, "project": event}  # a project run takes the project id alone


def decide(ctx: WebContext, payload: dict[str, Any], event_header: str = "") -> Decision:
    """What to do with one event: the reason it is ignored, or the task to queue."""
    kind = payload.get("object_kind")
    if kind == "note":
        return _note(ctx, payload)
    if kind == "merge_request":
        return _merge_request(ctx, payload)
    if kind == "pipeline":
        return _pipeline(ctx, payload)
    shown = str(kind if kind is not None else event_header)[:60]
    return f"event type {shown!r} is not handled"


def _configured(ctx: WebContext, project: HookProject) -> bool:
    return project.path_with_namespace in ctx.project_ids or str(project.id) in ctx.project_ids


def _project_key(ctx: WebContext, project: HookProject) -> str:
    if project.path_with_namespace in ctx.project_ids:
        return project.path_with_namespace
    return str(project.id)


def _note(ctx: WebContext, payload: dict[str, Any]) -> Decision:
    attrs = payload.get("object_attributes")
    kind = attrs.get("noteable_type") if isinstance(attrs, dict) else None
    if isinstance(kind, str) and kind != "MergeRequest":
        return f"note on {kind[:40]!r}, not on a merge request"
    hook: NoteHook = _validate(NoteHook, payload)
    note = hook.object_attributes
    if ctx.bot.is_bot(note.author_id, hook.user.username):
        return "comment by the bot itself"
    if note.system:
        return "system note"
    if note.action is not None and note.action != "create":
        return f"note {note.action[:20]!r}, only new notes carry commands"
    if note.action is None and note.created_at != note.updated_at:
        return "edited note, only new notes carry commands"
    if hook.merge_request is None:
        raise Refused(400, "malformed note event: merge_request")
    if not hook.merge_request.source_branch.startswith(ctx.settings.branch_prefix):
        return "not a merge request of the bot"
    if not _configured(ctx, hook.project):
        return "project is not configured"
    if commands.find_mention(note.note, ctx.settings.bot_username) is None:
        return "no command addressed to the bot"
    event = {
        "project": _project_key(ctx, hook.project),
        "mr_iid": hook.merge_request.iid,
        "note_id": note.id,
        "user_id": note.author_id,
        "username": hook.user.username,
        "note": note.note[:10_000],
    }
    key = note_key(hook.project.id, note.noteable_type, hook.merge_request.iid, note.id)
    return "remedy.mr_command", event, key


def _mr_key(hook: MergeRequestHook) -> str:
    attrs = hook.object_attributes
    head = attrs.last_commit.id if attrs.last_commit is not None else ""
    return merge_request_key(
        hook.project.id, attrs.iid, attrs.action, attrs.oldrev, head, attrs.updated_at or ""
    )


def _merge_request(ctx: WebContext, payload: dict[str, Any]) -> Decision:
    hook: MergeRequestHook = _validate(MergeRequestHook, payload)
    attrs = hook.object_attributes
    if not attrs.source_branch.startswith(ctx.settings.branch_prefix):
        return _human_merge_request(ctx, hook)
    if not _configured(ctx, hook.project):
        return "project is not configured"
    event = {"project": _project_key(ctx, hook.project), "mr_iid": attrs.iid}
    if attrs.action == "merge":
        return "remedy.mr_event", {**event, "kind": "merged"}, _mr_key(hook)
    if attrs.action == "close":
        return "closed without merge: the bot treats it as ignored"
    if attrs.action == "reopen":
        return "remedy.mr_event", {**event, "kind": "reopened"}, _mr_key(hook)
    if attrs.action == "update" and attrs.oldrev:
        # The hook's user is the account that pushed; the commit's author name and e-mail
        # are whatever the pusher typed, so they never make a push the bot's.
        if ctx.bot.is_bot(hook.user.id, hook.user.username):
            return "push by the bot"
        human = {**event, "kind": "human-push", "username": hook.user.username}
        return "remedy.mr_event", human, _mr_key(hook)
    return f"merge request action {str(attrs.action)[:20]!r} needs nothing"


def _human_merge_request(ctx: WebContext, hook: MergeRequestHook) -> Decision:
    """A person's MR: new commits go to the review task, which checks the repository's
    opt-in (``review_human_mrs``); everything else is not the bot's business."""
    attrs = hook.object_attributes
    if attrs.action not in ("open", "reopen", "update"):
        return "not a merge request of the bot"
    if attrs.action == "update" and not attrs.oldrev:
        return "merge request update without new commits needs no review"
    if attrs.state != "opened":
        return f"merge request is {attrs.state[:20]!r}"
    if not _configured(ctx, hook.project):
        return "project is not configured"
    event = {"project": _project_key(ctx, hook.project), "mr_iid": attrs.iid}
    return "remedy.review_mr", event, _mr_key(hook)


def _pipeline(ctx: WebContext, payload: dict[str, Any]) -> Decision:
    """A pipeline of the default branch whose scan job finished: run the project now (the
    task the schedule and ``/remedy run`` queue), once per pipeline."""
    hook: PipelineHook = _validate(PipelineHook, payload)
    attrs = hook.object_attributes
    if not _configured(ctx, hook.project):
        return "project is not configured"
    project_id = _project_key(ctx, hook.project)
    report = ctx.settings.project(project_id).report
    job, branch = "kubescape", hook.project.default_branch
    if isinstance(report, GitlabArtifactReport):
        job, branch = report.job, report.ref or branch
    if attrs.tag:
        return "tag pipeline, not a scan of the default branch"
    if attrs.source == "merge_request_event":
        return "merge request pipeline, not a scan of the default branch"
    if branch is None:
        raise Refused(400, "malformed pipeline event: project.default_branch")
    if attrs.ref != branch:
        return f"pipeline of {attrs.ref[:60]!r}, not of the default branch {branch[:60]!r}"
    scans = [b for b in hook.builds if is_scan_job(b.name, job)]
    if not any(b.status in FINISHED_BUILD for b in scans):
        shown = scans[0].status[:20] if scans else "absent"
        return f"scan job {job[:60]!r} has not finished in this pipeline ({shown})"
    return "remedy.run_project", project_id, pipeline_key(hook.project.id, attrs.id)
