"""Who reviews a change set: GitLab CODEOWNERS, falling back to ``.remedy.yaml`` ``teams``.

GitLab's rules (docs: "CODEOWNERS syntax"): entries are grouped in sections (``[Name]``,
optional ``^[Name]``, ``[Name][2]`` approval counts, ``[Name] @default`` owners); entries before
the first section form an unnamed section; within a section the last matching entry wins and
every section contributes its owners. Patterns are matched like Ruby's ``File.fnmatch`` with
``FNM_PATHNAME | FNM_DOTMATCH`` after GitLab's normalisation: a pattern not starting with ``/``
matches at any depth, a trailing ``/`` means everything under that directory.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from bot.errors import ConfigError
from bot.model import ChangeSet

MAX_CODEOWNERS_BYTES = 1024 * 1024
"""Larger CODEOWNERS files are refused (one line, exit 2): no real one comes near it."""
LOCATIONS = ("CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS")
"""Where GitLab looks, in its order; the first file found is used."""

_SECTION = re.compile(
    r"^(?P<optional>\^)?\[(?P<name>[^\]]+)\](?:\[(?P<approvals>\d+)\])?(?P<rest>.*)$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Entry:
    pattern: str
    owners: tuple[str, ...]


@dataclass
class Section:
    name: str
    optional: bool = False
    approvals: int = 1
    default_owners: tuple[str, ...] = ()
    entries: list[Entry] = field(default_factory=list)


@dataclass(frozen=True)
class CodeOwners:
    """A parsed CODEOWNERS file."""

    sections: tuple[Section, ...]

    def owners_of(self, path: str) -> list[str]:
        """Owners of one repository path (``@`` stripped; groups as group paths; emails kept)."""
        owners: list[str] = []
        for section in self.sections:
            match = next((e for e in reversed(section.entries) if matches(e.pattern, path)), None)
            if match is not None:
                owners.extend(match.owners or section.default_owners)
        return list(dict.fromkeys(owners))

    def owners_for(self, paths: Iterable[str]) -> list[str]:
        """Owners of any of ``paths``, in first-seen order, without duplicates."""
        return list(dict.fromkeys(o for p in paths for o in self.owners_of(p)))


def _split(line: str) -> list[str]:
    """Whitespace-separated tokens; ``\\ `` and ``\\#`` are literal."""
    tokens, current, i = [], "", 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            current += line[i + 1]
            i += 2
            continue
        if ch.isspace():
            if current:
                tokens.append(current)
            current = ""
        else:
            current += ch
        i += 1
    if current:
        tokens.append(current)
    return tokens


def _owners(tokens: Sequence[str]) -> tuple[str, ...]:
    out = []
    for token in tokens:
        if token.startswith("@@"):
            continue  # roles (@@maintainer) cannot be requested as reviewers
        if token.startswith("@") and len(token) > 1:
            out.append(token[1:])
        elif _EMAIL.match(token):
            out.append(token)
    return tuple(out)


def parse_codeowners(text: str) -> CodeOwners:
    """Parse CODEOWNERS text; lines that are neither sections nor entries are skipped."""
    sections: dict[str, Section] = {"": Section("")}
    current = sections[""]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _SECTION.match(line)
        if header:
            name = header.group("name").strip()
            key = name.lower()  # section names are case-insensitive; duplicates are combined
            current = sections.setdefault(key, Section(name))
            current.optional = bool(header.group("optional"))
            if header.group("approvals"):
                current.approvals = int(header.group("approvals"))
            defaults = _owners(_split(header.group("rest")))
            if defaults:
                current.default_owners = defaults
            continue
        tokens = _split(raw.strip())
        if not tokens:
            continue
        current.entries.append(Entry(tokens[0], _owners(tokens[1:])))
    return CodeOwners(tuple(s for s in sections.values() if s.entries))


def _normalise(pattern: str) -> list[str]:
    if pattern == "*":
        return ["/**/*"]
    if not pattern.startswith("/"):
        pattern = "/**/" + pattern
    if pattern.endswith("/"):
        return [pattern + "**/*"]
    if any(ch in pattern.rsplit("/", 1)[-1] for ch in "*?["):
        return [pattern]
    # gitignore-like: a plain name may be a directory, which covers what is inside it
    return [pattern, pattern + "/**/*"]


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    """``File.fnmatch`` with FNM_PATHNAME|FNM_DOTMATCH: ``*`` stays within one directory,
    ``**/`` spans zero or more directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:[^/]*/)*"
            i += 3
        elif pattern.startswith("**", i):
            out += "[^/]*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape("[")
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def matches(pattern: str, path: str) -> bool:
    """Does a CODEOWNERS ``pattern`` match the repository ``path``?"""
    target = "/" + path.lstrip("/")
    return any(_regex(p).match(target) for p in _normalise(pattern))


def team_owners(teams: Mapping[str, Sequence[str]], paths: Iterable[str]) -> list[str]:
    """Owners from ``.remedy.yaml`` ``teams`` (path glob -> usernames)."""
    out: list[str] = []
    for path in paths:
        for glob, users in teams.items():
            if matches(glob, path) or fnmatch.fnmatchcase(path, glob):
                out.extend(u.lstrip("@") for u in users)
    return list(dict.fromkeys(out))


def reviewers_for(
    codeowners: CodeOwners | None,
    teams: Mapping[str, Sequence[str]],
    *,
    exclude: Iterable[str] = (),
) -> Callable[[ChangeSet], list[str]]:
    """A change set's reviewers: CODEOWNERS owners of its files, else the matching teams."""
    skip = {e.lower() for e in exclude}

    def reviewers(change_set: ChangeSet) -> list[str]:
        paths = [c.path for c in change_set.files]
        owners = codeowners.owners_for(paths) if codeowners else []
        if not owners:
            owners = team_owners(teams, paths)
        return [o for o in owners if o.lower() not in skip]

    return reviewers


def load_codeowners(read: Callable[[str], str | None]) -> CodeOwners | None:
    """The first CODEOWNERS file GitLab would use, read through ``read(path)``."""
    for location in LOCATIONS:
        text = read(location)
        if text is not None:
            if len(text) > MAX_CODEOWNERS_BYTES:
                raise ConfigError(
                    f"{location}: {len(text) / 1048576:.1f} MB, over the limit of "
                    f"{MAX_CODEOWNERS_BYTES // 1048576} MB for a CODEOWNERS file; refusing it"
                )
            return parse_codeowners(text)
    return None
