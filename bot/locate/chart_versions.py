"""Chart versions and the version constraints Helm, Flux and Argo CD accept.

All three read constraints with Masterminds semver v3, so this follows its rules:

- ``||`` separates alternatives; inside one, comparators separated by commas or spaces must all
  hold. ``1.2 - 1.4.5`` is ``>=1.2 <=1.4.5``.
- Operators ``=`` (or none), ``!=``, ``>``, ``<``, ``>=`` (``=>``), ``<=`` (``=<``), ``~``
  (``~>``), ``^``. A missing or ``x``/``X``/``*`` part is a wildcard: ``1.2`` and ``1.2.x`` are
  ``>=1.2.0 <1.3.0``; ``*`` and the empty constraint are any release.
- ``~1.2.3`` is ``>=1.2.3 <1.3.0``, ``~1`` is ``>=1 <2``; ``^1.2.3`` is ``>=1.2.3 <2.0.0``,
  ``^0.2.3`` is ``>=0.2.3 <0.3.0``, ``^0.0.3`` is ``>=0.0.3 <0.0.4``.
- Pre-release versions (``1.2.0-rc.1``) only satisfy a comparator whose own version has a
  pre-release: ``>=1.0.0-alpha`` admits ``1.5.0-beta``, ``>=1.0.0`` does not.

Versions are read leniently, as Masterminds does: a ``v`` prefix and missing minor or patch
are accepted; build metadata never counts in comparisons.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(
    r"^v?(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_PART = r"(?:\d+|[xX*])"
_COMPARATOR = re.compile(
    rf"^(?P<op>!=|>=|=>|<=|=<|~>|[=<>~^])?\s*v?(?P<major>{_PART})(?:\.(?P<minor>{_PART}))?"
    rf"(?:\.(?P<patch>{_PART}))?(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_HYPHEN = re.compile(r"(\S+)\s+-\s+(\S+)")
_OP_SPACE = re.compile(r"(!=|>=|=>|<=|=<|~>|[=<>~^])\s+")
MAX_CONSTRAINT_LENGTH = 512


class ConstraintError(ValueError):
    """A version constraint that is not Helm/Masterminds syntax."""


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version (build metadata dropped: it never orders)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The version ``text`` names, or None when it is not one."""
        found = _VERSION.match(text.strip())
        if found is None:
            return None
        pre = found["pre"]
        return cls(
            int(found["major"]),
            int(found["minor"] or 0),
            int(found["patch"] or 0),
            _identifiers(pre) if pre else (),
        )

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers before alphanumeric.
        return (
            self.major,
            self.minor,
            self.patch,
            0 if self.prerelease else 1,
            tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease),
        )

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __str__(self) -> str:
        pre = "-" + ".".join(str(p) for p in self.prerelease) if self.prerelease else ""
        return f"{self.major}.{self.minor}.{self.patch}{pre}"


def _identifiers(pre: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in pre.split("."))


@dataclass(frozen=True)
class _Comparator:
    op: str
    version: Version
    wildcard: int
    """How many trailing parts are wildcards: 0 none, 1 patch, 2 minor and patch, 3 all."""

    def admits(self, v: Version) -> bool:
        # Masterminds: `!=` with no wildcard is the one comparator blind to pre-releases.
        blind = self.op == "!=" and not self.wildcard
        if v.prerelease and not self.version.prerelease and not blind:
            return False
        return _CHECKS[self.op](self, v)

    def _upper(self) -> Version:
        """The first version past the wildcard range (``1.2.x`` -> ``1.3.0``)."""
        c = self.version
        if self.wildcard >= 3:
            return Version(1 << 62, 0, 0)
        if self.wildcard == 2:
            return Version(c.major + 1, 0, 0)
        return Version(c.major, c.minor + 1, 0)

    def _in_range(self, v: Version) -> bool:
        return self.version <= v < self._upper()


