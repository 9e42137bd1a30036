"""The seam between locating a resource and writing its fix.

`FileOverlay` stacks the edits of several fixes on the files of one change set without touching
the repository; a `Target` knows how to write a fixer's edits into the overlay and how to
re-read the result for verification.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Protocol

from bot.errors import RepositoryError
from bot.model import FileChange, Location, TextDelta
from fixers.model import AnyEdit
from fixers.view import PodView


@lru_cache(maxsize=4096)
def safe_relpath(root: Path, relpath: str) -> Path:
    """Resolve ``relpath`` inside ``root``; refuse absolute paths and paths that escape it."""
    pure = PurePosixPath(relpath.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise RepositoryError(f"path {relpath!r} escapes the repository {root}; refusing it")
    resolved = (root / pure).resolve()
    root_resolved = root.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise RepositoryError(f"path {relpath!r} resolves outside the repository {root}")
    return resolved


def through_link(root: Path, relpath: str) -> bool:
    """Is ``relpath`` (or a directory on its way) a symlink in the checkout at ``root``?"""
    parts = PurePosixPath(relpath.replace("\\", "/")).parts
    return any(root.joinpath(*parts[: i + 1]).is_symlink() for i in range(len(parts)))


def real_relpath(root: Path, relpath: str) -> str:
    """The repository path ``relpath`` stands for once symlinks are followed: itself when no
    part of it is a link, else the target's path inside ``root``. A link leaving the
    repository, dangling, looping or reaching into ``.git`` is a `RepositoryError` saying so
    (the target is never read)."""
    pure = PurePosixPath(relpath.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise RepositoryError(f"path {relpath!r} escapes the repository {root}; refusing it")
    path = root.joinpath(*pure.parts)
    if not through_link(root, relpath):
        return pure.as_posix()
    root_real = root.resolve()
    target = os.path.realpath(path)  # lexical + links, never raises
    if target != str(root_real) and not target.startswith(str(root_real) + os.sep):
        raise RepositoryError(
            f"{relpath} is a symlink leading outside the repository; refusing to follow it"
        )
    try:
        resolved = path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        raise RepositoryError(f"{relpath} is a symlink loop; refusing it") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RepositoryError(f"{relpath} is a symlink loop; refusing it") from None
        raise RepositoryError(
            f"{relpath} is a dangling symlink (its target does not exist); refusing it"
        ) from None
    inside = resolved.relative_to(root_real)
    if ".git" in inside.parts or not resolved.is_file():
        raise RepositoryError(
            f"{relpath} is a symlink to {inside.as_posix()}, not a file of the repository; "
            "refusing it"
        )
    return inside.as_posix()


def links_under(root: Path, reldir: str) -> dict[str, str]:
    """Every symlink under ``reldir`` -> the repository file it stands for, for a reader that
    follows links (Helm does). The first link that leaves the repository, dangles, loops or
    is not a link to a file is a `RepositoryError`; nothing is read through a link."""
    if reldir and through_link(root, reldir):
        raise RepositoryError(f"{reldir} is a symlink or lies under one; refusing it")
    links: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root / reldir):  # never follows links
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath, name)
            if path.is_symlink():
                rel = path.relative_to(root).as_posix()
                links[rel] = real_relpath(root, rel)
    return links


def read_exact(path: Path) -> str:
    """A file's text with line ends as they are on disk (CRLF kept)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return fh.read()


@dataclass(slots=True)
class FileOverlay:
    """Pending file contents over a repository checkout (read-through, write-back-never).

    Texts adopted from a trial copy are kept as `TextDelta`s against the checkout's text: a
    plan holds an overlay per change set until its end, and most of a file's text is the
    same in each of them."""

    root: Path
    _after: dict[str, str | TextDelta] = field(default_factory=dict)
    _before: dict[str, str | None] = field(default_factory=dict)
    originals: dict[str, str | None] | None = field(default=None, repr=False)
    """The checkout's texts already read, shared by the overlays of one plan (its forks
    included): each file is read from disk once and held once, however many change sets
    touch it. None: this overlay reads for itself."""
    links: dict[str, bool] | None = field(default=None, repr=False)
    """Which paths lie through a symlink of the checkout (`through_link`), shared like
    ``originals`` (the checkout does not change while a plan reads it). None: asked each time."""

    def _through_link(self, relpath: str) -> bool:
        if self.links is None:
            return through_link(self.root, relpath)
        verdict = self.links.get(relpath)
        if verdict is None:
            verdict = self.links[relpath] = through_link(self.root, relpath)
        return verdict

    def read(self, relpath: str) -> str | None:
        """The file's current text (pending edits included); None when it does not exist. A
        symlink reads its target's pending edits (they are written at the target)."""
        if relpath in self._after:
            return self._pending(relpath)
        if self._after and self._through_link(relpath):
            try:
                real = real_relpath(self.root, relpath)
            except RepositoryError:
                real = relpath
            if real in self._after:
                return self._pending(real)
        return self.original(relpath)

    def _pending(self, relpath: str) -> str:
        text = self._after[relpath]
        return text if isinstance(text, str) else text.apply(self.original(relpath) or "")

    def original(self, relpath: str) -> str | None:
        # An overlay of a plan keeps no texts of its own: they are the plan's.
        known = self._before if self.originals is None else self.originals
        if relpath not in known:
            path = safe_relpath(self.root, relpath)
            # newline="" keeps CRLF line ends exactly as they are on disk.
            known[relpath] = read_exact(path) if path.is_file() else None
        return known[relpath]

    def write(self, relpath: str, text: str) -> None:
        safe_relpath(self.root, relpath)
        if self._through_link(relpath):
            raise RepositoryError(
                f"{relpath} is a symlink or lies under one; only real files are written"
            )
        self.original(relpath)
        self._after[relpath] = text

    def changes(self) -> tuple[FileChange, ...]:
        """The files whose content differs from the repository, sorted by path."""
        out = []
        for relpath in sorted(self._after):
            before = self.original(relpath)
            after = self._after[relpath]
            # a delta is never of the text it was made on (`adopt`)
            if isinstance(after, TextDelta) or after != before:
                out.append(FileChange(relpath, before, after))
        return tuple(out)

    def fork(self) -> FileOverlay:
        """A copy to try edits on; commit it back with `adopt` when they verify."""
        return FileOverlay(
            self.root, dict(self._after), dict(self._before), self.originals, self.links
        )

    def adopt(self, other: FileOverlay) -> None:
        """Take ``other``'s texts (a fork's, once its edits verify), each text that differs
        from the checkout's held as a delta against it."""
        self._before = dict(other._before)
        self._after = {}
        for relpath, text in other._after.items():
            before = self.original(relpath)
            if isinstance(text, str) and text != before:
                text = TextDelta.between(before or "", text)
            self._after[relpath] = text


class Target(Protocol):
    """A located resource: the view a fixer plans on, where it lives, how to write edits."""

    location: Location

    @property
    def view(self) -> PodView:
        """The view a fixer plans on, as the resource is in the repository."""
        ...

    def write(self, edits: Sequence[AnyEdit], overlay: FileOverlay) -> None:
        """Apply ``edits`` to the overlay (raises `RemedyError` subclasses on refusal)."""
        ...

    def reread(self, overlay: FileOverlay) -> PodView | str:
        """The view as it would be after the overlay's edits (a re-parse or a re-render), or a
        one-line reason why it cannot be produced (e.g. the chart no longer renders)."""
        ...
