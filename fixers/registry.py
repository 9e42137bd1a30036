"""Discover fixers by walking `fixers.rules` and map control ids to them.

Adding a control means adding one module under ``fixers/rules/``; no list is edited.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache

from fixers.base import Fixer
from fixers.model import Finding, NeedsHuman, Result
from fixers.policy import FixContext
from fixers.view import FieldNotExposed, PodView


class DuplicateControl(Exception):
    """Two fixers claim the same control id."""


@cache
def all_fixers() -> tuple[Fixer, ...]:
    """Every fixer class in ``fixers.rules``, instantiated once, in module order."""
    import fixers.rules as package

    found: list[Fixer] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Fixer)
                and obj is not Fixer
                and obj.__module__ == module.__name__
                and obj.controls
            ):
                found.append(obj())
    return tuple(found)


@cache
def by_control() -> dict[str, Fixer]:
    """control id -> fixer; raises `DuplicateControl` when a control is claimed twice."""
    table: dict[str, Fixer] = {}
    for fixer in all_fixers():
        for control in fixer.controls:
            if control in table:
                raise DuplicateControl(
                    f"{control} claimed by {table[control].name} and {fixer.name}"
                )
            table[control] = fixer
    return table


def fixer_for(control_id: str) -> Fixer | None:
    """The fixer for a control, or None when no fixer handles it."""
    return by_control().get(control_id)


def fixable_controls() -> Iterable[str]:
    return sorted(by_control())


def run_fixer(fixer: Fixer, view: PodView, finding: Finding, ctx: FixContext) -> Result:
    """Run one fixer safely: a view that cannot place a field, or a fixer bug on input it does
    not understand, becomes a `NeedsHuman` answer instead of a crash."""
    try:
        # Typed as never None, but a fixer is a plugin: check what it really returns.
        result: Result | None = fixer.plan(view, finding, ctx)
    except FieldNotExposed as exc:
        return NeedsHuman(f"{exc}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return NeedsHuman(
            f"{fixer.name} could not read this resource ({type(exc).__name__}: {exc})"
        )
    if isinstance(result, type(None)):
        return NeedsHuman(f"{fixer.name} returned no answer")
    return result
