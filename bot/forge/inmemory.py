"""An in-memory Forge for fast tests of the lifecycle: branches as dicts, MRs as records.

It honours the same refusals as the real forges (default and protected branches) and counts
write calls, so tests can assert "zero writes on an unchanged re-run".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from bot.errors import ForgeConflictError
from bot.forge.base import ChangeEdit, ChangeRequest, opened_change, refuse_second_open


class InMemoryForge:
    def __init__(
        self,
        files: Mapping[str, str] | None = None,
        *,
        default: str = "main",
        protected: Sequence[str] = (),
    ) -> None:
        self.default = default
        self.protected = set(protected) | {default}
        self.branches: dict[str, dict[str, str]] = {default: dict(files or {})}
        self.changes: list[ChangeRequest] = []
        self.notes: list[tuple[int, str]] = []
        self.writes: list[str] = []
        self.clock: datetime | None = None

    def default_branch(self) -> str:
        return self.default

    def read_file(self, path: str, ref: str | None = None) -> str | None:
        return self.branches.get(ref or self.default, {}).get(path)

    def list_files(self, ref: str | None = None) -> Sequence[str]:
        return sorted(self.branches.get(ref or self.default, {}))

    def commit_files(
        self, branch: str, files: Mapping[str, str], message: str, *, start_branch: str
    ) -> str:
        if branch in self.protected:
            raise ForgeConflictError(f"refusing to commit to {branch}: default or protected branch")
        self.writes.append(f"commit {branch}")
        self.branches[branch] = {**self.branches[start_branch], **files}
        return f"sha-{len(self.writes)}"

    def find_changes(self) -> Sequence[ChangeRequest]:
        return list(self.changes)

    def _put(self, change: ChangeRequest) -> ChangeRequest:
        self.changes = [c for c in self.changes if c.id != change.id] + [change]
        self.changes.sort(key=lambda c: c.id)
        return change

    def open_change(
        self,
        branch: str,
        title: str,
        description: str,
        labels: Sequence[str],
        reviewers: Sequence[str] = (),
    ) -> ChangeRequest:
        refuse_second_open({c.branch for c in self.changes if c.state == "opened"}, branch)
        self.writes.append(f"open {branch}")
        created = (self.clock or datetime.now(UTC)).isoformat()
        return self._put(
            opened_change(
                len(self.changes) + 1, branch, title, description, labels, created_at=created
            )
        )

    def update_change(
        self,
        change: ChangeRequest,
        *,
        title: str | None = None,
        description: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> ChangeRequest:
        self.writes.append(f"update {change.branch}")
        current = next(c for c in self.changes if c.id == change.id)
        edit = ChangeEdit.between(current, title=title, description=description, labels=labels)
        return self._put(edit.applied(current))

    def has_foreign_commits(self, change: ChangeRequest) -> bool:
        return next(c for c in self.changes if c.id == change.id).foreign_commits

    def close_change(self, change: ChangeRequest, comment: str) -> None:
        self.comment(change, comment)
        self.writes.append(f"close {change.branch}")
        current = next(c for c in self.changes if c.id == change.id)
        self._put(replace(current, state="closed", extra={**current.extra, "closed_by": "bot"}))

    def closed_by_bot(self, change: ChangeRequest) -> bool:
        current = next(c for c in self.changes if c.id == change.id)
        return current.extra.get("closed_by") == "bot"

    def delete_branch(self, branch: str) -> None:
        self.writes.append(f"delete {branch}")
        self.branches.pop(branch, None)

    def comment(self, change: ChangeRequest, body: str) -> None:
        self.writes.append(f"note {change.branch}")
        self.notes.append((change.id, body))

    # test helpers: what a person does in GitLab
    def human_close(self, change_id: int) -> None:
        current = next(c for c in self.changes if c.id == change_id)
        self._put(replace(current, state="closed", extra={**current.extra, "closed_by": "human"}))

    def human_push(self, change_id: int) -> None:
        self._put(replace(next(c for c in self.changes if c.id == change_id), foreign_commits=True))
