"""The emulator's records besides git: users, members, merge requests, issues, notes, pipelines."""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .git import GitRepo
from .hooks import Hook

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ACCESS_NAMES = {
    GUEST: "Guest",
    REPORTER: "Reporter",
    DEVELOPER: "Developer",
    MAINTAINER: "Maintainer",
    OWNER: "Owner",
}


def now() -> str:
    """GitLab's timestamp format (UTC, milliseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Counter:
    """Instance-wide id sequences (GitLab ids are global, iids per project)."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def next(self) -> int:
        return next(self._seq)


@dataclass
class User:
    id: int
    username: str
    name: str
    bot: bool = False

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


@dataclass
class AwardEmoji:
    id: int
    name: str
    user: User
    created_at: str


@dataclass
class Note:
    id: int
    body: str
    author: User
    created_at: str
    updated_at: str
    system: bool = False
    awards: list[AwardEmoji] = field(default_factory=list)


@dataclass
class LabelEvent:
    """One entry of GitLab's resource label events: who added or removed a label, when."""

    id: int
    user: User
    action: str
    """add | remove"""
    label: str
    created_at: str


@dataclass
class StateEvent:
    """One entry of GitLab's resource state events: who closed, reopened or merged it, when."""

    id: int
    user: User
    state: str
    """closed | reopened | merged"""
    created_at: str


@dataclass
class MergeRequest:
    id: int
    iid: int
    title: str
    description: str
    source_branch: str
    target_branch: str
    author: User
    created_at: str
    updated_at: str
    labels: list[str] = field(default_factory=list)
    state: str = "opened"
    assignees: list[User] = field(default_factory=list)
    reviewers: list[User] = field(default_factory=list)
    remove_source_branch: bool = False
    squash: bool = False
    sha: str = ""
    merge_commit_sha: str | None = None
    merged_by: User | None = None
    merged_at: str | None = None
    closed_by: User | None = None
    closed_at: str | None = None
    merge_error: str | None = None
    notes: list[Note] = field(default_factory=list)
    awards: list[AwardEmoji] = field(default_factory=list)
    state_events: list[StateEvent] = field(default_factory=list)
    label_events: list[LabelEvent] = field(default_factory=list)


@dataclass
class Issue:
    id: int
    iid: int
    title: str
    description: str
    author: User
    created_at: str
    updated_at: str
    labels: list[str] = field(default_factory=list)
    state: str = "opened"
    assignees: list[User] = field(default_factory=list)
    closed_at: str | None = None
    closed_by: User | None = None
    notes: list[Note] = field(default_factory=list)
    awards: list[AwardEmoji] = field(default_factory=list)


@dataclass
class Job:
    id: int
    name: str
    status: str
    pipeline_id: int
    ref: str
    sha: str
    created_at: str
    artifacts: bytes | None
    """The zip archive, or None when the job kept no artifacts."""


@dataclass
class Pipeline:
    id: int
    iid: int
    ref: str
    sha: str
    status: str
    created_at: str
    jobs: list[Job] = field(default_factory=list)


@dataclass
class Project:
    id: int
    path_with_namespace: str
    default_branch: str
    repo: GitRepo
    created_at: str
    protected: list[str] = field(default_factory=list)
    members: dict[int, int] = field(default_factory=dict)
    """user id -> access level."""
    merge_requests: dict[int, MergeRequest] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    pipelines: dict[int, Pipeline] = field(default_factory=dict)
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    """label name -> (color, description)."""
    next_mr_iid: int = 1
    next_issue_iid: int = 1
    next_pipeline_iid: int = 1

    @property
    def name(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[0] if "/" in self.path_with_namespace else ""

    def is_protected(self, branch: str) -> bool:
        """Whether a protection rule (an exact name or a wildcard like ``release/*``) covers it."""
        return any(fnmatch.fnmatchcase(branch, rule) for rule in self.protected)


@dataclass
class Fault:
    """A programmed failure or slowdown for the next matching requests."""

    status: int
    times: int
    retry_after: int | None
    method: str | None
    path_contains: str | None
    delay: float

    def matches(self, method: str, path: str) -> bool:
        if self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_contains is None or self.path_contains in path
