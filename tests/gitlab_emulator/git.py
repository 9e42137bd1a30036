"""A bare git repository driven through git plumbing: the emulator's only storage for files.

Every write the API accepts becomes a real commit, so ``git log`` in the repository shows exactly
what a client pushed. No work tree is kept. Objects and refs are read and written in-process with
dulwich (a git subprocess costs milliseconds); merges and rebases use the git CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dulwich.errors import NotTreeError
from dulwich.graph import can_fast_forward, find_merge_base
from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import S_ISGITLINK, Blob, ShaFile, Tag, Tree
from dulwich.objects import Commit as DCommit
from dulwich.repo import Repo
from dulwich.walk import ORDER_TOPO, Walker

_HEX40 = re.compile(r"[0-9a-f]{40}")


class GitError(RuntimeError):
    """A git command failed."""


class Symlink(bytes):
    """Content written as a symlink (tree mode 120000): the bytes are the link's target, which
    is also what GitLab's files API returns as the file's content."""


@dataclass(frozen=True)
class Commit:
    """One commit as read back from git."""

    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored_date: str
    committer_name: str
    committer_email: str
    committed_date: str
    message: str

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class Person:
    """Who authored or committed a commit."""

    name: str
    email: str


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    sha: str
    path: str


class GitRepo:
    """A bare repository at ``path`` with the few operations a GitLab emulator needs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._repo: Repo | None = None

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def init(self, default_branch: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._repo = Repo.init_bare(str(self.path))
        self._repo.refs.set_symbolic_ref(b"HEAD", f"refs/heads/{default_branch}".encode())

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
        git_dir = [] if cwd is not None else ["--git-dir", str(self.path)]
        proc = subprocess.run(
            ["git", "-c", "core.quotePath=false", *git_dir, *args],
            input=input,
            capture_output=True,
            env=full_env,
            cwd=cwd,
            check=False,
        )
        if check and proc.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode()

    @property
    def dulwich(self) -> Repo:
        if self._repo is None:
            self._repo = Repo(str(self.path))
        return self._repo

    def _obj(self, sha: str) -> ShaFile:
        return self.dulwich.object_store[sha.encode()]

    # -- refs -------------------------------------------------------------------------------

    def resolve(self, ref: str) -> str | None:
        """The commit ``ref`` (branch, tag or sha) names, or None."""
        if not ref or ref.startswith("-"):
            return None
        for name in (f"refs/heads/{ref}", f"refs/tags/{ref}"):
            sha = self._read_ref(name)
            if sha is not None:
                return self._peel(sha)
        if _HEX40.fullmatch(ref):
            return self._peel(ref)
        # short shas and revision expressions: let git parse them
        proc = self.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def _peel(self, sha: str) -> str | None:
        try:
            obj = self._obj(sha)
        except KeyError:
            return None
        while isinstance(obj, Tag):
            obj = self.dulwich.object_store[obj.object[1]]
        return obj.id.decode() if isinstance(obj, DCommit) else None

    def branches(self) -> dict[str, str]:
        found = self.dulwich.refs.as_dict(b"refs/heads")
        return {name.decode(): sha.decode() for name, sha in found.items()}

    def branch_sha(self, branch: str) -> str | None:
        return self._read_ref(f"refs/heads/{branch}")

    def _read_ref(self, name: str) -> str | None:
        try:
            return self.dulwich.refs[name.encode()].decode()
        except (KeyError, ValueError):
            return None

    def set_branch(self, branch: str, sha: str, old: str | None = None) -> None:
        name = f"refs/heads/{branch}".encode()
        if old is None:
            self.dulwich.refs[name] = sha.encode()
        elif not self.dulwich.refs.set_if_equals(name, old.encode(), sha.encode()):
            raise GitError(f"{branch} moved while it was being updated")

    def delete_branch(self, branch: str) -> None:
        self.dulwich.refs.remove_if_equals(f"refs/heads/{branch}".encode(), None)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return ancestor == descendant or bool(
            can_fast_forward(self.dulwich, ancestor.encode(), descendant.encode())
        )

    def merge_base(self, a: str, b: str) -> str | None:
        bases = find_merge_base(self.dulwich, [a.encode(), b.encode()])
        return bases[0].decode() if bases else None

    # -- reading ----------------------------------------------------------------------------

    def _entry(self, commit: str, path: str) -> tuple[int, str] | None:
        obj = self._obj(commit)
        assert isinstance(obj, DCommit)
        if not path.strip("/"):
            return stat.S_IFDIR, obj.tree.decode()
        try:
            mode, sha = tree_lookup_path(
                self.dulwich.object_store.__getitem__, obj.tree, path.strip("/").encode()
            )
        except (KeyError, NotTreeError):
            return None
        return mode, sha.decode()

    def blob_id(self, commit: str, path: str) -> str | None:
        entry = self._entry(commit, path)
        if entry is None or stat.S_ISDIR(entry[0]) or S_ISGITLINK(entry[0]):
            return None
        return entry[1]

    def read(self, commit: str, path: str) -> bytes | None:
        sha = self.blob_id(commit, path)
        if sha is None:
            return None
        blob = self._obj(sha)
        assert isinstance(blob, Blob)
        return blob.data

    def last_commit_for(self, commit: str, path: str) -> str:
        walker = Walker(
            self.dulwich.object_store, [commit.encode()], paths=[path.encode()], max_entries=1
        )
        return next((entry.commit.id.decode() for entry in walker), "")

    def tree(self, commit: str, path: str = "", *, recursive: bool = False) -> list[TreeEntry]:
        """Entries under ``path`` (a directory); with ``recursive`` also every sub-directory."""
        entry = self._entry(commit, path)
        if entry is None or not stat.S_ISDIR(entry[0]):
            return []
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: list[TreeEntry] = []

        def walk(tree_sha: str, prefix: str) -> None:
            tree = self._obj(tree_sha)
            assert isinstance(tree, Tree)
            for item in tree.iteritems():
                name = prefix + item.path.decode()
                kind = "tree" if stat.S_ISDIR(item.mode) else "blob"
                entries.append(TreeEntry(f"{item.mode:06o}", kind, item.sha.decode(), name))
                if recursive and kind == "tree":
                    walk(item.sha.decode(), name + "/")

        walk(entry[1], prefix)
        return entries

    def files(self, commit: str) -> list[str]:
        return [e.path for e in self.tree(commit, recursive=True) if e.type == "blob"]

    def log(self, ref: str, *, exclude: str | None = None, path: str | None = None) -> list[Commit]:
        """Commits reachable from ``ref`` (a commit id) and not from ``exclude``, newest first."""
        walker = Walker(
            self.dulwich.object_store,
            [ref.encode()],
            exclude=[exclude.encode()] if exclude else None,
            paths=[path.encode()] if path else None,
            order=ORDER_TOPO,
        )
        return [_convert(entry.commit) for entry in walker]

    def commit(self, sha: str) -> Commit | None:
        resolved = self._peel(sha) if _HEX40.fullmatch(sha) else self.resolve(sha)
        if resolved is None:
            return None
        obj = self._obj(resolved)
        assert isinstance(obj, DCommit)
        return _convert(obj)

    def diff(self, base: str, head: str) -> list[dict[str, object]]:
        """GitLab-shaped diffs between two commits."""
        raw = self.out("diff", "--raw", "-z", "-M", "--no-abbrev", base, head).split("\0")
        diffs: list[dict[str, object]] = []
        i = 0
        while i < len(raw) - 1:
            meta = raw[i].lstrip(":").split()
            status = meta[4]
            old_path = raw[i + 1]
            new_path = old_path
            i += 2
            if status.startswith(("R", "C")):
                new_path = raw[i]
                i += 1
            patch = self.out("diff", "--no-color", base, head, "--", old_path, new_path)
            body = patch.split("\n@@", 1)
            diffs.append(
                {
                    "old_path": old_path,
                    "new_path": new_path,
                    "a_mode": meta[0],
                    "b_mode": meta[1],
                    "new_file": status == "A",
                    "renamed_file": status.startswith("R"),
                    "deleted_file": status == "D",
                    "diff": "@@" + body[1] if len(body) == 2 else "",
                }
            )
        return diffs

    # -- writing ----------------------------------------------------------------------------

    def write_commit(
        self,
        parent: str | None,
        changes: Mapping[str, bytes | None],
        message: str,
        *,
        author: Person,
        committer: Person,
    ) -> str:
        """A new commit on top of ``parent`` writing (bytes) or deleting (None) ``changes``."""
        store = self.dulwich.object_store
        if parent:
            base = self._obj(parent)
            assert isinstance(base, DCommit)
            root: bytes | Tree = base.tree
        else:
            root = Tree()
        tree_changes: list[tuple[bytes, int | None, bytes | None]] = []
        for path, content in changes.items():
            if content is None:
                tree_changes.append((path.encode(), None, None))
            else:
                blob = Blob.from_string(bytes(content))
                store.add_object(blob)
                tree_changes.append((path.encode(), self._mode_for(parent, path, content), blob.id))
        commit = DCommit()
        commit.tree = commit_tree_changes(store, root, tree_changes)
        commit.parents = [parent.encode()] if parent else []
        commit.author = f"{author.name} <{author.email}>".encode()
        commit.committer = f"{committer.name} <{committer.email}>".encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.rstrip("\n").encode() + b"\n"
        store.add_object(commit)
        return commit.id.decode()

    def _mode_for(self, parent: str | None, path: str, content: bytes) -> int:
        """A `Symlink` is a link; an update keeps the entry's mode (as Gitaly's update action
        does: a link updated through the API stays a link holding the new text)."""
        if isinstance(content, Symlink):
            return 0o120000
        entry = self._entry(parent, path) if parent else None
        if entry is not None and entry[0] in (0o100755, 0o120000):
            return entry[0]
        return 0o100644

    def has_conflicts(self, target: str, source: str) -> bool:
        proc = self.run("merge-tree", "--write-tree", "--name-only", target, source, check=False)
        if proc.returncode not in (0, 1):
            raise GitError(f"git merge-tree: {proc.stderr.decode(errors='replace').strip()}")
        return proc.returncode == 1

    def merge(self, target: str, source: str, message: str, *, committer: Person) -> str | None:
        """A merge commit of ``source`` into ``target``; None on conflicts."""
        proc = self.run("merge-tree", "--write-tree", target, source, check=False)
        if proc.returncode != 0:
            return None
        tree = proc.stdout.decode().split("\n", 1)[0].strip()
        return (
            self.run(
                "commit-tree",
                tree,
                "-p",
                target,
                "-p",
                source,
                input=message.encode(),
                env=_identity(committer, committer),
            )
            .stdout.decode()
            .strip()
        )

    def rebase(self, head: str, onto: str, *, committer: Person) -> str | None:
        """Replay ``head``'s commits not in ``onto`` on top of it; None on conflicts."""
        tmp = Path(tempfile.mkdtemp(prefix="rebase-", dir=self.path))
        try:
            self.run("worktree", "add", "-q", "--detach", str(tmp), head)
            env = {
                "GIT_COMMITTER_NAME": committer.name,
                "GIT_COMMITTER_EMAIL": committer.email,
            }
            proc = self.run("rebase", "-q", onto, cwd=tmp, env=env, check=False)
            if proc.returncode != 0:
                self.run("rebase", "--abort", cwd=tmp, check=False)
                return None
            return self.run("rev-parse", "HEAD", cwd=tmp).stdout.decode().strip()
        finally:
            self.run("worktree", "remove", "--force", str(tmp), check=False)
            shutil.rmtree(tmp, ignore_errors=True)
            self.run("worktree", "prune", check=False)


def _convert(c: DCommit) -> Commit:
    def split(who: bytes) -> tuple[str, str]:
        match = re.fullmatch(r"(.*?) ?<(.*)>", who.decode(errors="replace"))
        return (match.group(1), match.group(2)) if match else (who.decode(errors="replace"), "")

    def iso(seconds: int, offset: int) -> str:
        return datetime.fromtimestamp(seconds, timezone(timedelta(seconds=offset))).isoformat()

    an, ae = split(c.author)
    cn, ce = split(c.committer)
    return Commit(
        c.id.decode(),
        tuple(p.decode() for p in c.parents),
        an,
        ae,
        iso(c.author_time, c.author_timezone),
        cn,
        ce,
        iso(c.commit_time, c.commit_timezone),
        c.message.decode(errors="replace").rstrip("\n"),
    )


def _identity(author: Person, committer: Person) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_COMMITTER_NAME": committer.name,
        "GIT_COMMITTER_EMAIL": committer.email,
    }
