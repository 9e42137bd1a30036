"""The Kubescape control catalog (``bot/data/controls.yaml``), loaded once.

from bot import controls
controls.get("C-0016").why          # plain-words reason the control matters
controls.canonical_id("CIS-5.7.2")  # "C-0210" (Kubescape 2.x id -> Kubescape 3 id)
controls.require("C-9999")          # ConfigError: unknown control id

The catalog explains; it does not decide. Whether a control is fixed, and how risky the fix is,
comes from the fixer registry (`fixers.registry`); `not_fixable_in_git` combines the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.errors import ConfigError
from fixers.model import CONTROL_ID, Severity
from fixers.registry import fixer_for

# Shipped data, trusted: the C parser when PyYAML has it (start-up time of every command).
_DATA_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

UnfixableCategory = Literal["rbac", "node", "image", "cluster-config", "needs-human"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UnfixableReason(_Frozen):
    """Why a change in cd-config cannot fix the control, and what a person should do instead
    (read only while no fixer handles the control)."""

    category: UnfixableCategory
    action: str


class Control(_Frozen):
    """One Kubescape control as the bot explains and treats it."""

    id: str
    name: str
    severity: Literal["Low", "Medium", "High", "Critical"]
    score_factor: float
    frameworks: tuple[str, ...] = ()
    cis: str | None = None
    aliases: tuple[str, ...] = ()
    why: str
    fix: str
    unfixable_reason: UnfixableReason | None = None

    @field_validator("id")
    @classmethod
    def _canonical(cls, value: str) -> str:
        if not CONTROL_ID.match(value):
            raise ValueError(f"not a canonical control id: {value!r}")
        return value

    @property
    def severity_level(self) -> Severity:
        return Severity.parse(self.severity)


class _Catalog(_Frozen):
    controls: tuple[Control, ...]


@cache
def _load() -> tuple[Mapping[str, Control], Mapping[str, str]]:
    text = resources.files("bot").joinpath("data", "controls.yaml").read_text(encoding="utf-8")
    try:
        catalog = _Catalog.model_validate(yaml.load(text, Loader=_DATA_LOADER))
    except (yaml.YAMLError, ValidationError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"bot/data/controls.yaml is invalid: {detail}") from exc
    by_id: dict[str, Control] = {}
    aliases: dict[str, str] = {}
    for control in catalog.controls:
        if control.id in by_id:
            raise ConfigError(f"bot/data/controls.yaml lists {control.id} twice")
        by_id[control.id] = control
        for alias in control.aliases:
            aliases[alias.upper()] = control.id
    return by_id, aliases


def canonical_id(control_id: str) -> str | None:
    """The canonical ``C-NNNN`` id for a control id or a known alias (e.g. ``CIS-5.7.2``)."""
    key = control_id.strip().upper()
    by_id, aliases = _load()
    if key in by_id:
        return key
    return aliases.get(key)


def get(control_id: str) -> Control | None:
    """The catalog entry for an id or alias, or None when the catalog does not know it."""
    canonical = canonical_id(control_id)
    return _load()[0][canonical] if canonical else None


def severity(control_id: str, reported: object = None) -> Severity:
    """The severity a scanner reported for a finding of this control, else the catalog's."""
    level = Severity.parse(reported)
    if level is Severity.UNKNOWN:
        known = get(control_id)
        level = known.severity_level if known else Severity.UNKNOWN
    return level


def require(control_id: str) -> Control:
    """Like `get`, but an unknown id is a `ConfigError` naming it."""
    control = get(control_id)
    if control is None:
        raise ConfigError(
            f"unknown Kubescape control id {control_id!r}: not in bot/data/controls.yaml "
            "(use an id like C-0016, or add the control to the catalog)"
        )
    return control


def not_fixable_in_git(control: Control) -> UnfixableReason | None:
    """The catalog's reason no change in git fixes the control, or None when a fixer handles
    it (the registry wins over the catalog) or the catalog gives no reason."""
    if fixer_for(control.id) is not None:
        return None
    return control.unfixable_reason


def all_controls() -> tuple[Control, ...]:
    """Every control in the catalog, in id order."""
    return tuple(sorted(_load()[0].values(), key=lambda c: c.id))
