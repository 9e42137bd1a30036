"""Map other scanners' check ids (Trivy KSV, Checkov CKV_K8S, Kyverno policies) to Kubescape ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from bot.errors import ConfigError

# Shipped data, trusted: the C parser when PyYAML has it (start-up time of every command).
_DATA_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_KSV = re.compile(r"^(?:AVD-)?KSV-?0*(\d+)$", re.IGNORECASE)


def normalize(scanner: str, check_id: str) -> str:
    """Canonical spelling of a check id: Trivy ``KSV-0001``/``AVD-KSV-0001`` -> ``KSV001``."""
    check_id = check_id.strip()
    if scanner == "trivy":
        m = _KSV.match(check_id)
        if m:
            return f"KSV{int(m.group(1)):03d}"
    if scanner == "checkov":
        return check_id.upper()
    return check_id


@cache
def _table() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("bot.data").joinpath("scanner_map.yaml").read_text(encoding="utf-8")
    data = yaml.load(text, Loader=_DATA_LOADER)
    if not isinstance(data, dict):
        raise ConfigError("bot/data/scanner_map.yaml: expected a mapping of scanners")
    return data


def scanners() -> tuple[str, ...]:
    """Scanners with a mapping table."""
    return tuple(_table())


def entries(scanner: str) -> dict[str, dict[str, Any]]:
    """All mapped ids of one scanner with their control, title and optional ``by_path``."""
    return dict(_table().get(scanner, {}))


def to_control(scanner: str, check_id: str, failed_path: str = "") -> str | None:
    """Kubescape control id for a scanner's check id, or None when there is no mapping.

    ``failed_path`` (e.g. a Kyverno message's ``/spec/.../readinessProbe/``) picks the control
    of an entry's ``by_path`` when one of its fragments occurs in it."""
    entry = _table().get(scanner, {}).get(normalize(scanner, check_id))
    if not entry:
        return None
    for fragment, control in (entry.get("by_path") or {}).items():
        if failed_path and fragment in failed_path:
            return str(control)
    return str(entry["control"])


@dataclass(frozen=True)
class Mapped:
    """One scanner check and the Kubescape control(s) it maps to."""

    scanner: str
    check_id: str
    title: str
    control: str
    by_path: tuple[tuple[str, str], ...] = ()
    """(fragment of the failing path, control) pairs that override ``control``."""

    @property
    def controls(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.control, *(c for _, c in self.by_path))))


def lookup(check_id: str) -> tuple[Mapped, ...]:
    """Every scanner's mapping of ``check_id`` (``CKV_K8S_22``, ``KSV-0014``, a Kyverno policy
    name; case-insensitive), for ``remedy explain``; empty when no scanner knows it."""
    found = []
    for scanner, table in _table().items():
        wanted = normalize(scanner, check_id).casefold()
        for key, entry in table.items():
            if str(key).casefold() == wanted:
                by_path = tuple((str(f), str(c)) for f, c in (entry.get("by_path") or {}).items())
                title = str(entry.get("title", ""))
                found.append(Mapped(scanner, str(key), title, str(entry["control"]), by_path))
    return tuple(found)
