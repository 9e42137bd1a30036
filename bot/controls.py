"""The Kubescape control catalog (``bot/data/controls.yaml``), loaded once.

from bot import controls
controls.get("C-0016").why          # plain-words reason the control matters
controls.canonical_id("CIS-5.7.2")  # "C-0210" (Kubescape 2.x id -> Kubescape 3 id)
controls.require("C-9999")          # ConfigError: unknown control id

The catalog explains; it does not decide. Whether a control is fixed, and how risky the fix is,
comes from the fixer registry (`fixers.registry`); `not_fixable_in_git` combines the two.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any, Literal, get_args

import yaml

from bot.errors import ConfigError
from fixers.model import CONTROL_ID, Severity
from fixers.registry import fixer_for

# Shipped data, trusted: the C parser when PyYAML has it (start-up time of every command).
_DATA_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

UnfixableCategory = Literal["rbac", "node", "image", "cluster-config", "needs-human"]
ControlSeverity = Literal["Low", "Medium", "High", "Critical"]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnfixableReason:
    """Why a change in cd-config cannot fix the control, and what a person should do instead
    (read only while no fixer handles the control)."""

    category: UnfixableCategory
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Control:
    """One Kubescape control as the bot explains and treats it."""

    id: str
    name: str
    severity: ControlSeverity
    score_factor: float
    frameworks: tuple[str, ...] = ()
    cis: str | None = None
    aliases: tuple[str, ...] = ()
    why: str
    fix: str
    unfixable_reason: UnfixableReason | None = None

    @property
    def severity_level(self) -> Severity:
        return Severity.parse(self.severity)


# The catalog is shipped data read on every command: checked by hand, not with pydantic, whose
# import alone costs `remedy explain` more than the rest of its start-up.
def _fields(entry: object, names: Collection[str], where: str) -> dict[str, Any]:
    """``entry``, a mapping of some of ``names`` and nothing else."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: not a mapping")
    unknown = sorted(str(k) for k in entry if k not in names)
    if unknown:
        raise ValueError(f"{where}: unknown fields {', '.join(unknown)}")
    return entry


def _choice(value: object, allowed: Any, where: str) -> Any:
    """``value``, one of the ``Literal`` type ``allowed``."""
    choices = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: not a string: {value!r}")
    return value


def _texts(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: not a list: {value!r}")
    return tuple(_text(v, where) for v in value)


def _control(entry: object, n: int) -> Control:
    raw = _fields(entry, [f.name for f in fields(Control)], f"controls[{n}]")
    where = f"controls[{n}] ({raw.get('id')!r})"
    missing = [k for k in ("id", "name", "severity", "score_factor", "why", "fix") if k not in raw]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(raw["id"], str) or not CONTROL_ID.match(raw["id"]):
        raise ValueError(f"{where}: not a canonical control id")
    score = raw["score_factor"]
    if not isinstance(score, int | float) or isinstance(score, bool):
        raise ValueError(f"{where}: score_factor is not a number: {score!r}")
    reason = raw.get("unfixable_reason")
    if reason is not None:
        given = _fields(reason, ("category", "action"), f"{where} unfixable_reason")
        reason = UnfixableReason(
            category=_choice(given.get("category"), UnfixableCategory, f"{where} category"),
            action=_text(given.get("action"), f"{where} action"),
        )
    cis = raw.get("cis")
    return Control(
        id=raw["id"],
        name=_text(raw["name"], f"{where} name"),
        severity=_choice(raw["severity"], ControlSeverity, f"{where} severity"),
        score_factor=float(score),
        frameworks=_texts(raw.get("frameworks", ()), f"{where} frameworks"),
        cis=None if cis is None else _text(cis, f"{where} cis"),
        aliases=_texts(raw.get("aliases", ()), f"{where} aliases"),
        why=_text(raw["why"], f"{where} why"),
        fix=_text(raw["fix"], f"{where} fix"),
        unfixable_reason=reason,
    )


@cache
def _load() -> tuple[Mapping[str, Control], Mapping[str, str]]:
    text = resources.files("bot").joinpath("data", "controls.yaml").read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_DATA_LOADER)
        entries = _fields(data, ("controls",), "the file")["controls"]
        if not isinstance(entries, list):
            raise ValueError("controls: not a list")
        catalog = [_control(entry, n) for n, entry in enumerate(entries)]
    except (yaml.YAMLError, KeyError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"bot/data/controls.yaml is invalid: {detail}") from exc
    by_id: dict[str, Control] = {}
    aliases: dict[str, str] = {}
    for control in catalog:
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
