"""What every finding source produces.

A source module in `bot.sources` defines ``FORMAT`` (its name), ``sniff(data) -> bool`` (is this
parsed document my format?) and ``parse(data, origin) -> Report``. `bot.sources.load_report`
detects the format and dispatches; sources are discovered by a package walk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fixers.model import Finding

KNOWN_KINDS: Mapping[str, str] = {
    k.lower(): k
    for k in (
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "ReplicationController",
        "Job",
        "CronJob",
        "Service",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "NetworkPolicy",
        "Namespace",
        "Ingress",
        "ConfigMap",
        "Secret",
        "PodSecurityPolicy",
        "Node",
    )
}
"""Kubernetes kinds by lower-case spelling, for scanners that write ``deployment``."""


def one_or_list(data: Any, is_item: Callable[[Any], bool]) -> bool:
    """``data`` is one object ``is_item`` accepts, or a non-empty kubectl ``...List`` of them."""
    if is_item(data):
        return True
    if not isinstance(data, Mapping) or not str(data.get("kind", "")).endswith("List"):
        return False
    items = data.get("items")
    return isinstance(items, list) and bool(items) and all(is_item(i) for i in items)


@dataclass(frozen=True)
class Skipped:
    """A result the source read but could not turn into a finding, with the reason."""

    what: str
    reason: str


@dataclass(frozen=True)
class Report:
    """The findings of one scan, in canonical Kubescape control ids."""

    scanner: str
    origin: str
    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...] = ()
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Resource objects embedded in the report, by ``ResourceRef.key`` (Kubescape has them), cut
    to identity, source path and container names: the fixers read the repository, not these."""
    summary: Mapping[str, Any] = field(default_factory=dict)
    """Scanner-reported totals, e.g. framework scores, for comparison."""
    passed: frozenset[tuple[str, str]] = frozenset()
    """(control id, ``ResourceRef.key``) the scanner checked and found passing: the evidence a
    fix was resolved (`bot.resolution`). Empty when the scanner reports failures only."""


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a JSON object), else an empty one: for optional parts of
    untrusted documents."""
    return value if isinstance(value, Mapping) else {}
