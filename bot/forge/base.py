"""The Forge protocol: what the bot needs from GitLab or a local git repository.

The MR lifecycle (create / update / leave / close / ignore) lives in `bot.lifecycle` and speaks
only `Forge`, so GitLab, local mode and the in-memory forge behave alike. `CommandForge` is the
same protocol grown by the calls the commands people give in merge requests and chat make
(`bot.commands`): members, awards, replies, labels, states. One adapter implements it,
`bot.forge.gitlab.GitLabForge`. The types both sides share live here.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from bot.errors import ForgeConflictError, RepositoryError

ChangeState = Literal["opened", "closed", "merged", "locked"]


def check_repo_path(path: str) -> None:
    """Refuse a path a forge must never write: absolute, with ``..``, ``.`` or empty parts,
    inside ``.git``, or with a backslash or control character."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts)
        or "\\" in path
        or not path.isprintable()
    ):
        raise RepositoryError(f"refusing to write {path!r}: not a plain path inside the repository")


@dataclass(frozen=True)
class ChangeRequest:
    """A merge request (or its local-mode equivalent) the bot opened."""

    id: int
    """The MR iid on GitLab; a sequence number locally."""
    branch: str
    title: str
    description: str
    state: ChangeState
    labels: tuple[str, ...] = ()
    web_url: str = ""
    author_is_bot: bool = True
    head_sha: str = ""
    has_conflicts: bool = False
    foreign_commits: bool = False
    """The branch carries a commit by someone other than the bot."""
    extra: Mapping[str, str] = field(default_factory=dict)


def refuse_second_open(open_branches: Container[str], branch: str) -> None:
    """A branch has at most one open change request (GitLab answers 409 for a second);
    ``open_branches``: the branches that have an open one."""
    if branch in open_branches:
        raise ForgeConflictError(f"an open change request already exists for {branch}")


def opened_change(
    id: int,
    branch: str,
    title: str,
    description: str,
    labels: Sequence[str],
    *,
    created_at: str,
    **fields: str,
) -> ChangeRequest:
    """A change request just opened by the bot (``fields``: forge-specific ``extra``)."""
    return ChangeRequest(
        id=id,
        branch=branch,
        title=title,
        description=description,
        state="opened",
        labels=tuple(labels),
        extra={"created_at": created_at, **fields},
    )


@dataclass(frozen=True)
class ChangeEdit:
    """What `Forge.update_change` writes: only the fields that differ from the change (labels
    compared as a set, so a reordering is no write); empty when nothing changed."""

    title: str | None = None
    description: str | None = None
    labels: tuple[str, ...] | None = None

    @classmethod
    def between(
        cls,
        change: ChangeRequest,
        *,
        title: str | None = None,
        description: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> ChangeEdit:
        wanted = None if labels is None else tuple(dict.fromkeys(labels))
        return cls(
            title=title if title is not None and title != change.title else None,
            description=(
                description
                if description is not None and description != change.description
                else None
            ),
            labels=wanted
            if wanted is not None and sorted(wanted) != sorted(change.labels)
            else None,
        )

    def __bool__(self) -> bool:
        return self.title is not None or self.description is not None or self.labels is not None

    def applied(self, change: ChangeRequest) -> ChangeRequest:
        """The change as it is after this edit."""
        return replace(
            change,
            title=change.title if self.title is None else self.title,
            description=change.description if self.description is None else self.description,
            labels=change.labels if self.labels is None else self.labels,
        )


class Forge(Protocol):
    """Commit files on a branch; find, open, update and close change requests; post notes."""

    def default_branch(self) -> str: ...

    def read_file(self, path: str, ref: str | None = None) -> str | None:
        """A file's text on ``ref`` (default branch when None); None when absent."""
        ...

    def list_files(self, ref: str | None = None) -> Sequence[str]:
        """Every file path on ``ref`` (default branch when None)."""
        ...

    def commit_files(
        self, branch: str, files: Mapping[str, str], message: str, *, start_branch: str
    ) -> str:
        """Create or reset ``branch`` from ``start_branch`` with one commit writing ``files``.
        Refuses the default branch and protected branches. Returns the commit id."""
        ...

    def find_changes(self) -> Sequence[ChangeRequest]:
        """Every change request the bot opened (any state), in one listing."""
        ...

    def open_change(
        self,
        branch: str,
        title: str,
        description: str,
        labels: Sequence[str],
        reviewers: Sequence[str] = (),
    ) -> ChangeRequest: ...

    def update_change(
        self,
        change: ChangeRequest,
        *,
        title: str | None = None,
        description: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> ChangeRequest: ...

    def has_foreign_commits(self, change: ChangeRequest) -> bool:
        """Does the change's branch carry a commit the bot did not write? (asked only before
        the bot would rewrite the branch, so listings stay one request)."""
        ...

    def close_change(self, change: ChangeRequest, comment: str) -> None: ...

    def comment(self, change: ChangeRequest, body: str) -> None: ...


@dataclass(frozen=True)
class MergeRequestInfo:
    """What the commands need to know of a merge request, re-read from GitLab."""

    iid: int
    state: str
    source_branch: str
    title: str
    target_branch: str = "main"
    description: str = ""
    labels: tuple[str, ...] = ()
    web_url: str = ""


class CommandForge(Forge, Protocol):
    """A `Forge` (of one project) that also serves the commands of merge requests and chat."""

    def access_level(self, user_id: int) -> int:
        """The user's effective access level in the project; 0 when not a member."""
        ...

    def merge_request(self, iid: int) -> MergeRequestInfo: ...

    def open_merge_requests(self, branch_prefix: str) -> list[MergeRequestInfo]: ...

    def award_emoji(self, iid: int, note_id: int, name: str) -> None:
        """Award ``name`` on a note (already awarded is fine)."""
        ...

    def note_has_award(self, iid: int, note_id: int, name: str) -> bool:
        """Does the note carry the bot's own ``name`` award?"""
        ...

    def reply(self, iid: int, body: str) -> None: ...

    def rebase(self, iid: int) -> None: ...

    def set_state(self, iid: int, event: Literal["close", "reopen"]) -> None: ...

    def set_labels(
        self, iid: int, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None: ...
