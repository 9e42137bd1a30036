"""`GitLabEmulator`: a threaded HTTP server speaking GitLab REST v4 over real git repositories."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .api import Api, ApiError, Request, Response, State
from .git import GitRepo, Person, Symlink
from .hooks import Delivery, Hook
from .state import DEVELOPER, Fault, Job, Pipeline, Project, User, now

_STATUS_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class GitLabEmulator:
    """An in-process GitLab for tests: python-gitlab talks to it over real HTTP.

    ``requests`` records ``(METHOD, path)`` of every API request (path as sent, without query,
    e.g. ``/api/v4/projects/1/merge_requests``), including those answered by an injected fault.
    The token's user is the bot (``bot_username``); ``create_project`` makes it a Developer.
    """

    def __init__(
        self, root: Path, *, token: str = "test-token", bot_username: str = "kube-remedy"
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        bot = User(0, bot_username, bot_username, bot=True)
        self.state = State(token=token, bot=bot)
        bot.id = self.state.user_ids.next()
        self.state.users[bot.id] = bot
        self.api = Api(self.state)
        self.requests: list[tuple[str, str]] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def bot_user_id(self) -> int:
        return self.state.bot.id

    @property
    def url(self) -> str:
        """The base URL (empty before `start`)."""
        return self.state.base_url

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on 127.0.0.1 on a free port in a background thread; return the base URL."""
        if self._server is not None:
            return self.state.base_url
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.state.base_url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="gitlab-emulator",
            daemon=True,
        )
        self._thread.start()
        return self.state.base_url

    def stop(self) -> None:
        """Stop serving, finish webhook deliveries and release the repositories."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None
        self.api.hooks.close()
        with self._lock:
            for project in self.state.projects.values():
                project.repo.close()

    def __enter__(self) -> GitLabEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request accounting and faults ------------------------------------------------------

    def writes(self) -> int:
        """How many recorded requests were not reads (GET/HEAD)."""
        with self._lock:
            return sum(1 for method, _ in self.requests if method not in ("GET", "HEAD"))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def inject(
        self,
        *,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` matching requests fail with ``status`` after ``delay`` seconds.
        A status below 400 only delays: the request is then answered normally."""
        with self._lock:
            self._faults.append(Fault(status, times, retry_after, method, path_contains, delay))

    # -- seeding ----------------------------------------------------------------------------

    def add_user(self, username: str, *, name: str = "", bot: bool = False) -> int:
        with self._lock:
            if self.state.user_named(username) is not None:
                raise ValueError(f"user {username!r} already exists")
            user = User(self.state.user_ids.next(), username, name or username, bot=bot)
            self.state.users[user.id] = user
            return user.id

    def add_member(self, project_id: int, user_id: int, access_level: int) -> None:
        with self._lock:
            if user_id not in self.state.users:
                raise ValueError(f"no user {user_id}")
            self._project(project_id).members[user_id] = access_level

    def create_project(
        self,
        path_with_namespace: str,
        files: Mapping[str, str],
        *,
        default_branch: str = "main",
        protected: Sequence[str] = ("main",),
        symlinks: Mapping[str, str] | None = None,
    ) -> int:
        """A project with a real git repository holding ``files`` (and ``symlinks``: path ->
        link target) in one initial commit."""
        with self._lock:
            if any(
                p.path_with_namespace == path_with_namespace for p in self.state.projects.values()
            ):
                raise ValueError(f"project {path_with_namespace!r} already exists")
            pid = self.state.project_ids.next()
            repo = GitRepo(self.root / f"{path_with_namespace.replace('/', '__')}.git")
            repo.init(default_branch)
            admin = Person("Administrator", "admin@example.com")
            sha = repo.write_commit(
                None,
                {
                    **{path: text.encode() for path, text in files.items()},
                    **{path: Symlink(to.encode()) for path, to in (symlinks or {}).items()},
                },
                "Initial commit",
                author=admin,
                committer=admin,
            )
            repo.set_branch(default_branch, sha)
            project = Project(
                id=pid,
                path_with_namespace=path_with_namespace,
                default_branch=default_branch,
                repo=repo,
                created_at=now(),
                protected=list(protected),
                members={self.state.bot.id: DEVELOPER},
            )
            self.state.projects[pid] = project
            return pid

    def push_as(
        self, project_id: int, branch: str, files: Mapping[str, str], *, author: str, message: str
    ) -> str:
        """A commit by ``author`` (a username, known or not) on ``branch``, bypassing protection.
        A missing branch starts from the default branch. Returns the commit id."""
        with self._lock:
            project = self._project(project_id)
            user = self.state.user_named(author)
            person = (
                Person(user.name, user.email) if user else Person(author, f"{author}@example.com")
            )
            repo = project.repo
            parent = repo.branch_sha(branch) or repo.branch_sha(project.default_branch)
            sha = repo.write_commit(
                parent,
                {path: text.encode() for path, text in files.items()},
                message,
                author=person,
                committer=person,
            )
            before = repo.branch_sha(branch)
            repo.set_branch(branch, sha)
            self.api.push_event(project, branch, before, sha, user or self._guest(author))
            return sha

    def amend_as(self, project_id: int, branch: str, files: Mapping[str, str], *, by: str) -> str:
        """``git commit --amend`` of the head of ``branch`` by ``by`` (a known username) and a
        force push: the author (name, e-mail) and message stay, the committer is ``by``."""
        with self._lock:
            project = self._project(project_id)
            user = self._user(by)
            repo = project.repo
            before = repo.branch_sha(branch)
            head = repo.commit(before) if before else None
            if head is None or not head.parents:
                raise ValueError(f"nothing to amend on {branch!r}")
            parent = head.parents[0]
            changed: dict[str, bytes | None] = {
                path: data
                for path in repo.files(head.sha)
                if (data := repo.read(head.sha, path)) != repo.read(parent, path)
            }
            changed.update({path: text.encode() for path, text in files.items()})
            sha = repo.write_commit(
                parent,
                changed,
                head.message,
                author=Person(head.author_name, head.author_email),
                committer=Person(user.name, user.email),
            )
            repo.set_branch(branch, sha)
            self.api.push_event(project, branch, before, sha, user)
            return sha

    def add_pipeline(
        self,
        project_id: int,
        ref: str,
        jobs: Mapping[str, Mapping[str, bytes] | None],
        status: str = "failed",
    ) -> int:
        """A finished pipeline on ``ref`` whose jobs carry the given artifact files (zip)."""
        with self._lock:
            project = self._project(project_id)
            sha = project.repo.resolve(ref)
            if sha is None:
                raise ValueError(f"no ref {ref!r} in project {project_id}")
            stamp = now()
            pipeline = Pipeline(
                id=self.state.ids.next(),
                iid=project.next_pipeline_iid,
                ref=ref,
                sha=sha,
                status=status,
                created_at=stamp,
            )
            project.next_pipeline_iid += 1
            for name, artifacts in jobs.items():
                pipeline.jobs.append(
                    Job(
                        id=self.state.ids.next(),
                        name=name,
                        status=status,
                        pipeline_id=pipeline.id,
                        ref=ref,
                        sha=sha,
                        created_at=stamp,
                        artifacts=None if artifacts is None else _zip(artifacts),
                    )
                )
            project.pipelines[pipeline.id] = pipeline
            return pipeline.id

    # -- inspection -------------------------------------------------------------------------

    def repo_path(self, project_id: int) -> Path:
        """The bare git repository backing the project (``git --git-dir=... log main``)."""
        return self._project(project_id).repo.path

    def file_at(self, project_id: int, ref: str, path: str) -> str | None:
        with self._lock:
            repo = self._project(project_id).repo
            sha = repo.resolve(ref)
            data = repo.read(sha, path) if sha else None
            return None if data is None else data.decode()

    def branches(self, project_id: int) -> dict[str, str]:
        """Branch name -> head commit id."""
        with self._lock:
            return self._project(project_id).repo.branches()

    def merge_requests(self, project_id: int) -> list[dict[str, Any]]:
        """Every MR of the project (GitLab field names), oldest first."""
        with self._lock:
            project = self._project(project_id)
            return [self.api.mr_json(project, mr) for mr in project.merge_requests.values()]

    def issues(self, project_id: int) -> list[dict[str, Any]]:
        with self._lock:
            project = self._project(project_id)
            return [self.api.issue_json(project, i) for i in project.issues.values()]

    def notes(self, project_id: int, mr_iid: int) -> list[dict[str, Any]]:
        """The notes of one MR, oldest first."""
        with self._lock:
            project = self._project(project_id)
            mr = self.api.mr(project, str(mr_iid))
            return [self.api.note_json(project, "merge_requests", mr, n) for n in mr.notes]

    def merge(self, project_id: int, mr_iid: int, *, by: str) -> None:
        """Merge an MR as a human would (``by`` is a known username)."""
        with self._lock:
            project = self._project(project_id)
            user = self.state.user_named(by)
            if user is None:
                raise ValueError(f"no user {by!r}")
            self.api.merge(project, self.api.mr(project, str(mr_iid)), user)

    def open_mr_as(
        self,
        project_id: int,
        source_branch: str,
        title: str,
        *,
        by: str,
        target_branch: str | None = None,
        description: str = "",
        labels: Sequence[str] = (),
    ) -> int:
        """An MR opened by a human (``by`` is a known username); returns its iid."""
        with self._lock:
            project = self._project(project_id)
            body = {
                "source_branch": source_branch,
                "target_branch": target_branch or project.default_branch,
                "title": title,
                "description": description,
                "labels": list(labels),
            }
            request = Request("POST", "", {}, body, "", self._user(by))
            return int(self.api.create_mr(request, str(project_id), as_member=False).body["iid"])

    def comment_as(self, project_id: int, mr_iid: int, body: str, *, by: str) -> int:
        """A note on an MR by a human; returns the note id."""
        with self._lock:
            request = Request("POST", "", {}, {"body": body}, "", self._user(by))
            answer = self.api.create_note(
                request, str(project_id), "merge_requests", str(mr_iid), as_member=False
            )
            return int(answer.body["id"])

    def add_hook(
        self,
        project_id: int,
        url: str,
        *,
        token: str | None = None,
        events: Sequence[str] = ("merge_requests_events", "note_events"),
    ) -> int:
        """A project webhook (event names as in GitLab's hook API, e.g. ``note_events``)."""
        with self._lock:
            hook = Hook(self.state.ids.next(), url, token, frozenset(events))
            self._project(project_id).hooks.append(hook)
            return hook.id

    @property
    def hook_deliveries(self) -> list[Delivery]:
        """Webhook deliveries attempted so far (call `flush_hooks` first to see them all)."""
        return list(self.api.hooks.deliveries)

    def flush_hooks(self) -> None:
        """Wait until every queued webhook delivery was attempted."""
        self.api.hooks.flush()

    @staticmethod
    def _guest(username: str) -> User:
        return User(0, username, username)

    def _user(self, username: str) -> User:
        user = self.state.user_named(username)
        if user is None:
            raise ValueError(f"no user {username!r}")
        return user

    def close_as(self, project_id: int, mr_iid: int, *, by: str) -> None:
        """Close an MR as a human would."""
        with self._lock:
            user = self.state.user_named(by)
            if user is None:
                raise ValueError(f"no user {by!r}")
            project = self._project(project_id)
            mr = self.api.mr(project, str(mr_iid))
            mr.state, mr.closed_at, mr.closed_by, mr.updated_at = "closed", now(), user, now()
            self.api.record_state(mr, user, "closed")
            self.api.mr_event(project, mr, user, "close")

    def label_as(self, project_id: int, mr_iid: int, *, by: str, add: Sequence[str] = ()) -> None:
        """Add labels to an MR as a human would (a Reporter may)."""
        with self._lock:
            user = self._user(by)
            project = self._project(project_id)
            mr = self.api.mr(project, str(mr_iid))
            labels = sorted(set(mr.labels) | set(add))
            self.api.record_labels(mr, user, mr.labels, labels)
            mr.labels, mr.updated_at = labels, now()
            self.api.mr_event(project, mr, user, "update")

    def reopen_as(self, project_id: int, mr_iid: int, *, by: str) -> None:
        """Reopen a closed MR as a human would."""
        with self._lock:
            user = self._user(by)
            project = self._project(project_id)
            mr = self.api.mr(project, str(mr_iid))
            mr.state, mr.closed_at, mr.closed_by, mr.updated_at = "opened", None, None, now()
            self.api.record_state(mr, user, "reopened")
            self.api.mr_event(project, mr, user, "reopen")

    def _project(self, project_id: int) -> Project:
        project = self.state.projects.get(project_id)
        if project is None:
            raise KeyError(f"no project {project_id}")
        return project

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one HTTP request (called from the server threads)."""
        parts = urlsplit(target)
        path = parts.path
        with self._lock:
            self.requests.append((method, path))
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status >= 400:
                extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                reason = _STATUS_TEXT.get(fault.status, "Error")
                return Response(fault.status, {"message": f"{fault.status} {reason}"}, extra)
        if not path.startswith("/api/v4/"):
            return Response(404, {"message": "404 Not Found"})
        token = headers.get("private-token") or ""
        auth = headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            token = token or auth[7:]
        if token != self.state.token:
            return Response(401, {"message": "401 Unauthorized"})
        try:
            query = _query(parts.query)
            payload = _body(body, headers.get("content-type") or "")
        except ValueError as exc:
            return Response(400, {"error": f"invalid request: {exc}"})
        host = headers.get("host") or self.state.base_url.removeprefix("http://")
        request = Request(method, path, query, payload, host, self.state.bot)
        with self._lock:
            try:
                return self.api.dispatch(request)
            except ApiError as exc:
                return Response(exc.status, exc.body)
            except ValueError as exc:  # a malformed number or id in the parameters
                return Response(400, {"error": f"invalid parameter: {exc}"})


class _Handler(BaseHTTPRequestHandler):
    emulator: GitLabEmulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            response = self.emulator.handle(self.command, self.path, headers, body)
        except Exception as exc:  # an emulator bug must surface as a 500, not a hung client
            response = Response(500, {"message": f"500 Internal Server Error: {exc!r}"})
        if response.raw is not None:
            payload = response.raw
        elif response.body is None and response.status == 204:
            payload = b""
        else:
            payload = json.dumps(response.body).encode()
        self.send_response(response.status, _STATUS_TEXT.get(response.status))
        if payload or response.status != 204:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging on stderr."""


def _query(text: str) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.endswith("[]"):
            query.setdefault(key[:-2], []).append(value)
        else:
            query[key] = value
    return query


def _body(body: bytes, content_type: str) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        return data
    if "x-www-form-urlencoded" in content_type:
        return _query(body.decode())
    raise ValueError(f"unsupported content type {content_type!r}")


def _zip(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return buffer.getvalue()