def _equal(c: _Comparator, v: Version) -> bool:
    return c._in_range(v) if c.wildcard else v == c.version


def _greater(c: _Comparator, v: Version) -> bool:
    return v >= c._upper() if c.wildcard else v > c.version


def _less_equal(c: _Comparator, v: Version) -> bool:
    return v < c._upper() if c.wildcard else v <= c.version


def _tilde(c: _Comparator, v: Version) -> bool:
    base = c.version
    if v < base:
        return False
    if (base.major, base.minor, base.patch) == (0, 0, 0) and c.wildcard < 2:
        return True  # ~0.0.0 is >=0.0.0
    if v.major != base.major:
        return False
    return c.wildcard >= 2 or v.minor == base.minor


def _caret(c: _Comparator, v: Version) -> bool:
    base = c.version
    if v < base:
        return False
    if base.major > 0 or c.wildcard >= 2:
        return v.major == base.major
    if base.minor > 0 or c.wildcard == 1:
        return v.major == 0 and v.minor == base.minor
    return (v.major, v.minor, v.patch) == (0, 0, base.patch)


_CHECKS: dict[str, Callable[[_Comparator, Version], bool]] = {
    "=": _equal,
    "!=": lambda c, v: not _equal(c, v),
    ">": _greater,
    "<": lambda c, v: v < c.version,
    ">=": lambda c, v: v >= c.version,
    "<=": _less_equal,
    "~": _tilde,
    "^": _caret,
}
_ALIASES = {"": "=", "=>": ">=", "=<": "<=", "~>": "~"}


def _comparator(text: str) -> _Comparator:
    found = _COMPARATOR.match(text)
    if found is None:
        raise ConstraintError(f"{text!r} is not a version comparator")
    op = _ALIASES.get(found["op"] or "", found["op"] or "=")
    parts = [found["major"], found["minor"], found["patch"]]
    wild = next((i for i, p in enumerate(parts) if p is None or p in ("x", "X", "*")), 3)
    numbers = [int(p) if i < wild and p is not None else 0 for i, p in enumerate(parts)]
    pre = _identifiers(found["pre"]) if found["pre"] else ()
    return _Comparator(op, Version(numbers[0], numbers[1], numbers[2], pre), 3 - wild)


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: alternatives, each a set of comparators that must all hold."""

    text: str
    alternatives: tuple[tuple[_Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse ``text``; `ConstraintError` when it is not Helm/Masterminds syntax."""
        if len(text) > MAX_CONSTRAINT_LENGTH:
            raise ConstraintError(f"version constraint of {len(text)} characters")
        alternatives = []
        for alternative in text.split("||"):
            rewritten = _HYPHEN.sub(r">=\1 <=\2", alternative.strip())
            rewritten = _OP_SPACE.sub(r"\1", rewritten)
            words = [w for w in re.split(r"[\s,]+", rewritten) if w]
            alternatives.append(tuple(_comparator(w) for w in words or ["*"]))
        return cls(text, tuple(alternatives))

    def admits(self, version: Version) -> bool:
        """Whether ``version`` satisfies the constraint."""
        return any(all(c.admits(version) for c in alt) for alt in self.alternatives)


def pick(constraint: str, versions: Iterable[str]) -> str | None:
    """The version of ``versions`` Helm picks for ``constraint``: one written exactly as
    asked, else the highest that satisfies it (None when none does). Unparsable versions are
    ignored; an unparsable constraint is a `ConstraintError`."""
    listed = list(versions)
    wanted = constraint.strip()
    exact = [v for v in listed if v == wanted or v.lstrip("v") == wanted.lstrip("v")]
    if wanted and exact:
        return exact[0]
    parsed = Constraint.parse(wanted)
    best: tuple[Version, str] | None = None
    for text in listed:
        version = Version.parse(text)
        admitted = version is not None and parsed.admits(version)
        if admitted and version is not None and (best is None or version > best[0]):
            best = (version, text)
    return best[1] if best else None
