"""Local mode, the embedded default: branches and MR records in a local clone of cd-config.

Each change set becomes a branch with one commit, written with git plumbing through a private
index, so the working tree, the index and the current branch are left exactly as they were.
Merge-request records (title, description, state) live under ``.git/kube-remedy/`` and every
description is also written as Markdown next to them, for a person to read.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from bot.errors import ForgeConflictError, ForgeError, RepositoryError
from bot.forge.base import ChangeRequest, check_repo_path

BOT_NAME = "kube-remedy"
BOT_EMAIL = "kube-remedy@localhost"


class LocalForge:
    """A Forge over a local git repository (no GitLab, no network)."""

    def __init__(self, repo: Path, *, protected: Sequence[str] = ()) -> None:
        self.repo = repo.resolve()
        top = self._git("rev-parse", "--show-toplevel", check=False)
        if top is None or Path(top).resolve() != self.repo:
            raise RepositoryError(
                f"{repo} is not the top of a git repository; local mode needs a clone of cd-config"
            )
        self.state_dir = Path(self._git("rev-parse", "--git-dir") or ".git")
        if not self.state_dir.is_absolute():
            self.state_dir = self.repo / self.state_dir
        self.state_dir = self.state_dir / "kube-remedy"
        self.protected = set(protected)

    # ------------------------------------------------------------------ git plumbing

    def _git(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str | None:
        proc = subprocess.run(
            ["git", "-C", str(self.repo), *args],
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        if proc.returncode != 0:
            if not check:
                return None
            raise ForgeError(f"git {args[0]} failed in {self.repo}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def default_branch(self) -> str:
        """The branch checked out in the clone (what merge requests target)."""
        head = self._git("symbolic-ref", "--short", "-q", "HEAD", check=False)
        if head:
            return head
        for candidate in ("main", "master"):
            if self._git("rev-parse", "--verify", "-q", f"refs/heads/{candidate}", check=False):
                return candidate
        raise RepositoryError(f"{self.repo}: detached HEAD and no main/master branch")

    def read_file(self, path: str, ref: str | None = None) -> str | None:
        ref = ref or self.default_branch()
        proc = subprocess.run(
            ["git", "-C", str(self.repo), "show", f"{ref}:{path}"], capture_output=True
        )
        return proc.stdout.decode("utf-8") if proc.returncode == 0 else None

    def list_files(self, ref: str | None = None) -> Sequence[str]:
        out = self._git("ls-tree", "-r", "--name-only", ref or self.default_branch()) or ""
        return [line for line in out.splitlines() if line]

    def commit_files(
        self, branch: str, files: Mapping[str, str], message: str, *, start_branch: str
    ) -> str:
        if branch == self.default_branch() or branch in self.protected:
            raise ForgeConflictError(f"refusing to commit to {branch}: default or protected branch")
        parent = self._git("rev-parse", "--verify", f"{start_branch}^{{commit}}")
        assert parent is not None
        self._refuse_links(start_branch, files)
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "GIT_INDEX_FILE": str(Path(tmp) / "index"),
                "GIT_AUTHOR_NAME": BOT_NAME,
                "GIT_AUTHOR_EMAIL": BOT_EMAIL,
                "GIT_COMMITTER_NAME": BOT_NAME,
                "GIT_COMMITTER_EMAIL": BOT_EMAIL,
            }
            self._git("read-tree", parent, env=env)
            for path, content in sorted(files.items()):
                blob = self._git("hash-object", "-w", "--stdin", "--no-filters", input=content)
                assert blob is not None
                mode = self._mode(start_branch, path)
                self._git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            tree = self._git("write-tree", env=env)
            assert tree is not None
            commit = self._git("commit-tree", tree, "-p", parent, "-m", message, env=env)
            assert commit is not None
        self._git("update-ref", f"refs/heads/{branch}", commit)
        return commit

    def _refuse_links(self, ref: str, files: Mapping[str, str]) -> None:
        """Refuse a path that is not a plain repository path, or that is (or lies under) a
        symlink on ``ref``: writing there would replace the link's target text, never the file
        it points at."""
        out = self._git("ls-tree", "-r", "-z", ref) or ""
        links = {
            entry.partition("\t")[2] for entry in out.split("\0") if entry.startswith("120000 ")
        }
        for path in files:
            check_repo_path(path)
            parts = path.split("/")
            for i in range(len(parts)):
                prefix = "/".join(parts[: i + 1])
                if prefix in links:
                    raise RepositoryError(
                        f"{prefix} is a symlink on {ref}; refusing to write through it"
                    )

    def _mode(self, ref: str, path: str) -> str:
        out = self._git("ls-tree", ref, "--", path, check=False) or ""
        return out.split()[0] if out else "100644"

    # ------------------------------------------------------------------ MR records

    def _records(self) -> list[dict[str, object]]:
        path = self.state_dir / "merge_requests.json"
        if not path.is_file():
            return []
        return list(json.loads(path.read_text(encoding="utf-8")))

    def _save(self, records: list[dict[str, object]]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "merge_requests.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)  # atomic: a crash leaves the old file, never half of one

    def description_path(self, change: ChangeRequest) -> Path:
        slug = change.branch.replace("/", "__")
        return self.state_dir / "merge_requests" / f"{change.id:04d}-{slug}.md"

    def _store(self, change: ChangeRequest) -> ChangeRequest:
        records = [r for r in self._records() if r["id"] != change.id]
        record = asdict(change)
        record["labels"] = list(change.labels)
        record["extra"] = dict(change.extra)
        records.append(record)
        self._save(sorted(records, key=lambda r: int(str(r["id"]))))
        path = self.description_path(change)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {change.title}\n\n{change.description}", encoding="utf-8")
        return change

    def find_changes(self) -> Sequence[ChangeRequest]:
        out = []
        for r in self._records():
            r = dict(r)
            r["labels"] = tuple(r.get("labels", ()))  # type: ignore[arg-type]
            out.append(ChangeRequest(**r))  # type: ignore[arg-type]
        return out

    def open_change(
        self,
        branch: str,
        title: str,
        description: str,
        labels: Sequence[str],
        reviewers: Sequence[str] = (),
    ) -> ChangeRequest:
        if any(c.branch == branch and c.state == "opened" for c in self.find_changes()):
            raise ForgeConflictError(f"an open change request already exists for {branch}")
        next_id = max((c.id for c in self.find_changes()), default=0) + 1
        now = datetime.now(UTC).isoformat()
        change = ChangeRequest(
            id=next_id,
            branch=branch,
            title=title,
            description=description,
            state="opened",
            labels=tuple(labels),
            web_url=f"local:{branch}",
            head_sha=self._git("rev-parse", branch) or "",
            extra={"created_at": now, "reviewers": ",".join(reviewers)},
        )
        return self._store(change)

    def update_change(
        self,
        change: ChangeRequest,
        *,
        title: str | None = None,
        description: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> ChangeRequest:
        updated = replace(
            change,
            title=title if title is not None else change.title,
            description=description if description is not None else change.description,
            labels=tuple(labels) if labels is not None else change.labels,
            head_sha=self._git("rev-parse", change.branch, check=False) or change.head_sha,
        )
        return self._store(updated)

    def has_foreign_commits(self, change: ChangeRequest) -> bool:
        base = self.default_branch()
        authors = self._git("log", "--format=%ae", f"{base}..{change.branch}", check=False) or ""
        return any(line and line != BOT_EMAIL for line in authors.splitlines())

    def close_change(self, change: ChangeRequest, comment: str) -> None:
        self.comment(change, comment)
        self._store(replace(change, state="closed", extra={**change.extra, "closed_by": "bot"}))

    def closed_by_bot(self, change: ChangeRequest) -> bool:
        """Local mode: the bot's own closes are recorded; any other close is a person's."""
        return bool(change.extra) and change.extra.get("closed_by") == "bot"

    def comment(self, change: ChangeRequest, body: str) -> None:
        notes = self.state_dir / "notes.jsonl"
        notes.parent.mkdir(parents=True, exist_ok=True)
        with notes.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"change": change.id, "body": body}) + "\n")
