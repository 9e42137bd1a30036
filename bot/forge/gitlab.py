"""The GitLab forge: the only module that imports python-gitlab.

Requests per merge request are kept to the minimum GitLab allows: one POST
``/repository/commits`` (``start_branch`` + ``force`` + every file's create/update action) makes
the branch and its commit, one POST ``/merge_requests`` opens the MR, and one paginated listing
per run finds every bot MR (by the bot user's id, never by a label a person can remove).
Errors are translated here into the `bot.errors` forge family: 401/403/404 ->
`ForgePermissionError` naming the project and the permission; 409 and refused branches ->
`ForgeConflictError`; 429/5xx/network -> `ForgeTransientError`. The token is never part of a
message.

Retries: exactly one layer. ``max_retries`` > 0 (``remedy run``, no Celery) lets python-gitlab
retry 429/5xx itself, honouring Retry-After; the Celery path passes 0 and lets the task retry.
Every transient answer is logged (``gitlab-transient``), so retries are visible either way.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import gitlab
import gitlab.exceptions
import requests

from bot.errors import (
    ForgeConflictError,
    ForgeError,
    ForgePermissionError,
    ForgeTransientError,
    RepositoryError,
)
from bot.forge.base import ChangeEdit, ChangeRequest, MergeRequestInfo, check_repo_path
from bot.identity import BotIdentity
from bot.observability import log_event

BOT_LABEL = "kube-remedy"
DASHBOARD_LABEL = "kube-remedy-dashboard"
SNAPSHOT_SUFFIXES = (".yaml", ".yml", ".tpl", ".json", ".txt", ".j2")
SNAPSHOT_NAMES = ("CODEOWNERS", ".helmignore")

_PERMISSION = {
    "read": "Reporter access to read the repository",
    "write": "Developer access to push branches and open merge requests",
    "comment": "Reporter access to comment",
    "artifact": "Reporter access to read CI job artifacts",
}


@contextlib.contextmanager
def translate_errors(operation: str, where: str, need: str = "read") -> Iterator[None]:
    """python-gitlab and network errors -> the `bot.errors` forge family, never with the token."""
    try:
        yield
    except gitlab.exceptions.GitlabAuthenticationError as exc:
        raise ForgePermissionError(
            f"{operation} on {where}: the token was rejected (401); check REMEDY_GITLAB_TOKEN"
        ) from exc
    except gitlab.exceptions.GitlabError as exc:
        code = exc.response_code or 0
        message = str(exc.error_message)[:200]
        if code in (403, 404):
            raise ForgePermissionError(
                f"{operation} on {where} failed ({code}: {message}); the bot needs {_PERMISSION[need]}"
            ) from exc
        if code in (400, 409, 422):
            raise ForgeConflictError(f"{operation} on {where} refused ({code}): {message}") from exc
        if code == 429 or code >= 500:
            raise ForgeTransientError(
                f"{operation} on {where}: GitLab answered {code}",
                retry_after=_retry_after(exc),
                rate_limited=code == 429,
            ) from exc
        raise ForgeError(f"{operation} on {where} failed ({code}): {message}") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ForgeTransientError(f"{operation} on {where}: {type(exc).__name__}") from exc


MAX_RETRY_AFTER = 3600.0
"""Seconds: a longer Retry-After is taken as this (a task never sleeps on GitLab for hours)."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), at most
    `MAX_RETRY_AFTER`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    wait = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(wait, 0.0), MAX_RETRY_AFTER)


class _Throttled(gitlab.exceptions.GitlabHttpError):
    """A 429/5xx answer with what its Retry-After header asked for (`translate_errors` reads
    it: python-gitlab's own errors keep no headers)."""

    def __init__(self, cause: gitlab.exceptions.GitlabHttpError, retry_after: float) -> None:
        super().__init__(cause.error_message, cause.response_code, cause.response_body)
        self.retry_after = retry_after


