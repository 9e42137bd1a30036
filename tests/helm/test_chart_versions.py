"""Version constraints as Helm, Flux and Argo CD read them (Masterminds semver v3 rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.locate.chart_versions import Constraint, ConstraintError, Version, pick


def admits(constraint: str, version: str) -> bool:
    parsed = Version.parse(version)
    assert parsed is not None, version
    return Constraint.parse(constraint).admits(parsed)


@pytest.mark.parametrize(
    ("constraint", "inside", "outside"),
    [
        ("", ["0.0.1", "6.14.1"], ["7.0.0-rc.1"]),
        ("*", ["1.0.0", "99.1.2"], ["1.0.0-alpha"]),
        (">=1.0.0", ["1.0.0", "6.14.1"], ["0.9.9", "1.0.1-rc.1"]),
        (">=1.0.0-alpha", ["1.0.0-alpha", "1.0.0-beta.2", "6.14.1", "7.0.0-rc.1"], ["0.9.0"]),
        (">= 1.8.0-rc.0", ["1.8.0-rc.0", "1.8.0", "1.9.0-rc.1"], ["1.7.9"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        ("~1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.9.9"], ["2.0.0", "0.9.0"]),
        ("~>2.4", ["2.4.1"], ["2.5.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["2.0.0", "1.2.2"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.1.0"]),
        ("^0", ["0.0.1", "0.9.0"], ["1.0.0"]),
        ("1.2.x", ["1.2.0", "1.2.99"], ["1.3.0", "1.1.9"]),
        ("1.x", ["1.0.0", "1.99.0"], ["2.0.0"]),
        ("1.2", ["1.2.0", "1.2.5"], ["1.3.0"]),
        ("=1.2.3", ["1.2.3", "v1.2.3", "1.2.3+build.7"], ["1.2.4"]),
        ("1.2.3", ["1.2.3"], ["1.2.4"]),
        ("!=1.2.3", ["1.2.4", "1.2.2"], ["1.2.3"]),
        ("!=1.2.x", ["1.3.0"], ["1.2.5"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        (">1.2.x", ["1.3.0"], ["1.2.9"]),
        ("<2", ["1.9.9"], ["2.0.0", "2.0.0-rc.1"]),
        ("<=1.2.x", ["1.2.9"], ["1.3.0"]),
        ("=<1.2.3", ["1.2.3"], ["1.2.4"]),
        (">=1.2, <1.4", ["1.2.0", "1.3.9"], ["1.4.0", "1.1.0"]),
        (">=1.2 <1.4", ["1.3.0"], ["1.4.0"]),
        ("1.2 - 1.4.5", ["1.2.0", "1.4.5"], ["1.4.6", "1.1.9"]),
        ("^1.2 || ~0.3", ["1.5.0", "0.3.4"], ["0.4.0", "2.0.0"]),
        (">=1.0.0-alpha <2.0.0", ["1.5.0"], ["1.5.0-beta"]),
    ],
)
def test_constraint(constraint: str, inside: list[str], outside: list[str]) -> None:
    for version in inside:
        assert admits(constraint, version), (constraint, version)
    for version in outside:
        assert not admits(constraint, version), (constraint, version)


def test_pre_release_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    parsed = [Version.parse(v) for v in ordered]
    assert parsed == sorted(parsed)  # type: ignore[type-var]


def test_pick_takes_the_exact_version_then_the_highest_admitted() -> None:
    cached = ["0.2.0", "0.3.0", "0.4.0-rc.1", "1.0.0", "not-a-version"]
    assert pick("", cached) == "1.0.0"
    assert pick("<1.0.0", cached) == "0.3.0"
    assert pick("~0.4.0-rc.0", cached) == "0.4.0-rc.1"
    assert pick(">=0.4.0-rc.0 <1.0.0", cached) is None  # "<1.0.0" admits no pre-release
    assert pick("0.2.0", cached) == "0.2.0"
    assert pick("v0.2.0", cached) == "0.2.0"
    assert pick(">=2", cached) is None


@pytest.mark.parametrize("bad", ["latest", ">=", "1.2.3.4", "~>", "abc || 1.0"])
def test_invalid_constraints_are_refused(bad: str) -> None:
    with pytest.raises(ConstraintError):
        Constraint.parse(bad)


versions = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-rc.{pre}" if pre is not None else ""),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(0, 5),
    st.none() | st.integers(0, 3),
)


@given(versions, versions)
def test_range_bounds_agree_with_ordering(low: str, version: str) -> None:
    """``>=low`` admits exactly the versions at or above ``low`` (pre-releases aside), and
    ``<low`` exactly those below: the two never both hold, one always does for a release."""
    v = Version.parse(version)
    lo = Version.parse(low)
    assert v is not None and lo is not None
    at_least, below = admits(f">={low}", version), admits(f"<{low}", version)
    assert not (at_least and below)
    if not v.prerelease:
        assert at_least == (v >= lo)
        assert below == (v < lo)
