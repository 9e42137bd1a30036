"""Local mode, the embedded default: branches and MR records in a local clone of cd-config.

Each change set becomes a branch with one commit, written with git plumbing through a private
index, so the working tree, the index and the current branch are left exactly as they were.
Merge-request records (title, description, state) live under ``.git/kube-remedy/records/``, one
JSON file per MR (writing one costs the same however many exist), and every description is also
written as Markdown under ``.git/kube-remedy/merge_requests/``, for a person to read.
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
from bot.forge.base import (
    ChangeEdit,
    ChangeRequest,
    check_repo_path,
    opened_change,
    refuse_second_open,
)

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
        self._cache: dict[int, dict[str, object]] | None = None
        self._cache_stamp: int | None = None
        self._open_branches: set[str] = set()
        """Branches with an open MR, and the highest MR id: kept with the records, so that
        recording one more MR costs the same with 3 or 3,000 recorded."""
        self._last_id = 0

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
            paths = sorted(files)
            blobs = self._hash_blobs(Path(tmp), [files[path] for path in paths])
            modes = self._modes(start_branch, paths)
            entries = "".join(
                f"{modes.get(path, '100644')} {blob}\t{path}\n"
                for path, blob in zip(paths, blobs, strict=True)
            )
            if entries:
                self._git("update-index", "--add", "--index-info", input=entries, env=env)
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

    def _hash_blobs(self, tmp: Path, contents: Sequence[str]) -> list[str]:
        """Blob ids of ``contents``, written into the object store by one git process."""
        if not contents:
            return []
        names = []
        for n, content in enumerate(contents):
            name = tmp / f"blob-{n}"
            # newline="" and utf-8: the blob holds exactly the text (CRLF kept), as --stdin did.
            with name.open("w", encoding="utf-8", newline="") as fh:
                fh.write(content)
            names.append(str(name))
        out = self._git(
            "hash-object", "-w", "--no-filters", "--stdin-paths", input="\n".join(names) + "\n"
        )
        blobs = (out or "").split()
        if len(blobs) != len(contents):
            raise ForgeError(f"git hash-object returned {len(blobs)} ids for {len(contents)} files")
        return blobs

    def _modes(self, ref: str, paths: Sequence[str]) -> dict[str, str]:
        """The file mode of each of ``paths`` that exists on ``ref`` (one ls-tree)."""
        if not paths:
            return {}
        out = self._git("ls-tree", "-z", ref, "--", *paths, check=False) or ""
        modes = {}
        for entry in out.split("\0"):
            meta, _, path = entry.partition("\t")
            if meta:
                modes[path] = meta.split()[0]
        return modes

    # ------------------------------------------------------------------ MR records

    def _record_dir(self) -> Path:
        # Apart from the descriptions: only a record write may change this directory's mtime.
        return self.state_dir / "records"

    def _records(self) -> dict[int, dict[str, object]]:
        """Every MR record by id: one JSON file per MR (``records/NNNN.json``), read
        once and kept for the forge's life; read again only when another writer changed the
        directory since. Records of the older single-file layout are read too."""
        folder = self._record_dir()
        try:
            stamp = folder.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if self._cache is not None and stamp == self._cache_stamp:
            return self._cache
        records: dict[int, dict[str, object]] = {}
        legacy = self.state_dir / "merge_requests.json"
        if legacy.is_file():
            for record in json.loads(legacy.read_text(encoding="utf-8")):
                records[int(record["id"])] = record
        if stamp is not None:
            for path in sorted(folder.glob("*.json")):
                record = json.loads(path.read_text(encoding="utf-8"))
                records[int(record["id"])] = record
        self._cache, self._cache_stamp = records, stamp
        self._open_branches = {str(r["branch"]) for r in records.values() if r["state"] == "opened"}
        self._last_id = max(records, default=0)
        return records

    def _save(self, record: dict[str, object]) -> None:
        records = self._records()
        folder = self._record_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{int(record['id']):04d}.json"  # type: ignore[call-overload]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)  # atomic: a crash leaves the old record, never half of one
        number = int(record["id"])  # type: ignore[call-overload]
        before = records.get(number)
        if before is not None and before["state"] == "opened":
            self._open_branches.discard(str(before["branch"]))
        if record["state"] == "opened":
            self._open_branches.add(str(record["branch"]))
        records[number] = record
        self._last_id = max(self._last_id, number)
        self._cache, self._cache_stamp = records, folder.stat().st_mtime_ns

    def description_path(self, change: ChangeRequest) -> Path:
        slug = change.branch.replace("/", "__")
        return self.state_dir / "merge_requests" / f"{change.id:04d}-{slug}.md"

    def _store(self, change: ChangeRequest) -> ChangeRequest:
        record = asdict(change)
        record["labels"] = list(change.labels)
        record["extra"] = dict(change.extra)
        self._save(record)
        path = self.description_path(change)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {change.title}\n\n{change.description}", encoding="utf-8")
        return change

    def find_changes(self) -> Sequence[ChangeRequest]:
        out = []
        records = self._records()
        for key in sorted(records):
            r = dict(records[key])
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
        self._records()  # read again if another writer recorded an MR since
        refuse_second_open(self._open_branches, branch)
        change = opened_change(
            self._last_id + 1,
            branch,
            title,
            description,
            labels,
            created_at=datetime.now(UTC).isoformat(),
            reviewers=",".join(reviewers),
        )
        head = self._git("rev-parse", branch) or ""
        return self._store(replace(change, web_url=f"local:{branch}", head_sha=head))

    def update_change(
        self,
        change: ChangeRequest,
        *,
        title: str | None = None,
        description: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> ChangeRequest:
        edit = ChangeEdit.between(change, title=title, description=description, labels=labels)
        head = self._git("rev-parse", change.branch, check=False) or change.head_sha
        return self._store(replace(edit.applied(change), head_sha=head))

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
