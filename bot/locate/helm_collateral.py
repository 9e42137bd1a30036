"""What a values edit changes in a chart's render beyond the fields its fix names.

A values key may feed more than the field a fixer asked for: a switch turned on renders the
chart's defaults under it (``postJob.securityContext.enabled`` brings ``runAsUser: 1000``), a
key shared by two containers or two workloads changes both. Every changed pod-spec field of
the deployment's workloads is compared before and after the edit; the fields outside those
the fix named are its collateral. Collateral of a risk class the fix's own fields lack (a
user id changed by a seccomp fix) is refused: a risky change travels alone and is named. The
rest is listed in the merge request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.locate.helm_render import RenderedDoc
from fixers.model import YamlPath
from fixers.view import ManifestPodView, dotted, leaves, lookup

RISK_CLASSES: Mapping[str, str] = {
    "runAsUser": "the user or group it runs as",
    "runAsGroup": "the user or group it runs as",
    "fsGroup": "the user or group it runs as",
    "supplementalGroups": "the user or group it runs as",
    "runAsNonRoot": "the user or group it runs as",
    "readOnlyRootFilesystem": "a read-only root filesystem",
    "limits": "resource limits",
    "hostNetwork": "host namespaces",
    "hostPID": "host namespaces",
    "hostIPC": "host namespaces",
    "privileged": "privileged mode",
}
"""Fields whose change can break a workload, by the class of fix that travels alone for them
(`bot.plan.travels_alone`: non-root user, read-only root, limits, host namespaces)."""


_OFF_IS_SAFE = frozenset({"privileged", "hostNetwork", "hostPID", "hostIPC"})


@dataclass(frozen=True)
class Change:
    """One changed leaf of a workload's pod spec."""

    resource: str
    """``Kind name`` of the workload."""
    ident: tuple[Any, ...]
    path: YamlPath
    """Path in the document."""
    label: str
    """The field as a person reads it (``container app: securityContext.runAsUser``)."""
    value: Any

    @property
    def risk_class(self) -> str | None:
        if self.path and self.path[-1] in _OFF_IS_SAFE and self.value is False:
            return None  # turned off (or written as the default): nothing new is allowed
        return next((RISK_CLASSES[str(s)] for s in self.path if str(s) in RISK_CLASSES), None)

    def __str__(self) -> str:
        shown = self.value if isinstance(self.value, str | int | float | bool) else None
        return self.label if shown is None else f"{self.label} {shown}"


def pod_specs(docs: Iterable[RenderedDoc]) -> dict[tuple[Any, ...], RenderedDoc]:
    """The workload documents of a render, by identity."""
    return {d.ident: d for d in docs if ManifestPodView.from_document(d.document) is not None}


def changes(
    before: Mapping[tuple[Any, ...], RenderedDoc], after: Mapping[tuple[Any, ...], RenderedDoc]
) -> list[Change]:
    """Every pod-spec leaf that differs between two renders of the same workloads (a workload
    that appears or goes is not compared: the verification of the fix sees to it)."""
    out: list[Change] = []
    for ident, new in after.items():
        old = before.get(ident)
        view = ManifestPodView.from_document(new.document)
        if old is None or view is None:
            continue
        base = view.base
        was = dict(leaves(lookup(old.document, base), base))
        now = dict(leaves(lookup(new.document, base), base))
        for path in sorted(was.keys() | now.keys(), key=repr):
            if was.get(path, ...) != now.get(path, ...):
                value = now.get(path, "removed")
                out.append(
                    Change(f"{new.kind} {new.name}", ident, path, _label(new, base, path), value)
                )
    return out


def collateral(
    found: list[Change], ident: tuple[Any, ...], named: Iterable[YamlPath]
) -> tuple[list[Change], list[Change]]:
    """(changes under the fields the fix named in its own resource, the others)."""
    prefixes = tuple(named)
    own: list[Change] = []
    other: list[Change] = []
    for change in found:
        mine = change.ident == ident and any(change.path[: len(p)] == p for p in prefixes)
        (own if mine else other).append(change)
    return own, other


def refused(own: list[Change], other: list[Change], switches: Sequence[str] = ()) -> str | None:
    """Why the edit cannot go with this fix: its collateral changes a field of a risk class
    the fix's own fields lack (``switches``: those the edit turns on, named); None when it can
    (its collateral is then listed)."""
    classes = {c.risk_class for c in own}
    risky = [c for c in other if c.risk_class is not None and c.risk_class not in classes]
    if not risky:
        return None
    what = sorted({c.risk_class for c in risky if c.risk_class})
    edit = f"turning on {', '.join(switches)}" if switches else "the values edit"
    return (
        f"{edit} also changes {described(risky)}, which changes {', '.join(what)}: "
        "a change that can break a workload travels alone and is named; set it by hand"
    )


def described(found: list[Change], most: int = 12) -> str:
    """The changes as a person reads them, by workload (at most ``most`` fields)."""
    by: dict[str, list[str]] = {}
    for change in found[:most]:
        by.setdefault(change.resource, []).append(str(change))
    text = "; ".join(f"{r}: {', '.join(fields)}" for r, fields in by.items())
    return text + (f" and {len(found) - most} more fields" if len(found) > most else "")


def _label(doc: RenderedDoc, base: YamlPath, path: YamlPath) -> str:
    rest = path[len(base) :]
    if len(rest) >= 2 and rest[0] in ("containers", "initContainers") and isinstance(rest[1], int):
        items = lookup(doc.document, (*base, rest[0]))
        item = items[rest[1]] if isinstance(items, list) and rest[1] < len(items) else {}
        name = item.get("name") if isinstance(item, Mapping) else None
        return f"container {name}: {dotted(rest[2:])}"
    return dotted(rest)
