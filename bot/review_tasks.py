"""The ``remedy.review_mr`` task: inline fix suggestions on a person's merge request.

Opt-in per repository (``review_human_mrs: true`` in ``.remedy.yaml`` on the default branch,
which the MR itself cannot switch on). The web process enqueues it for MR hook events (open,
update, reopen) of MRs the bot did not open; the task re-reads the MR, reviews its changed plain
manifests with `bot.review` and posts one diff discussion per suggestion. Safe to run twice:
each posted suggestion carries a marker with its fingerprint, and a suggestion already on the
MR is not posted again, so a redelivered event or a second run for the same head commit posts
nothing.
"""

from __future__ import annotations

from typing import Any

from bot import locks
from bot.errors import ForgeConflictError
from bot.forge.gitlab import GitLabForge
from bot.identity import BotIdentity
from bot.observability import log_event
from bot.repo_config import CONFIG_FILE, parse_repo_config
from bot.review import ChangedFile, not_reviewed, posted_fingerprints, review_changes
from bot.tasks import LockBusy, RemedyTask, _adapter, app, get_settings, redis_client


def review_merge_request(
    forge: GitLabForge,
    iid: int,
    *,
    bot_username: str,
    branch_prefix: str,
    bot_user_id: int | None = None,
) -> dict[str, Any]:
    """Review MR ``iid`` and post the suggestions not posted yet; a JSON summary."""
    config = parse_repo_config(forge.read_file(CONFIG_FILE), CONFIG_FILE)
    if not config.enabled or not config.review_human_mrs:
        return {"status": "ignored", "reason": "review_human_mrs is not enabled in .remedy.yaml"}
    mr = forge.merge_request_changes(iid)
    if mr["state"] != "opened":
        return {"status": "ignored", "reason": f"merge request is {mr['state']}"}
    author_id = mr.get("author_id")
    by_bot = BotIdentity(bot_username, bot_user_id).is_bot(
        author_id if isinstance(author_id, int) else None, mr["author"]
    )
    if by_bot or mr["source_branch"].startswith(branch_prefix):
        return {"status": "ignored", "reason": "merge request of the bot"}
    refs = mr["diff_refs"]
    head = str(refs.get("head_sha") or mr["sha"])
    if not refs.get("base_sha") or not head:
        return {"status": "ignored", "reason": "merge request has no diff yet"}
    files = []
    for change in mr["changes"]:
        path = str(change["new_path"])
        if change.get("deleted_file") or not_reviewed(path, "") == "":
            continue  # deleted, or not a YAML file the review reads
        text = forge.read_file(path, head)
        if text is None or not_reviewed(path, text) == "":
            continue
        diff = str(change.get("diff") or "") or None
        old_path = str(change.get("old_path") or path)
        old = None
        if diff is None and not change.get("new_file"):
            # GitLab left the diff out (too large): compare with the base instead.
            old = forge.read_file(old_path, str(refs["base_sha"]))
        files.append(ChangedFile(path, old, text, diff=diff, old_path=old_path))
    review = review_changes(files, config, head)
    posted = posted_fingerprints(forge.merge_request_note_bodies(iid)) if review.suggestions else ()
    new = [s for s in review.suggestions if s.fingerprint not in posted]
    done, refused = 0, []
    for suggestion in new:
        try:
            forge.post_suggestion(
                iid,
                refs,
                suggestion.path,
                suggestion.line,
                suggestion.body,
                old_path=suggestion.old_path,
            )
        except ForgeConflictError as exc:
            # GitLab refused the position (e.g. the diff moved on): the others still go.
            refused.append(f"{suggestion.path}:{suggestion.line}: {exc}")
            continue
        done += 1
    return {
        "status": "reviewed",
        "head": head,
        "posted": done,
        "already_posted": len(review.suggestions) - len(new),
        "refused": refused,
        "skipped": list(review.skipped),
    }


@app.task(bind=True, base=RemedyTask, name="remedy.review_mr")
def review_mr(self: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    """Suggest fixes inline on a person's merge request (``event``: project, mr_iid)."""
    return _adapter(self, _review_mr_body, event)


def _review_mr_body(task: RemedyTask, event: dict[str, Any]) -> dict[str, Any]:
    from bot.service import open_forge

    settings = get_settings()
    project, iid = settings.project(str(event["project"])), int(event["mr_iid"])
    key = locks.lock_key("review", project.id, str(iid))
    with locks.held(
        redis_client(), key, task.request.id or "local", settings.lock_timeout
    ) as lease:
        if lease is None:
            # Two hook deliveries for one MR at once: the second waits, then finds the markers.
            raise LockBusy(f"!{iid} of {project.id} is being reviewed elsewhere")
        result = review_merge_request(
            open_forge(settings, project),
            iid,
            bot_username=settings.bot_username,
            branch_prefix=settings.branch_prefix,
            bot_user_id=settings.bot_user_id,
        )
    log_event(
        "mr-reviewed",
        project=project.id,
        mr=iid,
        **{
            k: v for k, v in result.items() if k in ("status", "reason", "posted", "already_posted")
        },
    )
    return result
