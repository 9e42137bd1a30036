"""What every finding source produces.

A source module in `bot.sources` defines ``FORMAT`` (its name), ``sniff(data) -> bool`` (is this
parsed document my format?) and ``parse(data, origin) -> Report``. `bot.sources.load_report`
detects the format and dispatches; sources are discovered by a package walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, TypeVar

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


_T = TypeVar("_T")


class PassedChecks(AbstractSet[tuple[str, str]]):
    """(control id, ``ResourceRef.key``) pairs, an immutable set held per resource: a big
    report has a pair for most controls of every resource, and as a set of tuples they cost
    more than its findings. Each resource's controls are one frozenset, shared by every
    resource that passed the same ones (most of them). Set operations answer frozensets."""

    __slots__ = ("_by_resource", "_size")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        by_resource: dict[str, set[str]] = {}
        for control, key in pairs:
            by_resource.setdefault(key, set()).add(control)
        self._by_resource: Mapping[str, frozenset[str]] = self._pooled(by_resource)
        self._size = sum(len(c) for c in self._by_resource.values())

    @classmethod
    def of(cls, by_resource: Mapping[str, Iterable[str]]) -> PassedChecks:
        """The pairs of each resource key and each of its controls."""
        passed = cls()
        passed._by_resource = cls._pooled(by_resource)
        passed._size = sum(len(c) for c in passed._by_resource.values())
        return passed

    @staticmethod
    def _pooled(by_resource: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
        pool: dict[frozenset[str], frozenset[str]] = {}
        pooled: dict[str, frozenset[str]] = {}
        for key, controls in by_resource.items():
            if controls:
                frozen = frozenset(controls)
                pooled[key] = pool.setdefault(frozen, frozen)
        return pooled

    @classmethod
    def _from_iterable(cls, items: Iterable[_T]) -> frozenset[_T]:
        return frozenset(items)

    def __contains__(self, pair: object) -> bool:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return False
        controls = self._by_resource.get(pair[1])
        return controls is not None and pair[0] in controls

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for key, controls in self._by_resource.items():
            for control in controls:
                yield control, key

    def __len__(self) -> int:
        return self._size

    def __hash__(self) -> int:
        return self._hash()

    def __repr__(self) -> str:
        return f"PassedChecks({sorted(self)!r})"


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
    passed: AbstractSet[tuple[str, str]] = frozenset()
    """(control id, ``ResourceRef.key``) the scanner checked and found passing: the evidence a
    fix was resolved (`bot.resolution`). Empty when the scanner reports failures only."""


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a JSON object), else an empty one: for optional parts of
    untrusted documents."""
    return value if isinstance(value, Mapping) else {}
