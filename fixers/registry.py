"""Discover fixers and map control ids to them: the one source of which controls are fixable
and how risky each fix is (the control catalog, ``bot/data/controls.yaml``, only explains).

Adding a control means adding one module under ``fixers/rules/`` and its explanation template;
no list is edited. Fixers shipped outside this package register their rules package under the
entry point group ``kube_remedy.fixers`` (see `rule_packages`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from fixers.base import Fixer
from fixers.model import NeedsHuman, Result, Risk
from fixers.view import FieldNotExposed, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class DuplicateControl(Exception):
    """Two fixers claim the same control id."""


class DuplicateFixerName(Exception):
    """Two fixers share a name (their module's), which names their template and change sets."""


ENTRY_POINT_GROUP = "kube_remedy.fixers"
"""Entry point group naming extra rules packages (``name = "package.rules"``)."""


class BadRulesPackage(Exception):
    """An entry point in `ENTRY_POINT_GROUP` does not name an importable package."""


def rule_packages() -> tuple[ModuleType, ...]:
    """``fixers.rules``, then each package registered under `ENTRY_POINT_GROUP` (by name)."""
    # Package metadata is read when the fixers are discovered, not when this module is imported.
    from importlib.metadata import entry_points

    import fixers.rules as builtin

    packages = [builtin]
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            package = importlib.import_module(point.value)
        except ImportError as exc:
            raise BadRulesPackage(
                f"entry point {point.name} = {point.value!r} in {ENTRY_POINT_GROUP} cannot be "
                f"imported: {exc}"
            ) from exc
        if not hasattr(package, "__path__"):
            raise BadRulesPackage(
                f"entry point {point.name} = {point.value!r} in {ENTRY_POINT_GROUP} is a module, "
                "not a package of fixer modules"
            )
        if package not in packages:
            packages.append(package)
    return tuple(packages)


def _fixers_in(package: ModuleType) -> list[Fixer]:
    found: list[Fixer] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Fixer)
                and obj.__module__ == module.__name__
                and obj.controls
            ):
                found.append(obj())
    return found


@cache
def all_fixers() -> tuple[Fixer, ...]:
    """Every fixer class in the rules packages, instantiated once, in package then module
    order; raises `DuplicateFixerName` when two rules packages hold a module of the same name."""
    found = tuple(fixer for package in rule_packages() for fixer in _fixers_in(package))
    seen: dict[str, Fixer] = {}
    for fixer in found:
        other = seen.setdefault(fixer.name, fixer)
        if other is not fixer:
            raise DuplicateFixerName(
                f"two fixers are named {fixer.name}: {type(other).__module__} and "
                f"{type(fixer).__module__}"
            )
    return found


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
    """Every control some fixer handles, sorted."""
    return sorted(by_control())


def is_fixable(control_id: str) -> bool:
    """Whether a fixer handles the control (whatever the catalog's prose says)."""
    return control_id in by_control()


def risk_of(control_id: str) -> Risk | None:
    """The risk of the fix for a control (its fixer's), or None when no fixer handles it."""
    fixer = fixer_for(control_id)
    return fixer.risk if fixer is not None else None


def forget() -> None:
    """Drop the discovered fixers, so the next lookup walks the rules packages again (for a
    process that installs a rules package after the first lookup, and for tests)."""
    by_control.cache_clear()
    all_fixers.cache_clear()


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
