"""Kubernetes resource quantities: just enough to derive limits and requests without rounding
them into surprises (``128Mi`` x 2 stays ``256Mi``)."""

from __future__ import annotations

import functools
import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}

_SUFFIXES = tuple(s for s in sorted([*_BINARY, *_DECIMAL], key=len, reverse=True) if s)
"""Every unit suffix, the longest first (``Mi`` before ``M``)."""


class BadQuantity(ValueError):
    """A value that is not a Kubernetes quantity."""


def split(value: object) -> tuple[Decimal, str]:
    """``"250m"`` -> (Decimal(250), "m"); integers and floats have no suffix."""
    if isinstance(value, bool) or value is None:
        raise BadQuantity(f"not a quantity: {value!r}")
    text = str(value).strip()
    for suffix in _SUFFIXES:
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        number, suffix = text, ""
    try:
        amount = Decimal(number)
    except InvalidOperation as exc:
        raise BadQuantity(f"not a quantity: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise BadQuantity(f"not a quantity: {value!r}")
    return amount, suffix


def to_base(value: object) -> Decimal:
    """The quantity in base units (cores or bytes)."""
    if _memoised(value):
        return _to_base_memo(value)
    return _to_base(value)


def _to_base(value: object) -> Decimal:
    amount, suffix = split(value)
    factor = Decimal(_BINARY[suffix]) if suffix in _BINARY else _DECIMAL[suffix]
    return amount * factor


# Verification reads the same few quantities (500m, 256Mi) in every workload it checks. By
# type too: 1 and 1.0 and "1" are different values for the checks' messages.
_to_base_memo = functools.lru_cache(maxsize=4096, typed=True)(_to_base)


def _memoised(value: object) -> bool:
    """Whether answers about ``value`` are memoised: a number, or a short string."""
    kind = type(value)
    return kind is int or kind is float or (kind is str and len(value) <= 64)  # type: ignore[arg-type]


def scale(value: object, ratio: float, *, fractions: bool = True) -> str:
    """``value`` x ``ratio`` in the same unit as ``value`` (whole numbers where possible).

    ``fractions=False`` (memory) never steps below whole base units (no millibytes)."""
    amount, suffix = split(value)
    factor = Decimal(str(ratio))
    result = amount * factor
    if result == result.to_integral_value():
        return f"{int(result)}{suffix}"
    # Step down to smaller units of the same family until the number is whole
    # (1Gi x 1.5 = 1536Mi, 1 core x 1.5 = 1500m).
    family = list(_BINARY) if suffix in _BINARY else [k for k in _DECIMAL if k]
    table = {k: Decimal(v) for k, v in _BINARY.items()} if suffix in _BINARY else _DECIMAL
    base = to_base(value) * factor
    smaller = [u for u in family if table[u] < table[suffix]] if suffix else ["m"]
    if not fractions:
        smaller = [u for u in smaller if table[u] >= 1]
    for unit in sorted(smaller, key=lambda u: table[u], reverse=True):
        number = base / table[unit]
        if number == number.to_integral_value():
            return f"{int(number)}{unit}"
    return f"{int(base.to_integral_value(rounding=ROUND_CEILING))}"


def at_least(value: object, floor: object) -> bool:
    """True when ``value`` >= ``floor``."""
    return to_base(value) >= to_base(floor)


# Kubernetes' own grammar (k8s.io/apimachinery/pkg/api/resource): a signed decimal number and
# one binary-SI, decimal-SI or decimal-exponent suffix, nothing else (no spaces, no comments).
_GRAMMAR = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


def problem(value: object, *, positive: bool = False) -> str | None:
    """Why ``value`` is not a Kubernetes resource quantity the API server accepts for requests
    and limits (None when it is one): a string in Kubernetes' grammar or a plain number, never
    negative (``positive``: never zero either)."""
    if _memoised(value):
        return _problem_memo(value, positive)
    return _problem(value, positive)


def _problem(value: object, positive: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"{value!r} is not a Kubernetes quantity (like 500m, 2, 256Mi)"
    match = _GRAMMAR.fullmatch(str(value))
    if match is None:
        return f"{value!r} is not a Kubernetes quantity (like 500m, 2, 256Mi)"
    zero = Decimal(match["number"]) == 0
    if match["sign"] == "-" and not zero:
        return f"{value!r} is negative"
    if positive and zero:
        return f"{value!r} is zero"
    return None


_problem_memo = functools.lru_cache(maxsize=4096, typed=True)(_problem)
