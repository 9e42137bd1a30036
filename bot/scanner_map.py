"""Map other scanners' check ids (Trivy KSV, Checkov CKV_K8S, Kyverno policies) to Kubescape ids."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

from bot.errors import ConfigError

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
    data = yaml.safe_load(text)
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
