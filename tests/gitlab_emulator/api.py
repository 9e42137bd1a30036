"""The GitLab REST v4 endpoints the bot uses, answered from `State` and real git repositories."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

from .diff_notes import PositionError, check_position, position_from
from .git import Commit, GitRepo, Person
from .hooks import Hook, HookDispatcher
from .state import (
    ACCESS_NAMES,
    DEVELOPER,
    GUEST,
    MAINTAINER,
    AwardEmoji,
    Counter,
    Issue,
    LabelEvent,
    MergeRequest,
    Note,
    Pipeline,
    Project,
    StateEvent,
    User,
    now,
)

Json = Any


class ApiError(Exception):
    """An error answer: GitLab puts it under ``message`` (or ``error`` for bad parameters)."""

    def __init__(self, status: int, message: Json = None, *, error: str | None = None) -> None:
        super().__init__(f"{status} {message or error}")
        self.status = status
        self.body: dict[str, Json] = {"error": error} if error is not None else {"message": message}


def not_found(what: str = "Not found") -> ApiError:
    return ApiError(404, f"404 {what}")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, Json]
    body: dict[str, Json]
    host: str
    user: User

    @property
    def params(self) -> dict[str, Json]:
        return {**self.query, **self.body}


@dataclass
class Response:
    status: int = 200
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass
class State:
    """Everything the emulator knows besides file contents."""

    token: str
    bot: User
    base_url: str = ""
    users: dict[int, User] = field(default_factory=dict)
    projects: dict[int, Project] = field(default_factory=dict)
    ids: Counter = field(default_factory=Counter)
    user_ids: Counter = field(default_factory=Counter)
    project_ids: Counter = field(default_factory=Counter)

    def user_named(self, username: str) -> User | None:
        return next((u for u in self.users.values() if u.username == username), None)


_HOOK_EVENTS = ("push_events", "merge_requests_events", "note_events", "issues_events")

Handler = Callable[..., Response]
ROUTES: list[tuple[str, re.Pattern[str], str]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append(
            (method, re.compile(pattern.replace("{id}", r"(?P<project>[^/]+)")), fn.__name__)
        )
        return fn

    return register


def _bool(value: Json) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes")


def _labels(value: Json) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _has_labels(labels: Sequence[str], query: Json) -> bool:
    """GitLab's ``labels`` filter: all of them, or the special values None and Any."""
    wanted = _labels(query)
    if [w.lower() for w in wanted] == ["none"]:
        return not labels
    if [w.lower() for w in wanted] == ["any"]:
        return bool(labels)
    return all(w in labels for w in wanted)


def _int_list(value: Json) -> list[int]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [int(item) for item in items]


def _require(params: Mapping[str, Json], *names: str) -> None:
    missing = [n for n in names if params.get(n) in (None, "")]
    if missing:
        raise ApiError(400, error=", ".join(f"{n} is missing" for n in missing))


