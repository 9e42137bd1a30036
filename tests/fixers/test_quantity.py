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