def _retry_after(exc: BaseException) -> float | None:
    """The Retry-After of a `_Throttled` error, found through python-gitlab's re-raising."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _Throttled):
            return seen.retry_after
        seen = seen.__cause__ or seen.__context__
    return None


class _Client(gitlab.Gitlab):
    """python-gitlab with one retry budget for every call (python-gitlab's default is 10 for
    429 on calls that do not pass ``max_retries``); 0 turns its retries off entirely. A
    transient answer that ends a call carries its Retry-After (`_Throttled`)."""

    def __init__(self, *args: Any, retries: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retries = retries
        self._last = threading.local()
        self.session.hooks["response"].append(self._remember_retry_after)

    def _remember_retry_after(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self._last.retry_after = retry_after_seconds(response.headers.get("Retry-After"))

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["max_retries"] = self.retries
        kwargs["obey_rate_limit"] = self.retries > 0
        kwargs["retry_transient_errors"] = self.retries > 0
        self._last.retry_after = None
        try:
            return super().http_request(*args, **kwargs)
        except gitlab.exceptions.GitlabHttpError as exc:
            code = exc.response_code or 0
            wait = getattr(self._last, "retry_after", None)
            if (code == 429 or code >= 500) and wait is not None:
                raise _Throttled(exc, wait) from exc
            raise


def _log_transient(retries: int) -> Any:
    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code == 429 or response.status_code >= 500:
            log_event(
                "gitlab-transient",
                status=response.status_code,
                method=response.request.method,
                path=urlsplit(response.url).path,
                retry_after=response.headers.get("Retry-After"),
                retried_by="python-gitlab" if retries else "task",
            )

    return hook


def client(url: str, token: str, timeout: float, retries: int = 5) -> gitlab.Gitlab:
    """A python-gitlab client retrying 429 and 5xx ``retries`` times (0: never), honouring
    Retry-After; each transient answer is logged."""
    gl = _Client(url, private_token=token, timeout=timeout, per_page=100, retries=retries)
    gl.session.hooks["response"].append(_log_transient(retries))
    return gl


def current_user_id(url: str, token: str, timeout: float = 10.0) -> int:
    """The numeric id of the token's own user (``GET /user``): the bot's identity."""
    # asked once at start: a down GitLab must not stall it (no python-gitlab retries)
    gl = client(url.rstrip("/"), token, timeout, retries=0)
    try:
        with translate_errors("read the token's user", f"GitLab at {url}"):
            gl.auth()
            return int(gl.user.id)  # type: ignore[union-attr]
    finally:
        gl.session.close()


def _status(exc: BaseException) -> int:
    cause = exc.__cause__
    return int(getattr(cause, "response_code", 0) or 0)


class GitLabForge:
    """A `Forge` over one GitLab project."""

    def __init__(
        self,
        url: str,
        token: str,
        project: str | int,
        *,
        bot_username: str = "kube-remedy",
        bot_email: str | None = None,
        max_retries: int = 5,
        timeout: float = 30.0,
        assign_reviewers: bool = False,
        remember_listings: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.project_ref = str(project)
        self.bot_username = bot_username
        self.bot_email = bot_email or f"{bot_username}@users.noreply.kube-remedy"
        self.assign_reviewers = assign_reviewers
        self._gl = client(self.url, token, timeout, max_retries)
        self._trees: dict[str, tuple[str, ...]] = {}
        self._links: dict[str, frozenset[str]] = {}
        """Per ref: the paths that are symlinks (tree mode 120000)."""
        self._users: dict[str, int | None] = {}
        self._branches: dict[str, str] | None = None
        self._remember = remember_listings
        """One run's forge: the MR listing and the dashboard issue are read once and kept
        until this forge itself writes a merge request or the issue."""
        self._changes: list[ChangeRequest] | None = None
        self._dashboard_issue: tuple[Any | None] | None = None
        self._default: str | None = None

    def __repr__(self) -> str:  # never the token
        return f"GitLabForge({self.url!r}, project={self.project_ref!r})"

    # ------------------------------------------------------------------ errors

    def _call(self, operation: str, need: str = "read") -> contextlib.AbstractContextManager[None]:
        return translate_errors(operation, f"GitLab project {self.project_ref} at {self.url}", need)

    @cached_property
    def bot_user_id(self) -> int:
        """The token's user: the bot. Its id, not its name, tells the bot's MRs and commits."""
        with self._call("read the bot's own user"):
            self._gl.auth()
            return int(self._gl.user.id)  # type: ignore[union-attr]

    @cached_property
    def bot_committers(self) -> frozenset[str]:
        """The e-mails GitLab writes as the committer of the bot's commits (``GET /user``'s
        ``commit_email``, else ``email``; empty when GitLab shows neither). A commit on the
        bot's branch is the bot's only when the bot authored *and* committed it: a person's
        ``git commit --amend`` or rebase keeps the bot as author, with the person as committer."""
        with self._call("read the bot's own user"):
            if getattr(self._gl, "user", None) is None:
                self._gl.auth()
            user = self._gl.user.attributes  # type: ignore[union-attr]
        return frozenset(
            str(user[key]).lower() for key in ("commit_email", "email") if user.get(key)
        )

    def is_bot_commit(self, commit: Mapping[str, Any]) -> bool:
        """Was ``commit`` (GitLab's commit JSON) written by the bot: its author e-mail, and its
        committer e-mail when GitLab tells the bot's?"""
        if str(commit.get("author_email") or "").lower() != self.bot_email.lower():
            return False
        committers = self.bot_committers
        return not committers or str(commit.get("committer_email") or "").lower() in committers

    @property
    def identity(self) -> BotIdentity:
        """The bot (`bot.identity`, the one definition): its username and its user id."""
        return BotIdentity(self.bot_username, self.bot_user_id)

    # ------------------------------------------------------------------ project

    @cached_property
    def _project(self) -> Any:
        with self._call("read the project"):
            return self._gl.projects.get(self.project_ref)

    def default_branch(self) -> str:
        if self._default is None:
            self._default = str(self._project.default_branch or "main")
        return self._default

    def known(self) -> dict[str, Any]:
        """What this forge learnt of the project that another forge of the same run may reuse
        (`prime`), as plain JSON: the default branch, the bot's user id and the trees listed."""
        return {
            "default_branch": self.default_branch(),
            "bot_user_id": self.bot_user_id,
            "bot_committers": sorted(self.bot_committers),
            "trees": {ref: list(paths) for ref, paths in self._trees.items()},
            "links": {ref: sorted(paths) for ref, paths in self._links.items()},
        }

    def prime(self, known: Mapping[str, Any]) -> None:
        """Start from what another forge of this run learnt (`known`): no request repeats it."""
        if known.get("default_branch"):
            self._default = str(known["default_branch"])
            # the project object is then only a path for python-gitlab: no GET for it
            self.__dict__["_project"] = self._gl.projects.get(self.project_ref, lazy=True)
        if known.get("bot_user_id") is not None:
            self.__dict__["bot_user_id"] = int(known["bot_user_id"])
        if known.get("bot_committers") is not None:
            self.__dict__["bot_committers"] = frozenset(str(e) for e in known["bot_committers"])
        for ref, paths in (known.get("trees") or {}).items():
            self._trees[str(ref)] = tuple(str(p) for p in paths)
            self._links[str(ref)] = frozenset(
                str(p) for p in (known.get("links") or {}).get(ref, ())
            )

    @cached_property
    def _protected(self) -> tuple[re.Pattern[str], ...]:
        """The project's protection rules as GitLab matches them: an exact name, or a wildcard
        where ``*`` stands for any run of characters, ``/`` included (``release/*``,
        ``*-stable``); nothing else in a rule is special."""
        with self._call("list protected branches"):
            names = [str(b.name) for b in self._project.protectedbranches.list(get_all=True)]
        return tuple(
            re.compile(".*".join(re.escape(part) for part in name.split("*"))) for name in names
        )

    def is_protected(self, branch: str) -> bool:
        """Does a protection rule of the project (exact or wildcard) cover ``branch``?"""
        return any(rule.fullmatch(branch) for rule in self._protected)

    def read_file(self, path: str, ref: str | None = None) -> str | None:
        try:
            with self._call(f"read {path}"):
                raw = self._project.files.raw(file_path=path, ref=ref or self.default_branch())
        except ForgePermissionError as exc:
            if "(404" in str(exc):
                return None
            raise
        return bytes(raw).decode("utf-8")

    def list_files(self, ref: str | None = None) -> Sequence[str]:
        """Every file on ``ref``, listed once per forge (a forge lives for one run): commits
        reuse the listing of their start branch to choose create vs update actions."""
        ref = ref or self.default_branch()
        if ref not in self._trees:
            with self._call("list the repository tree"):
                items = self._project.repository_tree(ref=ref, recursive=True, iterator=True)
                blobs = [i for i in items if i["type"] == "blob"]
                self._trees[ref] = tuple(i["path"] for i in blobs)
                self._links[ref] = frozenset(i["path"] for i in blobs if i.get("mode") == "120000")
        return list(self._trees[ref])

    def links(self, ref: str | None = None) -> frozenset[str]:
        """The symlinks on ``ref`` (their blob is the link's target text)."""
        ref = ref or self.default_branch()
        self.list_files(ref)
        return self._links[ref]

    def snapshot(self, dest: Path, ref: str | None = None) -> Path:
        """Write the files kube-remedy reads (YAML, templates, CODEOWNERS) under ``dest``."""
        ref = ref or self.default_branch()
        links = self.links(ref)
        for path in self.list_files(ref):
            name = PurePosixPath(path).name
            if not (name.endswith(SNAPSHOT_SUFFIXES) or name in SNAPSHOT_NAMES):
                continue
            check_repo_path(path)
            text = self.read_file(path, ref)
            if text is None:
                continue
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path in links:
                # Kept a link, as a clone has it: the locators follow it inside the snapshot
                # and refuse it when it leaves (nothing reads or writes through it).
                with contextlib.suppress(OSError, ValueError):
                    target.symlink_to(text)
                continue
            with target.open("w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        return dest

    def head(self, ref: str | None = None) -> str:
        """The commit id a branch points at (a cache key for snapshots)."""
        with self._call("read the branch"):
            branch = self._project.branches.get(ref or self.default_branch())
            return str(branch.commit["id"])

    # ------------------------------------------------------------------ commits

    def commit_files(
        self, branch: str, files: Mapping[str, str], message: str, *, start_branch: str
    ) -> str:
        if branch == self.default_branch() or self.is_protected(branch):
            raise ForgeConflictError(
                f"refusing to push to {branch} of {self.project_ref}: default or protected branch"
            )
        existing = set(self.list_files(start_branch)) if files else set()
        links = self.links(start_branch) if files else frozenset()
        for path in files:
            check_repo_path(path)
            parts = path.split("/")
            through = [p for i in range(len(parts)) if (p := "/".join(parts[: i + 1])) in links]
            if through:
                raise RepositoryError(
                    f"{through[0]} is a symlink on {start_branch}; refusing to write through it"
                )
        actions = [
            {
                "action": "update" if path in existing else "create",
                "file_path": path,
                "content": content,
            }
            for path, content in sorted(files.items())
        ]
        data = {
            "branch": branch,
            "start_branch": start_branch,
            "force": True,
            "commit_message": message,
            "actions": actions,
            "author_name": self.bot_username,
            "author_email": self.bot_email,
        }
        self._trees.pop(branch, None)
        with self._call(f"commit to {branch}", "write"):
            commit = self._project.commits.create(data)
        if self._branches is not None:
            self._branches[branch] = str(commit.id)
        return str(commit.id)

    def _bot_branches(self, prefix: str) -> dict[str, str]:
        """Branches under the bot's prefix -> head commit id, listed once per forge (per run)."""
        if self._branches is None:
            with self._call("list branches"):
                found = self._project.branches.list(search=prefix, iterator=True)
                self._branches = {
                    str(b.name): str(b.commit["id"]) for b in found if b.name.startswith(prefix)
                }
        return self._branches

    def branch_has_foreign_commits(self, branch: str, prefix: str) -> bool | None:
        """None when ``branch`` does not exist; otherwise whether a commit on it (beyond the
        default branch) was not written by the bot."""
        if branch not in self._bot_branches(prefix):
            return None
        return self._foreign_on(branch)

    def _foreign_on(self, branch: str) -> bool:
        """Does ``branch``, as it is now (not as the MR's last diff saw it: GitLab refreshes an
        MR's commits asynchronously after a push), carry a commit beyond the default branch
        that the bot did not write? A branch that is gone carries none."""
        try:
            with self._call(f"compare {branch} with the default branch"):
                data = self._project.repository_compare(self.default_branch(), branch)
        except ForgePermissionError as exc:
            if _status(exc) == 404:
                return False
            raise
        return not all(self.is_bot_commit(c) for c in data.get("commits") or ())

    def delete_branch(self, branch: str) -> None:
        """Delete a branch of the bot (already gone is fine)."""
        try:
            with self._call(f"delete branch {branch}", "write"):
                self._project.branches.delete(branch)
        except ForgePermissionError as exc:
            if _status(exc) != 404:
                raise
        if self._branches is not None:
            self._branches.pop(branch, None)

    # ------------------------------------------------------------------ merge requests

    def _change(self, mr: Any) -> ChangeRequest:
        author = getattr(mr, "author", None) or {}
        closed_by = getattr(mr, "closed_by", None) or {}
        return ChangeRequest(
            id=int(mr.iid),
            branch=str(mr.source_branch),
            title=str(mr.title),
            description=str(mr.description or ""),
            state=str(mr.state),  # type: ignore[arg-type]
            labels=tuple(mr.labels or ()),
            web_url=str(getattr(mr, "web_url", "")),
            author_is_bot=self.identity.is_bot_user(author),
            head_sha=str(getattr(mr, "sha", "") or ""),
            has_conflicts=bool(getattr(mr, "has_conflicts", False)),
            extra={
                "created_at": str(getattr(mr, "created_at", "") or ""),
                "closed_by_id": str(closed_by.get("id") or ""),
            },
        )

    def find_changes(self) -> Sequence[ChangeRequest]:
        """Every MR the bot's user authored (any state): labels play no part, people may
        remove them. Listed once per run's forge (``remember_listings``) until it writes one."""
        if self._remember and self._changes is not None:
            return list(self._changes)
        with self._call("list merge requests"):
            mrs = self._project.mergerequests.list(
                author_id=self.bot_user_id,
                state="all",
                iterator=True,
            )
            changes = [self._change(mr) for mr in mrs]
        self._changes = changes
        return list(changes)

    def find_open_change(self, branch: str) -> ChangeRequest | None:
        """The open MR from ``branch``, whoever opened it (after GitLab's 409 on create)."""
        with self._call(f"list merge requests from {branch}"):
            mrs = self._project.mergerequests.list(
                source_branch=branch,
                state="opened",
                get_all=False,
            )
        return self._change(mrs[0]) if mrs else None

    def closed_by_bot(self, change: ChangeRequest) -> bool:
        """Was the MR's latest close done by the bot (findings resolved), not by a person?
        Asks GitLab's resource state events, which name who closed it."""
        with self._call(f"read the state events of !{change.id}"):
            mr = self._project.mergerequests.get(change.id, lazy=True)
            events = [e.attributes for e in mr.resourcestateevents.list(iterator=True)]
        closes = [e for e in events if e.get("state") == "closed"]
        if closes:
            return self.identity.is_bot_user(closes[-1].get("user"))
        closed_by = change.extra.get("closed_by_id") if change.extra else ""
        return bool(closed_by) and closed_by == str(self.bot_user_id)

    def label_added_by_bot(self, change: ChangeRequest, label: str) -> bool:
        """Was ``label``'s latest addition to the MR made by the bot (as an authorized command
        does), not by a person who can edit labels but may not command the bot? Asks GitLab's
        resource label events, which name who added it."""
        with self._call(f"read the label events of !{change.id}"):
            mr = self._project.mergerequests.get(change.id, lazy=True)
            events = [e.attributes for e in mr.resourcelabelevents.list(iterator=True)]
        adds = [
            e
            for e in events
            if e.get("action") == "add" and (e.get("label") or {}).get("name") == label
        ]
        return bool(adds) and self.identity.is_bot_user(adds[-1].get("user"))

    def has_foreign_commits(self, change: ChangeRequest) -> bool:
        """Does the MR's branch carry a commit the bot did not write?"""
        return self._foreign_on(change.branch)

    def _user_ids(self, usernames: Sequence[str]) -> list[int]:
        """GitLab user ids of reviewers; each name is looked up once per forge (per run)."""
        ids = []
        for name in usernames:
            name = name.lstrip("@")
            if name not in self._users:
                with self._call(f"look up user {name}"):
                    found = self._gl.users.list(username=name, get_all=False)
                self._users[name] = int(found[0].id) if found else None
            user_id = self._users[name]
            if user_id is not None:
                ids.append(user_id)
        return ids

    def open_change(
        self,
        branch: str,
        title: str,
        description: str,
        labels: Sequence[str],
        reviewers: Sequence[str] = (),
    ) -> ChangeRequest:
        data: dict[str, Any] = {
            "source_branch": branch,
            "target_branch": self.default_branch(),
            "title": title,
            "description": description,
            "labels": ",".join(dict.fromkeys([*labels, BOT_LABEL])),
            "remove_source_branch": True,
        }
        if reviewers:
            ids = self._user_ids(reviewers)
            data["reviewer_ids"] = ids
            if self.assign_reviewers:
                data["assignee_ids"] = ids[:1]
        self._changes = None
        with self._call(f"open a merge request from {branch}", "write"):
            mr = self._project.mergerequests.create(data)
        return self._change(mr)

    def update_change(
        self,
        change: ChangeRequest,
        *,
        title: str | None = None,
        description: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> ChangeRequest:
        edit = ChangeEdit.between(
            change,
            title=title,
            description=description,
            labels=None if labels is None else [*labels, BOT_LABEL],
        )
        if not edit:
            return change
        data: dict[str, Any] = {}
        if edit.title is not None:
            data["title"] = edit.title
        if edit.description is not None:
            data["description"] = edit.description
        if edit.labels is not None:
            data["labels"] = ",".join(edit.labels)
        self._changes = None
        with self._call(f"update !{change.id}", "write"):
            self._project.mergerequests.update(change.id, data)
        return edit.applied(change)

    def close_change(self, change: ChangeRequest, comment: str) -> None:
        self.comment(change, comment)
        self._changes = None
        with self._call(f"close !{change.id}", "write"):
            self._project.mergerequests.update(change.id, {"state_event": "close"})

    def comment(self, change: ChangeRequest, body: str) -> None:
        with self._call(f"comment on !{change.id}", "comment"):
            mr = self._project.mergerequests.get(change.id, lazy=True)
            mr.notes.create({"body": body})

    # ------------------------------------------------------------------ review of people's MRs

    def merge_request_changes(self, iid: int) -> dict[str, Any]:
        """One MR with its diff: ``state``, ``author`` (username), ``author_id``, ``source_branch``,
        ``sha``, ``diff_refs`` (base_sha, start_sha, head_sha) and ``changes`` (GitLab's per-file
        ``old_path``, ``new_path``, ``new_file``, ``deleted_file``, ``renamed_file``, ``diff``)."""
        with self._call(f"read the changes of !{iid}"):
            data = self._project.mergerequests.get(iid, lazy=True).changes()
        return {
            "iid": int(data["iid"]),
            "state": str(data.get("state") or ""),
            "author": str((data.get("author") or {}).get("username", "")),
            "author_id": (data.get("author") or {}).get("id"),
            "source_branch": str(data.get("source_branch") or ""),
            "sha": str(data.get("sha") or ""),
            "diff_refs": dict(data.get("diff_refs") or {}),
            "changes": list(data.get("changes") or []),
        }

    def merge_request_note_bodies(self, iid: int) -> list[str]:
        """The bodies of the bot's own notes on an MR (diff notes included)."""
        with self._call(f"list notes of !{iid}"):
            notes = self._project.mergerequests.get(iid, lazy=True).notes.list(iterator=True)
            return [
                str(n.body) for n in notes if self.identity.is_bot_user(getattr(n, "author", None))
            ]

    def post_suggestion(
        self,
        iid: int,
        diff_refs: Mapping[str, Any],
        path: str,
        line: int,
        body: str,
        *,
        old_path: str | None = None,
    ) -> None:
        """A discussion anchored on ``line`` (1-based) of ``path`` as the MR's head has it;
        the line must be one the MR added (GitLab refuses others: `ForgeConflictError`)."""
        position = {
            "position_type": "text",
            "base_sha": diff_refs["base_sha"],
            "start_sha": diff_refs["start_sha"],
            "head_sha": diff_refs["head_sha"],
            "old_path": old_path or path,
            "new_path": path,
            "new_line": line,
        }
        with self._call(f"comment on line {line} of {path} in !{iid}", "comment"):
            mr = self._project.mergerequests.get(iid, lazy=True)
            mr.discussions.create({"body": body, "position": position})

    # ------------------------------------------------------------------ dashboard, artifacts

    def _dashboard(self) -> Any | None:
        if self._remember and self._dashboard_issue is not None:
            return self._dashboard_issue[0]
        with self._call("list issues"):
            found = self._project.issues.list(
                labels=[DASHBOARD_LABEL], state="opened", get_all=True
            )
        self._dashboard_issue = (found[0] if found else None,)
        return self._dashboard_issue[0]

    def dashboard_text(self) -> str | None:
        """The dashboard issue's description (None when there is none yet)."""
        issue = self._dashboard()
        return None if issue is None else str(issue.description or "")

    def upsert_dashboard(self, title: str, body: str) -> int:
        """Create or update the project's dashboard issue (no write when nothing changed)."""
        issue = self._dashboard()
        if issue is not None:
            if issue.description == body and issue.title == title:
                return int(issue.iid)
            self._dashboard_issue = None
            with self._call(f"update issue #{issue.iid}", "write"):
                self._project.issues.update(issue.iid, {"title": title, "description": body})
            return int(issue.iid)
        self._dashboard_issue = None
        with self._call("create the dashboard issue", "write"):
            issue = self._project.issues.create(
                {"title": title, "description": body, "labels": DASHBOARD_LABEL}
            )
        return int(issue.iid)

    def fetch_artifact(self, job_name: str, artifact_path: str, ref: str | None = None) -> bytes:
        """A file from the artifacts of ``job_name`` in the newest pipeline on ``ref``.

        Goes pipelines -> jobs -> artifact: the by-ref artifact endpoint only sees the latest
        *successful* pipeline, and a scan job that found problems usually failed.
        """
        ref = ref or self.default_branch()
        with self._call(f"list pipelines of {ref}", "artifact"):
            pipelines = self._project.pipelines.list(
                ref=ref, order_by="id", sort="desc", per_page=1, get_all=False
            )
        if not pipelines:
            raise ForgeError(f"no pipeline on {ref} of {self.project_ref}: run the scan job first")
        pipeline = pipelines[0]
        with self._call(f"list jobs of pipeline {pipeline.id}", "artifact"):
            jobs = [j for j in pipeline.jobs.list(get_all=True) if j.name == job_name]
        if not jobs:
            raise ForgeError(
                f"pipeline {pipeline.id} of {self.project_ref} has no job named {job_name!r}"
            )
        job = max(jobs, key=lambda j: int(j.id))
        try:
            with self._call(f"download {artifact_path} of job {job.id}", "artifact"):
                data = self._project.jobs.get(job.id, lazy=True).artifact(artifact_path)
        except ForgePermissionError as exc:
            raise ForgeError(
                f"job {job_name} ({job.id}) of pipeline {pipeline.id} has no artifact "
                f"{artifact_path!r}: check the job's artifacts:paths"
            ) from exc
        return bytes(data)

    # ------------------------------------------------------------------ commands (bot.commands)

    def close(self) -> None:
        """Release the HTTP session (a forge made for one task)."""
        self._gl.session.close()

    @staticmethod
    def _info(data: Mapping[str, Any]) -> MergeRequestInfo:
        return MergeRequestInfo(
            iid=int(data["iid"]),
            state=str(data["state"]),
            source_branch=str(data["source_branch"]),
            target_branch=str(data.get("target_branch") or "main"),
            title=str(data.get("title") or ""),
            description=str(data.get("description") or ""),
            labels=tuple(str(label) for label in data.get("labels") or ()),
            web_url=str(data.get("web_url") or ""),
        )

    @cached_property
    def _lazy_project(self) -> Any:
        """The project as a path only: a command's calls never GET the project first."""
        return self._gl.projects.get(self.project_ref, lazy=True)

    def _mr(self, iid: int) -> Any:
        return self._lazy_project.mergerequests.get(iid, lazy=True)

    def access_level(self, user_id: int) -> int:
        """Effective access (inherited included); 0 when not a member or not visible."""
        try:
            with self._call(f"read the membership of user {user_id}"):
                member = self._lazy_project.members_all.get(user_id)
        except ForgePermissionError as exc:
            if _status(exc) in (403, 404):
                return 0
            raise
        return int(member.access_level)

    def merge_request(self, iid: int) -> MergeRequestInfo:
        with self._call(f"read !{iid}"):
            mr = self._lazy_project.mergerequests.get(iid)
        return self._info(mr.attributes)

    def open_merge_requests(self, branch_prefix: str) -> list[MergeRequestInfo]:
        with self._call("list open merge requests"):
            mrs = self._lazy_project.mergerequests.list(state="opened", iterator=True)
            return [
                self._info(mr.attributes)
                for mr in mrs
                if str(mr.source_branch).startswith(branch_prefix)
            ]

    def award_emoji(self, iid: int, note_id: int, name: str) -> None:
        try:
            with self._call(f"award :{name}: on note {note_id} of !{iid}", "comment"):
                note = self._mr(iid).notes.get(note_id, lazy=True)
                note.awardemojis.create({"name": name})
        except ForgePermissionError as exc:
            # Already awarded: GitLab answers 404 "has already been taken"; nothing to do.
            if _status(exc) != 404:
                raise

    def note_has_award(self, iid: int, note_id: int, name: str) -> bool:
        me = self.bot_user_id
        with self._call(f"list awards on note {note_id} of !{iid}"):
            note = self._mr(iid).notes.get(note_id, lazy=True)
            awards = note.awardemojis.list(iterator=True)
            return any(a.name == name and (a.user or {}).get("id") == me for a in awards)

    def reply(self, iid: int, body: str) -> None:
        with self._call(f"reply on !{iid}", "comment"):
            self._mr(iid).notes.create({"body": body})

    def rebase(self, iid: int) -> None:
        with self._call(f"rebase !{iid}", "write"):
            self._mr(iid).rebase()

    def set_state(self, iid: int, event: str) -> None:
        self._changes = None
        with self._call(f"{event} !{iid}", "write"):
            self._lazy_project.mergerequests.update(iid, {"state_event": event})

    def set_labels(self, iid: int, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        data = {
            key: ",".join(names)
            for key, names in (("add_labels", add), ("remove_labels", remove))
            if names
        }
        if data:
            self._changes = None
            with self._call(f"label !{iid}", "write"):
                self._lazy_project.mergerequests.update(iid, data)