class Api:
    """Request dispatch and one method per endpoint."""

    def __init__(self, state: State, hooks: HookDispatcher | None = None) -> None:
        self.state = state
        self.hooks = hooks or HookDispatcher()
        self._conflicts: dict[tuple[str, str], bool] = {}
        self.positions: dict[int, dict[str, Json]] = {}
        """note id -> the diff position of a diff note (`diff_notes`)."""

    # -- dispatch ---------------------------------------------------------------------------

    def dispatch(self, req: Request) -> Response:
        path = req.path.removeprefix("/api/v4")
        allowed = False
        for method, pattern, name in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method != req.method and not (method == "GET" and req.method == "HEAD"):
                allowed = True
                continue
            args = {k: unquote(v) for k, v in match.groupdict().items()}
            return getattr(self, name)(req, **args)
        if allowed:
            raise ApiError(405, "405 Method Not Allowed")
        raise ApiError(404, error="404 Not Found")

    # -- helpers ----------------------------------------------------------------------------

    def project(
        self, req: Request, ref: str, *, level: int = GUEST, as_member: bool = True
    ) -> Project:
        """The project ``ref`` names if ``req.user`` may see it (``as_member=False``: seeding)."""
        found = None
        if ref.isdigit():
            found = self.state.projects.get(int(ref))
        else:
            found = next(
                (p for p in self.state.projects.values() if p.path_with_namespace == ref), None
            )
        if found is not None and not as_member:
            return found
        if found is None or found.members.get(req.user.id, 0) < GUEST:
            raise not_found("Project Not Found")
        if found.members.get(req.user.id, 0) < level:
            raise ApiError(403, "403 Forbidden")
        return found

    def page(
        self, req: Request, items: Sequence[Any], render: Callable[[Any], Json] | None = None
    ) -> Response:
        """One page of ``items`` (rendered by ``render``) with GitLab's pagination headers."""
        try:
            page = max(1, int(req.query.get("page", 1)))
            per_page = min(100, max(1, int(req.query.get("per_page", 20))))
        except ValueError as exc:
            raise ApiError(400, error="page is invalid") from exc
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = list(items[(page - 1) * per_page : page * per_page])
        if render is not None:
            chunk = [render(item) for item in chunk]
        base = f"http://{req.host}{req.path}"
        plain = {k: v for k, v in req.query.items() if k not in ("page", "per_page")}

        def link(n: int) -> str:
            flat = [(k, x) for k, v in plain.items() for x in (v if isinstance(v, list) else [v])]
            query = urlencode([*flat, ("page", n), ("per_page", per_page)])
            return f"{base}?{query}"

        rels = []
        if page > 1:
            rels.append(f'<{link(page - 1)}>; rel="prev"')
        if page < pages:
            rels.append(f'<{link(page + 1)}>; rel="next"')
        rels += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
            "X-Total": str(total),
            "X-Total-Pages": str(pages),
            "Link": ", ".join(rels),
        }
        return Response(200, chunk, headers)

    def user_json(self, user: User) -> dict[str, Json]:
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": "active",
            "locked": False,
            "avatar_url": None,
            "web_url": f"{self.state.base_url}/{user.username}",
        }

    def _web(self, project: Project, suffix: str = "") -> str:
        return f"{self.state.base_url}/{project.path_with_namespace}{suffix}"

    def commit_json(self, project: Project, c: Commit) -> dict[str, Json]:
        return {
            "id": c.sha,
            "short_id": c.sha[:8],
            "title": c.title,
            "message": c.message,
            "author_name": c.author_name,
            "author_email": c.author_email,
            "authored_date": c.authored_date,
            "committer_name": c.committer_name,
            "committer_email": c.committer_email,
            "committed_date": c.committed_date,
            "created_at": c.committed_date,
            "parent_ids": list(c.parents),
            "trailers": {},
            "web_url": self._web(project, f"/-/commit/{c.sha}"),
        }

    def _commit_or_404(self, project: Project, ref: str) -> str:
        sha = project.repo.resolve(ref)
        if sha is None:
            raise not_found("Commit Not Found")
        return sha

    def _ref(self, req: Request, project: Project, *, required: bool = False) -> str:
        ref = req.query.get("ref") or req.query.get("ref_name")
        if required:
            _require(req.query, "ref")
        sha = project.repo.resolve(str(ref or project.default_branch))
        if sha is None:
            raise not_found("Tree Not Found" if not required else "File Not Found")
        return sha

    def person(self, user: User) -> Person:
        return Person(user.name, user.email)

    # -- instance ---------------------------------------------------------------------------

    @route("GET", r"/user")
    def get_current_user(self, req: Request) -> Response:
        user = req.user
        return Response(
            200,
            {
                **self.user_json(user),
                "email": user.email,
                "commit_email": user.email,
                "public_email": None,
                "bot": user.bot,
                "is_admin": False,
                "can_create_project": True,
            },
        )

    @route("GET", r"/version")
    def get_version(self, req: Request) -> Response:
        return Response(200, {"version": "17.5.0-ee", "revision": "emulator", "enterprise": True})

    @route("GET", r"/users")
    def list_users(self, req: Request) -> Response:
        users = list(self.state.users.values())
        if "username" in req.query:
            users = [u for u in users if u.username.lower() == str(req.query["username"]).lower()]
        if "search" in req.query:
            term = str(req.query["search"]).lower()
            users = [u for u in users if term in u.username.lower() or term in u.name.lower()]
        return self.page(req, [self.user_json(u) for u in users])

    @route("GET", r"/users/(?P<user_id>\d+)")
    def get_user(self, req: Request, user_id: str) -> Response:
        user = self.state.users.get(int(user_id))
        if user is None:
            raise not_found("User Not Found")
        return Response(200, {**self.user_json(user), "bot": user.bot})

    # -- projects ---------------------------------------------------------------------------

    def project_json(self, req: Request, p: Project) -> dict[str, Json]:
        level = p.members.get(req.user.id, 0)
        namespace = p.namespace
        return {
            "id": p.id,
            "name": p.name,
            "path": p.name,
            "name_with_namespace": p.path_with_namespace.replace("/", " / "),
            "path_with_namespace": p.path_with_namespace,
            "description": "",
            "default_branch": p.default_branch,
            "visibility": "private",
            "archived": False,
            "empty_repo": False,
            "created_at": p.created_at,
            "last_activity_at": p.created_at,
            "web_url": self._web(p),
            "http_url_to_repo": self._web(p, ".git"),
            "ssh_url_to_repo": f"git@127.0.0.1:{p.path_with_namespace}.git",
            "namespace": {
                "id": zlib.crc32(namespace.encode()) % 10_000,
                "name": namespace.rsplit("/", 1)[-1],
                "path": namespace.rsplit("/", 1)[-1],
                "kind": "group",
                "full_path": namespace,
            },
            "merge_requests_enabled": True,
            "issues_enabled": True,
            "jobs_enabled": True,
            "merge_method": "merge",
            "only_allow_merge_if_pipeline_succeeds": False,
            "remove_source_branch_after_merge": True,
            "permissions": {
                "project_access": {"access_level": level, "notification_level": 3},
                "group_access": None,
            },
        }

    @route("GET", r"/projects/{id}")
    def get_project(self, req: Request, project: str) -> Response:
        return Response(200, self.project_json(req, self.project(req, project)))

    @route("GET", r"/projects/{id}/members/all/(?P<user_id>\d+)")
    def get_member(self, req: Request, project: str, user_id: str) -> Response:
        p = self.project(req, project)
        user = self.state.users.get(int(user_id))
        if user is None or int(user_id) not in p.members:
            raise not_found()
        return Response(200, self.member_json(p, user))

    @route("GET", r"/projects/{id}/members/(?P<user_id>\d+)")
    def get_direct_member(self, req: Request, project: str, user_id: str) -> Response:
        return self.get_member(req, project, user_id)

    @route("GET", r"/projects/{id}/members(?:/all)?")
    def list_members(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        members = [self.member_json(p, self.state.users[uid]) for uid in sorted(p.members)]
        return self.page(req, members)

    def member_json(self, p: Project, user: User) -> dict[str, Json]:
        level = p.members[user.id]
        return {
            **self.user_json(user),
            "access_level": level,
            "access_level_description": ACCESS_NAMES.get(level, str(level)),
            "created_at": p.created_at,
            "expires_at": None,
        }

    # -- repository: files, tree, commits, compare --------------------------------------------

    @route("GET", r"/projects/{id}/repository/files/(?P<file_path>[^/]+)")
    def get_file(self, req: Request, project: str, file_path: str) -> Response:
        p = self.project(req, project)
        _require(req.query, "ref")
        sha = p.repo.resolve(str(req.query["ref"]))
        blob = p.repo.blob_id(sha, file_path) if sha else None
        if sha is None or blob is None:
            raise not_found("File Not Found")
        content = p.repo.read(sha, file_path) or b""
        last = p.repo.last_commit_for(sha, file_path)
        body = {
            "file_name": file_path.rsplit("/", 1)[-1],
            "file_path": file_path,
            "size": len(content),
            "encoding": "base64",
            "content": base64.b64encode(content).decode(),
            "content_sha256": hashlib.sha256(content).hexdigest(),
            "ref": req.query["ref"],
            "blob_id": blob,
            "commit_id": sha,
            "last_commit_id": last,
            "execute_filemode": False,
        }
        headers = {"X-Gitlab-Blob-Id": blob, "X-Gitlab-Last-Commit-Id": last}
        return Response(200, body, headers)

    @route("GET", r"/projects/{id}/repository/files/(?P<file_path>[^/]+)/raw")
    def get_raw_file(self, req: Request, project: str, file_path: str) -> Response:
        p = self.project(req, project)
        sha = p.repo.resolve(str(req.query.get("ref") or p.default_branch))
        content = p.repo.read(sha, file_path) if sha else None
        if content is None:
            raise not_found("File Not Found")
        return Response(200, raw=content, content_type="text/plain; charset=utf-8")

    @route("GET", r"/projects/{id}/repository/tree")
    def get_tree(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        sha = self._ref(req, p)
        path = str(req.query.get("path") or "")
        entries = p.repo.tree(sha, path, recursive=_bool(req.query.get("recursive", False)))
        if path and not entries:
            raise not_found("Tree Not Found")
        items = [
            {
                "id": e.sha,
                "name": e.path.rsplit("/", 1)[-1],
                "type": e.type,
                "path": e.path,
                "mode": e.mode,
            }
            for e in entries
        ]
        return self.page(req, items)

    @route("GET", r"/projects/{id}/repository/commits")
    def list_commits(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        sha = self._ref(req, p)
        commits = p.repo.log(sha, path=req.query.get("path"))
        return self.page(req, commits, lambda c: self.commit_json(p, c))

    @route("GET", r"/projects/{id}/repository/commits/(?P<sha>[^/]+)")
    def get_commit(self, req: Request, project: str, sha: str) -> Response:
        p = self.project(req, project)
        commit = p.repo.commit(self._commit_or_404(p, sha))
        assert commit is not None
        return Response(200, self.commit_json(p, commit))

    @route("GET", r"/projects/{id}/repository/commits/(?P<sha>[^/]+)/diff")
    def get_commit_diff(self, req: Request, project: str, sha: str) -> Response:
        p = self.project(req, project)
        commit = p.repo.commit(self._commit_or_404(p, sha))
        assert commit is not None
        base = commit.parents[0] if commit.parents else "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        return self.page(req, p.repo.diff(base, commit.sha))

    @route("GET", r"/projects/{id}/repository/compare")
    def compare(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        _require(req.query, "from", "to")
        old = self._commit_or_404(p, str(req.query["from"]))
        new = self._commit_or_404(p, str(req.query["to"]))
        base = (
            old if _bool(req.query.get("straight", False)) else (p.repo.merge_base(old, new) or old)
        )
        commits = [self.commit_json(p, c) for c in reversed(p.repo.log(new, exclude=old))]
        head = p.repo.commit(new)
        assert head is not None
        return Response(
            200,
            {
                "commit": self.commit_json(p, head),
                "commits": commits,
                "diffs": p.repo.diff(base, new),
                "compare_timeout": False,
                "compare_same_ref": old == new,
                "web_url": self._web(p, f"/-/compare/{old}...{new}"),
            },
        )

    @route("POST", r"/projects/{id}/repository/commits")
    def create_commit(self, req: Request, project: str) -> Response:
        p = self.project(req, project, level=DEVELOPER)
        params = req.params
        _require(params, "branch", "commit_message", "actions")
        commit, changes = self._push(req, p, params, params["actions"])
        stats = {"additions": 0, "deletions": 0, "total": len(changes)}
        return Response(
            201,
            {**self.commit_json(p, commit), "stats": stats, "status": None, "last_pipeline": None},
        )

    def _push(
        self, req: Request, p: Project, params: Mapping[str, Json], actions: Json
    ) -> tuple[Commit, dict[str, bytes | None]]:
        """One commit of ``actions`` on ``params["branch"]`` with GitLab's branch rules."""
        branch = str(params["branch"])
        start = params.get("start_branch") or params.get("start_sha")
        force = _bool(params.get("force", False))
        repo = p.repo
        if p.is_protected(branch) and p.members.get(req.user.id, 0) < MAINTAINER:
            raise ApiError(403, "You are not allowed to push into this branch")
        current = repo.branch_sha(branch)
        if start is not None and str(start) != branch:
            start_sha = (
                repo.branch_sha(str(start))
                if params.get("start_branch")
                else repo.resolve(str(start))
            )
            if start_sha is None:
                raise ApiError(400, f"Cannot find start_branch {start}")
            if current is not None and not force:
                raise ApiError(
                    400,
                    f"A branch called '{branch}' already exists. "
                    "Switch to that branch in order to make changes",
                )
            parent = start_sha
        else:
            if current is None:
                raise ApiError(400, "You can only create or edit files when you are on a branch")
            parent = current
        changes = self._apply_actions(repo, parent, actions)
        author = Person(
            str(params.get("author_name") or req.user.name),
            str(params.get("author_email") or req.user.email),
        )
        sha = repo.write_commit(
            parent,
            changes,
            str(params["commit_message"]),
            author=author,
            committer=self.person(req.user),
        )
        repo.set_branch(branch, sha)
        self.push_event(p, branch, current, sha, req.user)
        commit = repo.commit(sha)
        assert commit is not None
        return commit, changes

    _FILE = r"/projects/{id}/repository/files/(?P<file_path>[^/]+)"

    def _file_action(self, req: Request, project: str, file_path: str, action: str) -> Project:
        p = self.project(req, project, level=DEVELOPER)
        params = req.params
        _require(params, "branch", "commit_message")
        if action != "delete" and "content" not in params:
            raise ApiError(400, error="content is missing")
        single = {
            "action": action,
            "file_path": file_path,
            "content": params.get("content"),
            "encoding": params.get("encoding"),
            "last_commit_id": params.get("last_commit_id"),
        }
        self._push(req, p, params, [single])
        return p

    @route("POST", _FILE)
    def create_file(self, req: Request, project: str, file_path: str) -> Response:
        self._file_action(req, project, file_path, "create")
        return Response(201, {"file_path": file_path, "branch": req.params["branch"]})

    @route("PUT", _FILE)
    def update_file(self, req: Request, project: str, file_path: str) -> Response:
        self._file_action(req, project, file_path, "update")
        return Response(200, {"file_path": file_path, "branch": req.params["branch"]})

    @route("DELETE", _FILE)
    def delete_file(self, req: Request, project: str, file_path: str) -> Response:
        self._file_action(req, project, file_path, "delete")
        return Response(204)

    def _apply_actions(self, repo: GitRepo, parent: str, actions: Json) -> dict[str, bytes | None]:
        if not isinstance(actions, list) or not actions:
            raise ApiError(400, error="actions is empty")
        existing = set(repo.files(parent))
        changes: dict[str, bytes | None] = {}

        def exists(path: str) -> bool:
            if path in changes:
                return changes[path] is not None
            return path in existing

        for i, action in enumerate(actions):
            if not isinstance(action, dict):
                raise ApiError(400, error=f"actions[{i}] is invalid")
            kind = action.get("action")
            if kind not in ("create", "update", "delete", "move", "chmod"):
                raise ApiError(400, error=f"actions[{i}][action] does not have a valid value")
            path = str(action.get("file_path") or "").strip("/")
            if not path:
                raise ApiError(400, error=f"actions[{i}][file_path] is missing")
            content = action.get("content")
            data: bytes | None = None
            if content is not None:
                if action.get("encoding") == "base64":
                    data = base64.b64decode(str(content))
                else:
                    data = str(content).encode()
            last = action.get("last_commit_id")
            if last and path in existing and repo.last_commit_for(parent, path) != last:
                raise ApiError(
                    400,
                    "You are attempting to update a file that has changed since you started "
                    "editing it.",
                )
            if kind == "create":
                if exists(path):
                    raise ApiError(400, "A file with this name already exists")
                changes[path] = data or b""
            elif kind == "update":
                if not exists(path):
                    raise ApiError(400, "A file with this name doesn't exist")
                changes[path] = data or b""
            elif kind == "delete":
                if not exists(path):
                    raise ApiError(400, "A file with this name doesn't exist")
                changes[path] = None
            elif kind == "move":
                previous = str(action.get("previous_path") or "").strip("/")
                if not previous or not exists(previous):
                    raise ApiError(400, "A file with this name doesn't exist")
                if exists(path):
                    raise ApiError(400, "A file with this name already exists")
                old = changes.get(previous) if previous in changes else repo.read(parent, previous)
                changes[path] = data if data is not None else old
                changes[previous] = None
            elif not exists(path):
                raise ApiError(400, "A file with this name doesn't exist")
        return changes

    # -- branches ---------------------------------------------------------------------------

    def branch_json(self, p: Project, name: str, sha: str) -> dict[str, Json]:
        commit = p.repo.commit(sha)
        assert commit is not None
        default_sha = p.repo.branch_sha(p.default_branch)
        return {
            "name": name,
            "merged": bool(
                default_sha and name != p.default_branch and p.repo.is_ancestor(sha, default_sha)
            ),
            "protected": p.is_protected(name),
            "default": name == p.default_branch,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "web_url": self._web(p, f"/-/tree/{name}"),
            "commit": self.commit_json(p, commit),
        }

    @route("GET", r"/projects/{id}/repository/branches")
    def list_branches(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        branches = sorted(p.repo.branches().items())
        if "search" in req.query:
            term = str(req.query["search"])
            branches = [(n, s) for n, s in branches if term in n]
        return self.page(req, branches, lambda b: self.branch_json(p, *b))

    @route("GET", r"/projects/{id}/repository/branches/(?P<branch>[^/]+)")
    def get_branch(self, req: Request, project: str, branch: str) -> Response:
        p = self.project(req, project)
        sha = p.repo.branch_sha(branch)
        if sha is None:
            raise not_found("Branch Not Found")
        return Response(200, self.branch_json(p, branch, sha))

    @route("POST", r"/projects/{id}/repository/branches")
    def create_branch(self, req: Request, project: str) -> Response:
        p = self.project(req, project, level=DEVELOPER)
        params = req.params
        _require(params, "branch", "ref")
        branch = str(params["branch"])
        if p.repo.branch_sha(branch) is not None:
            raise ApiError(400, "Branch already exists")
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", branch) or ".." in branch:
            raise ApiError(400, "Branch name is invalid")
        sha = p.repo.resolve(str(params["ref"]))
        if sha is None:
            raise ApiError(400, "Invalid reference name: " + str(params["ref"]))
        p.repo.set_branch(branch, sha)
        return Response(201, self.branch_json(p, branch, sha))

    @route("DELETE", r"/projects/{id}/repository/branches/(?P<branch>[^/]+)")
    def delete_branch(self, req: Request, project: str, branch: str) -> Response:
        p = self.project(req, project, level=DEVELOPER)
        if p.repo.branch_sha(branch) is None:
            raise not_found("Branch Not Found")
        if branch == p.default_branch:
            raise ApiError(403, "The default branch of a project cannot be deleted.")
        if p.is_protected(branch):
            raise ApiError(403, "Protected branch cant be removed")
        p.repo.delete_branch(branch)
        # Like GitLab: an open merge request whose source branch is gone is closed, by the user
        # who deleted the branch.
        for mr in p.merge_requests.values():
            if mr.state == "opened" and mr.source_branch == branch:
                mr.state, mr.closed_at, mr.closed_by, mr.updated_at = (
                    "closed",
                    now(),
                    req.user,
                    now(),
                )
                self.record_state(mr, req.user, "closed")
                self.mr_event(p, mr, req.user, "close")
        return Response(204)

    @route("GET", r"/projects/{id}/protected_branches")
    def list_protected(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        return self.page(req, [self.protected_json(i, n) for i, n in enumerate(p.protected, 1)])

    @route("GET", r"/projects/{id}/protected_branches/(?P<branch>[^/]+)")
    def get_protected(self, req: Request, project: str, branch: str) -> Response:
        p = self.project(req, project)
        if branch not in p.protected:
            raise not_found()
        return Response(200, self.protected_json(p.protected.index(branch) + 1, branch))

    @staticmethod
    def protected_json(index: int, name: str) -> dict[str, Json]:
        level = [{"access_level": MAINTAINER, "access_level_description": "Maintainers"}]
        return {
            "id": index,
            "name": name,
            "push_access_levels": level,
            "merge_access_levels": level,
            "allow_force_push": False,
            "code_owner_approval_required": False,
        }

    # -- merge requests ---------------------------------------------------------------------

    def mr(self, p: Project, iid: str) -> MergeRequest:
        found = p.merge_requests.get(int(iid))
        if found is None:
            raise not_found()
        return found

    def mr_json(self, p: Project, mr: MergeRequest) -> dict[str, Json]:
        repo = p.repo
        source = repo.branch_sha(mr.source_branch)
        target = repo.branch_sha(mr.target_branch)
        if mr.state == "opened" and source:
            mr.sha = source
        conflicts = False
        if mr.state == "opened" and source and target:
            key = (target, source)
            if key not in self._conflicts:
                self._conflicts[key] = repo.has_conflicts(target, source)
            conflicts = self._conflicts[key]
        if mr.state != "opened":
            detailed = "not_open"
        elif conflicts:
            detailed = "conflict"
        elif mr.title.lower().startswith(("draft:", "[draft]", "(draft)")):
            detailed = "draft_status"
        else:
            detailed = "mergeable"
        base = repo.merge_base(target, mr.sha) if target and mr.sha else None
        draft = mr.title.lower().startswith(("draft:", "[draft]", "(draft)"))
        return {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": p.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": mr.created_at,
            "updated_at": mr.updated_at,
            "merged_by": self.user_json(mr.merged_by) if mr.merged_by else None,
            "merge_user": self.user_json(mr.merged_by) if mr.merged_by else None,
            "merged_at": mr.merged_at,
            "closed_by": self.user_json(mr.closed_by) if mr.closed_by else None,
            "closed_at": mr.closed_at,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": sum(1 for n in mr.notes if not n.system),
            "upvotes": sum(1 for a in mr.awards if a.name == "thumbsup"),
            "downvotes": sum(1 for a in mr.awards if a.name == "thumbsdown"),
            "author": self.user_json(mr.author),
            "assignees": [self.user_json(u) for u in mr.assignees],
            "assignee": self.user_json(mr.assignees[0]) if mr.assignees else None,
            "reviewers": [self.user_json(u) for u in mr.reviewers],
            "source_project_id": p.id,
            "target_project_id": p.id,
            "labels": list(mr.labels),
            "draft": draft,
            "work_in_progress": draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": False,
            "merge_status": "cannot_be_merged" if conflicts else "can_be_merged",
            "detailed_merge_status": detailed,
            "has_conflicts": conflicts,
            "blocking_discussions_resolved": True,
            "sha": mr.sha,
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": None,
            "discussion_locked": None,
            "should_remove_source_branch": mr.remove_source_branch or None,
            "force_remove_source_branch": mr.remove_source_branch,
            "squash": mr.squash,
            "merge_error": mr.merge_error,
            "rebase_in_progress": False,
            "diff_refs": {"base_sha": base, "head_sha": mr.sha, "start_sha": target},
            "references": {
                "short": f"!{mr.iid}",
                "relative": f"!{mr.iid}",
                "full": f"{p.path_with_namespace}!{mr.iid}",
            },
            "web_url": self._web(p, f"/-/merge_requests/{mr.iid}"),
        }

    def _users(self, ids: Json) -> list[User]:
        users = []
        for uid in _int_list(ids):
            if uid == 0:
                continue
            user = self.state.users.get(uid)
            if user is None:
                raise not_found("User Not Found")
            users.append(user)
        return users

    @route("POST", r"/projects/{id}/merge_requests")
    def create_mr(self, req: Request, project: str, *, as_member: bool = True) -> Response:
        p = self.project(req, project, level=DEVELOPER, as_member=as_member)
        params = req.params
        _require(params, "source_branch", "target_branch", "title")
        source, target = str(params["source_branch"]), str(params["target_branch"])
        errors = []
        if source == target:
            errors.append("You can't use same project/branch for source and target")
        source_sha = p.repo.branch_sha(source)
        if source_sha is None:
            errors.append(f'Source branch "{source}" does not exist')
        if p.repo.branch_sha(target) is None:
            errors.append(f'Target branch "{target}" does not exist')
        duplicate = next(
            (
                m
                for m in p.merge_requests.values()
                if m.state == "opened" and m.source_branch == source
            ),
            None,
        )
        if duplicate is not None:
            raise ApiError(
                409,
                [
                    f"Another open merge request already exists for this source branch: !{duplicate.iid}"
                ],
            )
        if errors:
            raise ApiError(400, errors)
        stamp = now()
        assignees = self._users(params.get("assignee_ids") or params.get("assignee_id"))
        mr = MergeRequest(
            id=self.state.ids.next(),
            iid=p.next_mr_iid,
            title=str(params["title"]),
            description=str(params.get("description") or ""),
            source_branch=source,
            target_branch=target,
            author=req.user,
            created_at=stamp,
            updated_at=stamp,
            labels=sorted(set(_labels(params.get("labels")))),
            assignees=assignees,
            reviewers=self._users(params.get("reviewer_ids")),
            remove_source_branch=_bool(params.get("remove_source_branch", False)),
            squash=_bool(params.get("squash", False)),
            sha=source_sha or "",
        )
        p.next_mr_iid += 1
        p.merge_requests[mr.iid] = mr
        self.record_labels(mr, req.user, [], mr.labels)
        self.mr_event(p, mr, req.user, "open")
        return Response(201, self.mr_json(p, mr))

    @route("GET", r"/projects/{id}/merge_requests")
    def list_mrs(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        q = req.query
        mrs = list(p.merge_requests.values())
        state = q.get("state", "all")
        if state != "all":
            mrs = [m for m in mrs if m.state == state]
        if q.get("labels"):
            mrs = [m for m in mrs if _has_labels(m.labels, q["labels"])]
        for key, attr in (("source_branch", "source_branch"), ("target_branch", "target_branch")):
            if key in q:
                mrs = [m for m in mrs if getattr(m, attr) == q[key]]
        if "author_username" in q:
            mrs = [m for m in mrs if m.author.username == q["author_username"]]
        if "author_id" in q:
            author_id = int(q["author_id"])
            mrs = [m for m in mrs if m.author.id == author_id]
        if "iids" in q or "iids[]" in q:
            iids = set(_int_list(q.get("iids") or q.get("iids[]")))
            mrs = [m for m in mrs if m.iid in iids]
        if q.get("search"):
            term = str(q["search"]).lower()
            where = str(q.get("in", "title,description")).split(",")
            mrs = [
                m
                for m in mrs
                if ("title" in where and term in m.title.lower())
                or ("description" in where and term in m.description.lower())
            ]
        order = str(q.get("order_by", "created_at"))
        if order not in ("created_at", "updated_at", "title", "merged_at"):
            raise ApiError(400, error="order_by does not have a valid value")
        mrs.sort(
            key=lambda m: (getattr(m, order) or "", m.id), reverse=q.get("sort", "desc") != "asc"
        )
        return self.page(req, mrs, lambda m: self.mr_json(p, m))

    @route("GET", r"/projects/{id}/merge_requests/(?P<iid>\d+)")
    def get_mr(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project)
        return Response(200, self.mr_json(p, self.mr(p, iid)))

    @route("PUT", r"/projects/{id}/merge_requests/(?P<iid>\d+)")
    def update_mr(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project, level=DEVELOPER)
        mr = self.mr(p, iid)
        params = req.params
        if "title" in params:
            mr.title = str(params["title"])
        if "description" in params:
            mr.description = str(params["description"] or "")
        labels = _updated_labels(mr.labels, params)
        self.record_labels(mr, req.user, mr.labels, labels)
        mr.labels = labels
        if "assignee_ids" in params:
            mr.assignees = self._users(params["assignee_ids"])
        if "reviewer_ids" in params:
            mr.reviewers = self._users(params["reviewer_ids"])
        if "target_branch" in params:
            mr.target_branch = str(params["target_branch"])
        if "remove_source_branch" in params:
            mr.remove_source_branch = _bool(params["remove_source_branch"])
        action = _apply_state_event(mr, params.get("state_event"), req.user)
        if action in ("close", "reopen"):
            self.record_state(mr, req.user, "closed" if action == "close" else "reopened")
        mr.updated_at = now()
        self.mr_event(p, mr, req.user, action)
        return Response(200, self.mr_json(p, mr))

    @route("PUT", r"/projects/{id}/merge_requests/(?P<iid>\d+)/rebase")
    def rebase_mr(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project, level=DEVELOPER)
        mr = self.mr(p, iid)
        if mr.state != "opened":
            raise ApiError(403, "403 Forbidden")
        source = p.repo.branch_sha(mr.source_branch)
        target = p.repo.branch_sha(mr.target_branch)
        if source is None or target is None:
            raise ApiError(403, "403 Forbidden")
        rebased = p.repo.rebase(source, target, committer=self.person(req.user))
        if rebased is None:
            mr.merge_error = (
                "Rebase failed: Rebase locally, resolve all conflicts, then push the branch."
            )
        else:
            mr.merge_error = None
            p.repo.set_branch(mr.source_branch, rebased, source)
            self.push_event(p, mr.source_branch, source, rebased, req.user)
            mr.sha = rebased
        return Response(202, {"rebase_in_progress": True})

    @route("PUT", r"/projects/{id}/merge_requests/(?P<iid>\d+)/merge")
    def merge_mr(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project)
        mr = self.mr(p, iid)
        if p.members.get(req.user.id, 0) < (
            MAINTAINER if p.is_protected(mr.target_branch) else DEVELOPER
        ):
            raise ApiError(401, "401 Unauthorized")
        if mr.state != "opened":
            raise ApiError(405, "405 Method Not Allowed")
        self.merge(p, mr, req.user)
        return Response(200, self.mr_json(p, mr))

    def merge(self, p: Project, mr: MergeRequest, user: User) -> None:
        """Merge ``mr`` into its target branch with a merge commit (as ``user``)."""
        source = p.repo.branch_sha(mr.source_branch)
        target = p.repo.branch_sha(mr.target_branch)
        if source is None or target is None:
            raise ApiError(422, "Branch cannot be merged")
        message = f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\nSee merge request {p.path_with_namespace}!{mr.iid}"
        merged = p.repo.merge(target, source, message, committer=self.person(user))
        if merged is None:
            raise ApiError(422, "Branch cannot be merged")
        p.repo.set_branch(mr.target_branch, merged, target)
        mr.sha = source
        mr.state, mr.merge_commit_sha, mr.merged_by, mr.merged_at = "merged", merged, user, now()
        self.record_state(mr, user, "merged")
        if mr.remove_source_branch:
            p.repo.delete_branch(mr.source_branch)
        self.push_event(p, mr.target_branch, target, merged, user)
        self.mr_event(p, mr, user, "merge")

    def record_labels(
        self, mr: MergeRequest, user: User, before: Sequence[str], after: Sequence[str]
    ) -> None:
        """Remember label changes for ``resource_label_events``."""
        for action, names in (
            ("add", set(after) - set(before)),
            ("remove", set(before) - set(after)),
        ):
            for name in sorted(names):
                mr.label_events.append(LabelEvent(self.state.ids.next(), user, action, name, now()))

    @route("GET", r"/projects/{id}/merge_requests/(?P<iid>\d+)/resource_label_events")
    def mr_label_events(self, req: Request, project: str, iid: str) -> Response:
        """GitLab's resource label events of a merge request, oldest first."""
        p = self.project(req, project)
        mr = self.mr(p, iid)
        events = [
            {
                "id": e.id,
                "user": self.user_json(e.user),
                "created_at": e.created_at,
                "resource_type": "MergeRequest",
                "resource_id": mr.id,
                "label": {"id": 0, "name": e.label, "color": "#428BCA", "description": None},
                "action": e.action,
            }
            for e in mr.label_events
        ]
        return self.page(req, events)

    def record_state(self, mr: MergeRequest, user: User, state: str) -> None:
        """Remember a state change for ``resource_state_events``."""
        mr.state_events.append(StateEvent(self.state.ids.next(), user, state, now()))

    @route("GET", r"/projects/{id}/merge_requests/(?P<iid>\d+)/resource_state_events")
    def mr_state_events(self, req: Request, project: str, iid: str) -> Response:
        """GitLab's resource state events of a merge request, oldest first."""
        p = self.project(req, project)
        mr = self.mr(p, iid)
        events = [
            {
                "id": e.id,
                "user": self.user_json(e.user),
                "created_at": e.created_at,
                "resource_type": "MergeRequest",
                "resource_id": mr.id,
                "state": e.state,
            }
            for e in mr.state_events
        ]
        return self.page(req, events)

    @route("GET", r"/projects/{id}/merge_requests/(?P<iid>\d+)/commits")
    def mr_commits(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project)
        mr = self.mr(p, iid)
        target = p.repo.branch_sha(mr.target_branch)
        head = p.repo.branch_sha(mr.source_branch) or mr.sha
        commits = p.repo.log(head, exclude=target) if head else []
        return self.page(req, commits, lambda c: self.commit_json(p, c))

    @route("GET", r"/projects/{id}/merge_requests/(?P<iid>\d+)/diffs")
    def mr_diffs(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project)
        body = self.mr_json(p, self.mr(p, iid))
        refs = body["diff_refs"]
        diffs = p.repo.diff(refs["base_sha"], refs["head_sha"]) if refs["base_sha"] else []
        return self.page(req, diffs)

    @route("GET", r"/projects/{id}/merge_requests/(?P<iid>\d+)/changes")
    def mr_changes(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project)
        body = self.mr_json(p, self.mr(p, iid))
        refs = body["diff_refs"]
        body["changes"] = (
            p.repo.diff(refs["base_sha"], refs["head_sha"]) if refs["base_sha"] else []
        )
        return Response(200, body)

    # -- issues -----------------------------------------------------------------------------

    def issue(self, p: Project, iid: str) -> Issue:
        found = p.issues.get(int(iid))
        if found is None:
            raise not_found()
        return found

    def issue_json(self, p: Project, issue: Issue) -> dict[str, Json]:
        return {
            "id": issue.id,
            "iid": issue.iid,
            "project_id": p.id,
            "title": issue.title,
            "description": issue.description,
            "state": issue.state,
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "closed_by": self.user_json(issue.closed_by) if issue.closed_by else None,
            "labels": list(issue.labels),
            "author": self.user_json(issue.author),
            "assignees": [self.user_json(u) for u in issue.assignees],
            "assignee": self.user_json(issue.assignees[0]) if issue.assignees else None,
            "user_notes_count": sum(1 for n in issue.notes if not n.system),
            "confidential": False,
            "issue_type": "issue",
            "references": {
                "short": f"#{issue.iid}",
                "full": f"{p.path_with_namespace}#{issue.iid}",
            },
            "web_url": self._web(p, f"/-/issues/{issue.iid}"),
        }

    @route("POST", r"/projects/{id}/issues")
    def create_issue(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        params = req.params
        _require(params, "title")
        stamp = now()
        issue = Issue(
            id=self.state.ids.next(),
            iid=p.next_issue_iid,
            title=str(params["title"]),
            description=str(params.get("description") or ""),
            author=req.user,
            created_at=stamp,
            updated_at=stamp,
            labels=sorted(set(_labels(params.get("labels")))),
            assignees=self._users(params.get("assignee_ids")),
        )
        p.next_issue_iid += 1
        p.issues[issue.iid] = issue
        self.issue_event(p, issue, req.user, "open")
        return Response(201, self.issue_json(p, issue))

    @route("GET", r"/projects/{id}/issues")
    def list_issues(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        q = req.query
        issues = list(p.issues.values())
        if q.get("state", "all") != "all":
            issues = [i for i in issues if i.state == q["state"]]
        if q.get("labels"):
            issues = [i for i in issues if _has_labels(i.labels, q["labels"])]
        if "author_username" in q:
            issues = [i for i in issues if i.author.username == q["author_username"]]
        if q.get("search"):
            term = str(q["search"]).lower()
            issues = [i for i in issues if term in i.title.lower() or term in i.description.lower()]
        order = str(q.get("order_by", "created_at"))
        if order not in ("created_at", "updated_at", "title"):
            raise ApiError(400, error="order_by does not have a valid value")
        issues.sort(key=lambda i: (getattr(i, order), i.id), reverse=q.get("sort", "desc") != "asc")
        return self.page(req, issues, lambda i: self.issue_json(p, i))

    @route("GET", r"/projects/{id}/issues/(?P<iid>\d+)")
    def get_issue(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project)
        return Response(200, self.issue_json(p, self.issue(p, iid)))

    @route("PUT", r"/projects/{id}/issues/(?P<iid>\d+)")
    def update_issue(self, req: Request, project: str, iid: str) -> Response:
        p = self.project(req, project)
        issue = self.issue(p, iid)
        params = req.params
        if "title" in params:
            issue.title = str(params["title"])
        if "description" in params:
            issue.description = str(params["description"] or "")
        issue.labels = _updated_labels(issue.labels, params)
        action = _apply_state_event(issue, params.get("state_event"), req.user)
        issue.updated_at = now()
        self.issue_event(p, issue, req.user, action)
        return Response(200, self.issue_json(p, issue))

    # -- notes and award emoji (merge requests and issues alike) -----------------------------

    def noteable(self, p: Project, kind: str, iid: str) -> MergeRequest | Issue:
        return self.mr(p, iid) if kind == "merge_requests" else self.issue(p, iid)

    def note_json(
        self, p: Project, kind: str, owner: MergeRequest | Issue, n: Note
    ) -> dict[str, Json]:
        position = self.positions.get(n.id)
        diff = {"position": position, "resolved": False} if position else {}
        return {
            **diff,
            "id": n.id,
            "type": "DiffNote" if position else None,
            "body": n.body,
            "attachment": None,
            "author": self.user_json(n.author),
            "created_at": n.created_at,
            "updated_at": n.updated_at,
            "system": n.system,
            "noteable_id": owner.id,
            "noteable_type": "MergeRequest" if kind == "merge_requests" else "Issue",
            "noteable_iid": owner.iid,
            "project_id": p.id,
            "resolvable": position is not None,
            "confidential": False,
            "internal": False,
        }

    def note(self, owner: MergeRequest | Issue, note_id: str) -> Note:
        found = next((n for n in owner.notes if n.id == int(note_id)), None)
        if found is None:
            raise not_found()
        return found

    _NOTES = r"/projects/{id}/(?P<kind>merge_requests|issues)/(?P<iid>\d+)/notes"

    @route("GET", _NOTES)
    def list_notes(self, req: Request, project: str, kind: str, iid: str) -> Response:
        p = self.project(req, project)
        owner = self.noteable(p, kind, iid)
        order = str(req.query.get("order_by", "created_at"))
        if order not in ("created_at", "updated_at"):
            raise ApiError(400, error="order_by does not have a valid value")
        notes = sorted(
            owner.notes,
            key=lambda n: (getattr(n, order), n.id),
            reverse=req.query.get("sort", "desc") != "asc",
        )
        return self.page(req, [self.note_json(p, kind, owner, n) for n in notes])

    @route("POST", _NOTES)
    def create_note(
        self, req: Request, project: str, kind: str, iid: str, *, as_member: bool = True
    ) -> Response:
        p = self.project(req, project, as_member=as_member)
        owner = self.noteable(p, kind, iid)
        _require(req.params, "body")
        stamp = now()
        note = Note(self.state.ids.next(), str(req.params["body"]), req.user, stamp, stamp)
        owner.notes.append(note)
        owner.updated_at = stamp
        self.note_event(p, kind, owner, note)
        return Response(201, self.note_json(p, kind, owner, note))

    @route("GET", _NOTES + r"/(?P<note_id>\d+)")
    def get_note(self, req: Request, project: str, kind: str, iid: str, note_id: str) -> Response:
        p = self.project(req, project)
        owner = self.noteable(p, kind, iid)
        return Response(200, self.note_json(p, kind, owner, self.note(owner, note_id)))

    @route("PUT", _NOTES + r"/(?P<note_id>\d+)")
    def update_note(
        self, req: Request, project: str, kind: str, iid: str, note_id: str
    ) -> Response:
        p = self.project(req, project)
        owner = self.noteable(p, kind, iid)
        note = self.note(owner, note_id)
        if note.author.id != req.user.id:
            raise ApiError(403, "403 Forbidden")
        _require(req.params, "body")
        note.body, note.updated_at = str(req.params["body"]), now()
        return Response(200, self.note_json(p, kind, owner, note))

    @route("DELETE", _NOTES + r"/(?P<note_id>\d+)")
    def delete_note(
        self, req: Request, project: str, kind: str, iid: str, note_id: str
    ) -> Response:
        p = self.project(req, project)
        owner = self.noteable(p, kind, iid)
        note = self.note(owner, note_id)
        if note.author.id != req.user.id:
            raise ApiError(403, "403 Forbidden")
        owner.notes.remove(note)
        return Response(204)

    def discussion_json(
        self, p: Project, kind: str, owner: MergeRequest | Issue, note: Note
    ) -> dict[str, Json]:
        return {
            "id": hashlib.sha1(f"discussion-{note.id}".encode()).hexdigest(),
            "individual_note": note.id not in self.positions,
            "notes": [self.note_json(p, kind, owner, note)],
        }

    _DISCUSSIONS = r"/projects/{id}/(?P<kind>merge_requests|issues)/(?P<iid>\d+)/discussions"

    @route("GET", _DISCUSSIONS)
    def list_discussions(self, req: Request, project: str, kind: str, iid: str) -> Response:
        p = self.project(req, project)
        owner = self.noteable(p, kind, iid)
        notes = sorted(owner.notes, key=lambda n: n.id)
        return self.page(req, notes, lambda n: self.discussion_json(p, kind, owner, n))

    @route("POST", _DISCUSSIONS)
    def create_discussion(self, req: Request, project: str, kind: str, iid: str) -> Response:
        requested = position_from(req.params)
        position = None
        if requested is not None:
            try:
                position = check_position(self.project(req, project).repo, requested)
            except PositionError as exc:
                raise ApiError(400, str(exc)) from None
        answer = self.create_note(req, project, kind, iid)
        p = self.project(req, project)
        owner = self.noteable(p, kind, iid)
        note = self.note(owner, str(answer.body["id"]))
        if position is not None:
            self.positions[note.id] = position
        return Response(201, self.discussion_json(p, kind, owner, note))

    def award_json(self, a: AwardEmoji, awardable_id: int, kind: str) -> dict[str, Json]:
        return {
            "id": a.id,
            "name": a.name,
            "user": self.user_json(a.user),
            "created_at": a.created_at,
            "updated_at": a.created_at,
            "awardable_id": awardable_id,
            "awardable_type": kind,
        }

    _AWARDS = r"(?:/notes/(?P<note_id>\d+))?/award_emoji"

    def _awardable(
        self, req: Request, project: str, kind: str, iid: str, note_id: str | None
    ) -> tuple[list[AwardEmoji], int, str]:
        p = self.project(req, project)
        owner = self.noteable(p, kind, iid)
        if note_id:
            note = self.note(owner, note_id)
            return note.awards, note.id, "Note"
        return owner.awards, owner.id, "MergeRequest" if kind == "merge_requests" else "Issue"

    @route("GET", _NOTES.removesuffix("/notes") + _AWARDS)
    def list_awards(
        self, req: Request, project: str, kind: str, iid: str, note_id: str = ""
    ) -> Response:
        awards, owner_id, owner_kind = self._awardable(req, project, kind, iid, note_id)
        return self.page(req, [self.award_json(a, owner_id, owner_kind) for a in awards])

    @route("POST", _NOTES.removesuffix("/notes") + _AWARDS)
    def create_award(
        self, req: Request, project: str, kind: str, iid: str, note_id: str = ""
    ) -> Response:
        awards, owner_id, owner_kind = self._awardable(req, project, kind, iid, note_id)
        _require(req.params, "name")
        name = str(req.params["name"])
        if any(a.name == name and a.user.id == req.user.id for a in awards):
            raise not_found("Award Emoji Name has already been taken")
        award = AwardEmoji(self.state.ids.next(), name, req.user, now())
        awards.append(award)
        return Response(201, self.award_json(award, owner_id, owner_kind))

    # -- webhooks -------------------------------------------------------------------------

    def hook_json(self, p: Project, hook: Hook) -> dict[str, Json]:
        return {
            "id": hook.id,
            "url": hook.url,
            "project_id": p.id,
            "enable_ssl_verification": False,
            **{name: name in hook.events for name in _HOOK_EVENTS},
        }

    @route("GET", r"/projects/{id}/hooks")
    def list_hooks(self, req: Request, project: str) -> Response:
        p = self.project(req, project, level=MAINTAINER)
        return self.page(req, p.hooks, lambda h: self.hook_json(p, h))

    @route("POST", r"/projects/{id}/hooks")
    def create_hook(self, req: Request, project: str) -> Response:
        p = self.project(req, project, level=MAINTAINER)
        _require(req.params, "url")
        defaults = {"push_events": True}
        events = frozenset(
            name for name in _HOOK_EVENTS if _bool(req.params.get(name, defaults.get(name, False)))
        )
        hook = Hook(self.state.ids.next(), str(req.params["url"]), req.params.get("token"), events)
        p.hooks.append(hook)
        return Response(201, self.hook_json(p, hook))

    @route("DELETE", r"/projects/{id}/hooks/(?P<hook_id>\d+)")
    def delete_hook(self, req: Request, project: str, hook_id: str) -> Response:
        p = self.project(req, project, level=MAINTAINER)
        hook = next((h for h in p.hooks if h.id == int(hook_id)), None)
        if hook is None:
            raise not_found()
        p.hooks.remove(hook)
        return Response(204)

    def emit(self, p: Project, event: str, payload: dict[str, Json]) -> None:
        for hook in p.hooks:
            if event in hook.events:
                self.hooks.send(hook, event, payload)

    def hook_project(self, p: Project) -> dict[str, Json]:
        return {
            "id": p.id,
            "name": p.name,
            "web_url": self._web(p),
            "path_with_namespace": p.path_with_namespace,
            "namespace": p.namespace,
            "default_branch": p.default_branch,
            "git_http_url": self._web(p, ".git"),
        }

    def hook_user(self, user: User) -> dict[str, Json]:
        return {
            "id": user.id,
            "name": user.name,
            "username": user.username,
            "avatar_url": None,
            "email": "[REDACTED]",
        }

    def hook_mr(self, p: Project, mr: MergeRequest) -> dict[str, Json]:
        body = self.mr_json(p, mr)
        last = p.repo.commit(mr.sha) if mr.sha else None
        return {
            key: body[key]
            for key in (
                "id",
                "iid",
                "title",
                "description",
                "state",
                "source_branch",
                "target_branch",
                "created_at",
                "updated_at",
                "merge_status",
                "detailed_merge_status",
                "draft",
                "merge_commit_sha",
                "source_project_id",
                "target_project_id",
            )
        } | {
            "author_id": mr.author.id,
            "url": body["web_url"],
            "labels": [{"title": name} for name in mr.labels],
            "last_commit": (
                {"id": last.sha, "message": last.message, "title": last.title} if last else None
            ),
        }

    def mr_event(self, p: Project, mr: MergeRequest, user: User, action: str) -> None:
        if not any("merge_requests_events" in h.events for h in p.hooks):
            return
        self.emit(
            p,
            "merge_requests_events",
            {
                "object_kind": "merge_request",
                "event_type": "merge_request",
                "user": self.hook_user(user),
                "project": self.hook_project(p),
                "object_attributes": self.hook_mr(p, mr) | {"action": action},
                "labels": [{"title": name} for name in mr.labels],
            },
        )

    def issue_event(self, p: Project, issue: Issue, user: User, action: str) -> None:
        if not any("issues_events" in h.events for h in p.hooks):
            return
        body = self.issue_json(p, issue)
        self.emit(
            p,
            "issues_events",
            {
                "object_kind": "issue",
                "event_type": "issue",
                "user": self.hook_user(user),
                "project": self.hook_project(p),
                "object_attributes": {
                    key: body[key]
                    for key in ("id", "iid", "title", "description", "state", "created_at")
                }
                | {"action": action, "url": body["web_url"], "author_id": issue.author.id},
                "labels": [{"title": name} for name in issue.labels],
            },
        )

    def note_event(self, p: Project, kind: str, owner: MergeRequest | Issue, note: Note) -> None:
        if not any("note_events" in h.events for h in p.hooks):
            return
        body = self.note_json(p, kind, owner, note)
        attributes = {
            "id": note.id,
            "note": note.body,
            "noteable_type": body["noteable_type"],
            "author_id": note.author.id,
            "created_at": note.created_at,
            "updated_at": note.updated_at,
            "project_id": p.id,
            "noteable_id": owner.id,
            "system": note.system,
            "action": "create",
            "url": self._web(p, f"/-/{kind}/{owner.iid}#note_{note.id}"),
        }
        payload: dict[str, Json] = {
            "object_kind": "note",
            "event_type": "note",
            "user": self.hook_user(note.author),
            "project_id": p.id,
            "project": self.hook_project(p),
            "object_attributes": attributes,
        }
        if isinstance(owner, MergeRequest):
            payload["merge_request"] = self.hook_mr(p, owner)
        else:
            payload["issue"] = self.issue_json(p, owner)
        self.emit(p, "note_events", payload)

    def push_event(
        self, p: Project, branch: str, before: str | None, after: str, user: User
    ) -> None:
        if not any("push_events" in h.events for h in p.hooks):
            return
        commits = p.repo.log(after, exclude=before) if before else p.repo.log(after)[:1]
        self.emit(
            p,
            "push_events",
            {
                "object_kind": "push",
                "event_name": "push",
                "before": before or "0" * 40,
                "after": after,
                "ref": f"refs/heads/{branch}",
                "checkout_sha": after,
                "user_id": user.id,
                "user_name": user.name,
                "user_username": user.username,
                "project_id": p.id,
                "project": self.hook_project(p),
                "commits": [
                    {
                        "id": c.sha,
                        "message": c.message,
                        "title": c.title,
                        "timestamp": c.committed_date,
                        "author": {"name": c.author_name, "email": c.author_email},
                    }
                    for c in reversed(commits[:20])
                ],
                "total_commits_count": len(commits),
            },
        )

    # -- labels ---------------------------------------------------------------------------

    def label_json(self, p: Project, name: str) -> dict[str, Json]:
        color, description = p.labels[name]
        return {
            "id": zlib.crc32(f"{p.id}/{name}".encode()) % 1_000_000,
            "name": name,
            "color": color,
            "text_color": "#FFFFFF",
            "description": description or None,
            "open_merge_requests_count": sum(
                1 for m in p.merge_requests.values() if m.state == "opened" and name in m.labels
            ),
            "subscribed": False,
            "priority": None,
            "is_project_label": True,
        }

    @route("GET", r"/projects/{id}/labels")
    def list_labels(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        return self.page(req, sorted(p.labels), lambda name: self.label_json(p, name))

    @route("GET", r"/projects/{id}/labels/(?P<label>[^/]+)")
    def get_label(self, req: Request, project: str, label: str) -> Response:
        p = self.project(req, project)
        if label not in p.labels:
            raise not_found("Label Not Found")
        return Response(200, self.label_json(p, label))

    @route("POST", r"/projects/{id}/labels")
    def create_label(self, req: Request, project: str) -> Response:
        p = self.project(req, project, level=DEVELOPER)
        _require(req.params, "name", "color")
        name = str(req.params["name"])
        if name in p.labels:
            raise ApiError(409, "Label already exists")
        p.labels[name] = (str(req.params["color"]), str(req.params.get("description") or ""))
        return Response(201, self.label_json(p, name))

    # -- pipelines, jobs, artifacts ---------------------------------------------------------

    def pipeline_json(self, p: Project, pl: Pipeline) -> dict[str, Json]:
        return {
            "id": pl.id,
            "iid": pl.iid,
            "project_id": p.id,
            "sha": pl.sha,
            "ref": pl.ref,
            "status": pl.status,
            "source": "push",
            "created_at": pl.created_at,
            "updated_at": pl.created_at,
            "web_url": self._web(p, f"/-/pipelines/{pl.id}"),
        }

    def job_json(self, p: Project, pl: Pipeline, job: Any) -> dict[str, Json]:
        archive = (
            [
                {
                    "file_type": "archive",
                    "size": len(job.artifacts),
                    "filename": "artifacts.zip",
                    "file_format": "zip",
                }
            ]
            if job.artifacts is not None
            else []
        )
        return {
            "id": job.id,
            "name": job.name,
            "stage": "test",
            "status": job.status,
            "ref": job.ref,
            "tag": False,
            "allow_failure": False,
            "created_at": job.created_at,
            "started_at": job.created_at,
            "finished_at": job.created_at,
            "duration": 1.0,
            "failure_reason": "script_failure" if job.status == "failed" else None,
            "user": self.user_json(self.state.bot),
            "commit": {"id": job.sha, "short_id": job.sha[:8]},
            "pipeline": {
                "id": pl.id,
                "project_id": p.id,
                "ref": pl.ref,
                "sha": pl.sha,
                "status": pl.status,
            },
            "artifacts_file": (
                {"filename": "artifacts.zip", "size": len(job.artifacts)}
                if job.artifacts is not None
                else None
            ),
            "artifacts": archive,
            "web_url": self._web(p, f"/-/jobs/{job.id}"),
        }

    def pipeline(self, p: Project, pipeline_id: str) -> Pipeline:
        found = p.pipelines.get(int(pipeline_id))
        if found is None:
            raise not_found()
        return found

    def job(self, p: Project, job_id: str) -> tuple[Pipeline, Any]:
        for pl in p.pipelines.values():
            for job in pl.jobs:
                if job.id == int(job_id):
                    return pl, job
        raise not_found()

    @route("GET", r"/projects/{id}/pipelines")
    def list_pipelines(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        q = req.query
        pipelines = list(p.pipelines.values())
        for key in ("ref", "status", "sha"):
            if key in q:
                pipelines = [pl for pl in pipelines if getattr(pl, key) == q[key]]
        order = str(q.get("order_by", "id"))
        if order not in ("id", "status", "ref", "updated_at", "user_id"):
            raise ApiError(400, error="order_by does not have a valid value")
        key = "created_at" if order in ("updated_at", "user_id") else order
        pipelines.sort(
            key=lambda pl: (getattr(pl, key), pl.id), reverse=q.get("sort", "desc") != "asc"
        )
        return self.page(req, [self.pipeline_json(p, pl) for pl in pipelines])

    @route("GET", r"/projects/{id}/pipelines/(?P<pipeline_id>\d+)")
    def get_pipeline(self, req: Request, project: str, pipeline_id: str) -> Response:
        p = self.project(req, project)
        return Response(200, self.pipeline_json(p, self.pipeline(p, pipeline_id)))

    @route("GET", r"/projects/{id}/pipelines/(?P<pipeline_id>\d+)/jobs")
    def list_pipeline_jobs(self, req: Request, project: str, pipeline_id: str) -> Response:
        p = self.project(req, project)
        pl = self.pipeline(p, pipeline_id)
        scope = req.query.get("scope") or req.query.get("scope[]")
        jobs = pl.jobs
        if scope:
            scopes = scope if isinstance(scope, list) else [scope]
            jobs = [j for j in jobs if j.status in scopes]
        return self.page(req, [self.job_json(p, pl, j) for j in sorted(jobs, key=lambda j: -j.id)])

    @route("GET", r"/projects/{id}/jobs/(?P<job_id>\d+)")
    def get_job(self, req: Request, project: str, job_id: str) -> Response:
        p = self.project(req, project)
        pl, job = self.job(p, job_id)
        return Response(200, self.job_json(p, pl, job))

    @route("GET", r"/projects/{id}/jobs/(?P<job_id>\d+)/artifacts")
    def job_artifacts(self, req: Request, project: str, job_id: str) -> Response:
        p = self.project(req, project, level=GUEST)
        _, job = self.job(p, job_id)
        if job.artifacts is None:
            raise not_found()
        return Response(200, raw=job.artifacts, content_type="application/zip")

    @route("GET", r"/projects/{id}/jobs/(?P<job_id>\d+)/artifacts/(?P<artifact_path>.+)")
    def job_artifact_file(
        self, req: Request, project: str, job_id: str, artifact_path: str
    ) -> Response:
        p = self.project(req, project)
        _, job = self.job(p, job_id)
        return self._artifact_member(job.artifacts, artifact_path)

    def _latest_job(self, req: Request, p: Project, ref: str) -> Any:
        _require(req.query, "job")
        for pl in sorted(p.pipelines.values(), key=lambda pl: -pl.id):
            if pl.ref != ref:
                continue
            for job in pl.jobs:
                if job.name == req.query["job"] and job.artifacts is not None:
                    return job
        raise not_found()

    @route("GET", r"/projects/{id}/jobs/artifacts/(?P<ref>[^/]+)/download")
    def ref_artifacts(self, req: Request, project: str, ref: str) -> Response:
        p = self.project(req, project)
        job = self._latest_job(req, p, ref)
        return Response(200, raw=job.artifacts, content_type="application/zip")

    @route("GET", r"/projects/{id}/jobs/artifacts/(?P<ref>[^/]+)/raw/(?P<artifact_path>.+)")
    def ref_artifact_file(
        self, req: Request, project: str, ref: str, artifact_path: str
    ) -> Response:
        p = self.project(req, project)
        return self._artifact_member(self._latest_job(req, p, ref).artifacts, artifact_path)

    @route("GET", r"/projects/{id}/pipelines/latest")
    def latest_pipeline(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        ref = str(req.query.get("ref") or p.default_branch)
        found = [pl for pl in p.pipelines.values() if pl.ref == ref]
        if not found:
            raise not_found()
        return Response(200, self.pipeline_json(p, max(found, key=lambda pl: pl.id)))

    @route("GET", r"/projects/{id}/jobs")
    def list_jobs(self, req: Request, project: str) -> Response:
        p = self.project(req, project)
        scope = req.query.get("scope")
        scopes = scope if isinstance(scope, list) else [scope] if scope else []
        jobs = [
            (pl, job)
            for pl in p.pipelines.values()
            for job in pl.jobs
            if not scopes or job.status in scopes
        ]
        jobs.sort(key=lambda pair: -pair[1].id)
        return self.page(req, jobs, lambda pair: self.job_json(p, *pair))

    @staticmethod
    def _artifact_member(archive: bytes | None, path: str) -> Response:
        if archive is None:
            raise not_found()
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            try:
                data = zf.read(path)
            except KeyError:
                raise not_found() from None
        return Response(200, raw=data, content_type="application/octet-stream")


def quote_path(path: str) -> str:
    """URL-encode a file path or project path as GitLab wants it in a URL segment."""
    return quote(path, safe="")


def _updated_labels(current: list[str], params: Mapping[str, Any]) -> list[str]:
    """GitLab's ``labels`` (replace), then ``add_labels`` and ``remove_labels``."""
    labels = set(_labels(params["labels"])) if "labels" in params else set(current)
    if "add_labels" in params:
        labels |= set(_labels(params["add_labels"]))
    if "remove_labels" in params:
        labels -= set(_labels(params["remove_labels"]))
    return sorted(labels)


def _apply_state_event(item: Any, event: Any, user: Any) -> str:
    """``state_event`` close/reopen on an MR or issue; the webhook action it fires."""
    if event == "close" and item.state == "opened":
        item.state, item.closed_at, item.closed_by = "closed", now(), user
        return "close"
    if event == "reopen" and item.state == "closed":
        item.state, item.closed_at, item.closed_by = "opened", None, None
        return "reopen"
    if event not in (None, "close", "reopen"):
        raise ApiError(400, error="state_event does not have a valid value")
    return "update"
