"""A bare git repository driven through git plumbing: the emulator's only storage for files.

Every write the API accepts becomes a real commit, so ``git log`` in the repository shows exactly
what a client pushed. No work tree is kept: commits are built in a throw-away index file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_FIELDS = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
_ZERO = "0" * 40


class GitError(RuntimeError):
    """A git command failed."""


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

    def init(self, default_branch: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.run("init", "--bare", "-q", f"--initial-branch={default_branch}")

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

    # -- refs -------------------------------------------------------------------------------

    def resolve(self, ref: str) -> str | None:
        """The commit ``ref`` (branch, tag or sha) names, or None."""
        if not ref or ref.startswith("-"):
            return None
        for candidate in (f"refs/heads/{ref}", ref):
            proc = self.run("rev-parse", "--verify", "-q", f"{candidate}^{{commit}}", check=False)
            if proc.returncode == 0:
                return proc.stdout.decode().strip()
        return None

    def branches(self) -> dict[str, str]:
        text = self.out("for-each-ref", "--format=%(refname:strip=2)%00%(objectname)", "refs/heads")
        pairs = (line.split("\0") for line in text.splitlines() if line)
        return {name: sha for name, sha in pairs}

    def branch_sha(self, branch: str) -> str | None:
        proc = self.run("rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def set_branch(self, branch: str, sha: str, old: str | None = None) -> None:
        args = ["update-ref", f"refs/heads/{branch}", sha]
        if old is not None:
            args.append(old)
        self.run(*args)

    def delete_branch(self, branch: str) -> None:
        self.run("update-ref", "-d", f"refs/heads/{branch}")

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        proc = self.run("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        return proc.returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        proc = self.run("merge-base", a, b, check=False)
        return proc.stdout.decode().strip() or None

    # -- reading ----------------------------------------------------------------------------

    def blob_id(self, commit: str, path: str) -> str | None:
        proc = self.run("ls-tree", "-z", commit, "--", path, check=False)
        for record in proc.stdout.decode().split("\0"):
            if not record:
                continue
            meta, name = record.split("\t", 1)
            _mode, kind, sha = meta.split()
            if kind == "blob" and name == path:
                return sha
        return None

    def read(self, commit: str, path: str) -> bytes | None:
        sha = self.blob_id(commit, path)
        return None if sha is None else self.run("cat-file", "blob", sha).stdout

    def last_commit_for(self, commit: str, path: str) -> str:
        return self.out("log", "-1", "--format=%H", commit, "--", path).strip()

    def tree(self, commit: str, path: str = "", *, recursive: bool = False) -> list[TreeEntry]:
        """Entries under ``path`` (a directory); with ``recursive`` also every sub-directory."""
        args = ["ls-tree", "-z"]
        if recursive:
            args += ["-r", "-t"]
        target = f"{commit}:{path.strip('/')}" if path.strip("/") else commit
        proc = self.run(*args, target, check=False)
        if proc.returncode != 0:
            return []
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries = []
        for record in proc.stdout.decode().split("\0"):
            if not record:
                continue
            meta, name = record.split("\t", 1)
            mode, kind, sha = meta.split()
            entries.append(TreeEntry(mode, kind, sha, prefix + name))
        return entries

    def files(self, commit: str) -> list[str]:
        return [e.path for e in self.tree(commit, recursive=True) if e.type == "blob"]

    def log(self, ref: str, *, exclude: str | None = None, path: str | None = None) -> list[Commit]:
        args = ["log", f"--format={_FIELDS}%x1e", ref]
        if exclude:
            args.append(f"^{exclude}")
        if path:
            args += ["--", path]
        return self._parse(self.out(*args))

    def commit(self, sha: str) -> Commit | None:
        proc = self.run("log", "-1", f"--format={_FIELDS}%x1e", f"{sha}^{{commit}}", check=False)
        parsed = self._parse(proc.stdout.decode()) if proc.returncode == 0 else []
        return parsed[0] if parsed else None

    @staticmethod
    def _parse(text: str) -> list[Commit]:
        commits = []
        for record in text.split("\x1e"):
            record = record.lstrip("\n")
            if not record:
                continue
            sha, parents, an, ae, ad, cn, ce, cd, message = record.split("\0", 8)
            commits.append(
                Commit(sha, tuple(parents.split()), an, ae, ad, cn, ce, cd, message.rstrip("\n"))
            )
        return commits

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
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self.run("read-tree", parent, env=env)
            lines = []
            for path, content in changes.items():
                if content is None:
                    lines.append(f"0 {_ZERO}\t{path}")
                else:
                    sha = self.run("hash-object", "-w", "--stdin", input=content).stdout
                    lines.append(f"100644 {sha.decode().strip()}\t{path}")
            self.run(
                "update-index", "--index-info", input="\n".join(lines).encode() + b"\n", env=env
            )
            tree = self.run("write-tree", env=env).stdout.decode().strip()
        parents = ["-p", parent] if parent else []
        return (
            self.run(
                "commit-tree",
                tree,
                *parents,
                input=message.encode(),
                env=_identity(author, committer),
            )
            .stdout.decode()
            .strip()
        )

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


def _identity(author: Person, committer: Person) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_COMMITTER_NAME": committer.name,
        "GIT_COMMITTER_EMAIL": committer.email,
    }
