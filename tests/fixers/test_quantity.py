"""Resource quantities: parsing and scaling used to derive limits from requests."""

from __future__ import annotations

import pytest

from fixers.rules._quantity import BadQuantity, at_least, scale, to_base


@pytest.mark.parametrize(
    ("value", "ratio", "expected"),
    [
        ("128Mi", 2.0, "256Mi"),
        ("250m", 2.0, "500m"),
        ("1", 1.5, "1500m"),
        (1, 2.0, "2"),
        ("0.5", 2.0, "1"),
        ("1Gi", 1.5, "1536Mi"),
        ("1", 1.3, "1300m"),
        ("3Mi", 1.1, "3460301"),
        ("100M", 2.0, "200M"),
        ("300m", 1.5, "450m"),
    ],
)
def test_scale_keeps_the_unit(value: object, ratio: float, expected: str) -> None:
    assert scale(value, ratio) == expected


def test_memory_never_gets_millibytes() -> None:
    assert scale("134217729", 1.5, fractions=False) == "201326594"
    assert scale("1Gi", 1.5, fractions=False) == "1536Mi"


def test_to_base_and_comparison() -> None:
    assert to_base("1Ki") == 1024
    assert to_base("500m") * 2 == 1
    assert at_least("1Gi", "1000Mi")
    assert not at_least("100m", "0.2")


@pytest.mark.parametrize("value", ["half-a-core", "", None, True, "-1", "1Zi", "nan"])
def test_bad_quantities_are_refused(value: object) -> None:
    with pytest.raises(BadQuantity):
        to_base(value)


def test_memoised_answers_are_the_computed_ones_by_type() -> None:
    """`problem` and `to_base` remember answers per value and type: 1, 1.0, "1" and True
    are told apart, and a second asking gives what a fresh computation gives."""
    from fixers.rules import _quantity

    values: list[object] = [1, 1.0, "1", True, "250m", "-1", "0", 0, 0.0, "1.5Gi", "x", None]
    for _ in range(2):
        for value in values:
            for positive in (False, True):
                assert _quantity.problem(value, positive=positive) == _quantity._problem(
                    value, positive
                )
            try:
                fresh = _quantity._to_base(value)
            except BadQuantity:
                with pytest.raises(BadQuantity):
                    to_base(value)
            else:
                assert to_base(value) == fresh
                assert type(to_base(value)) is type(fresh)
    assert "True" in (_quantity.problem(True) or "")
    assert _quantity.problem(1) is None
