"""What an edit newly breaks in rendered objects it was not aimed at.

A fix written to a shared file (a Kustomize base, a component) changes every output that reads
the file. For each object whose rendering changed, the bot's own checks run before and after:
every fixer's control (a control counts as failing when its fixer does not answer
AlreadyCompliant) and the Kubernetes schema and quantity checks of `bot.verify`. Only what
fails after and did not fail before is reported: an output that already failed a control is not
held against the edit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.verify import failing_controls, object_problems
from fixers.view import POD_SPEC_PATHS, dotted, leaves, lookup

Identity = tuple[str, str, str]


def identity(document: Mapping[str, Any]) -> Identity:
    """Kind, namespace and name of a rendered object."""
    meta = document.get("metadata") or {}
    if not isinstance(meta, Mapping):
        meta = {}
    return (str(document.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name")))


def new_failures(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> list[str]:
    """One line per control or schema problem that an object of ``after`` has and its
    rendering in ``before`` did not; objects rendered identically are not checked."""
    previous = {identity(doc): doc for doc in before}
    after = list(after)
    renamed = _renamed(previous, [identity(doc) for doc in after])
    lines: list[str] = []
    for doc in after:
        key = identity(doc)
        old = previous.get(key, renamed.get(key))
        if old == doc:
            continue
        name = f"{key[0]} {key[1] + '/' if key[1] else ''}{key[2]}"
        was_failing = failing_controls(old) if old is not None else frozenset()
        for control in sorted(failing_controls(doc) - was_failing):
            lines.append(f"{name} now fails {control}")
        had = set(object_problems(old)) if old is not None else set()
        lines.extend(f"{name}: {p}" for p in object_problems(doc) if p not in had)
    return lines


_INHERITED = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seLinuxOptions",
    "seccompProfile",
    "appArmorProfile",
    "windowsOptions",
)
"""Pod securityContext fields a container's own securityContext overrides."""


def settings(document: Mapping[str, Any]) -> dict[tuple[Any, ...], Any]:
    """Every setting of a workload's pod spec as the kubelet resolves it, by a stable path:
    containers by their name, and each container's securityContext with the fields it
    inherits from the pod's. Empty for other kinds."""
    spec = lookup(document, POD_SPEC_PATHS.get(str(document.get("kind")), ("-",)))
    if not isinstance(spec, Mapping):
        return {}
    out: dict[tuple[Any, ...], Any] = {}
    pod_context = spec.get("securityContext")
    pod_context = pod_context if isinstance(pod_context, Mapping) else {}
    inherited = {k: pod_context[k] for k in _INHERITED if k in pod_context}
    for key, value in spec.items():
        if key in ("containers", "initContainers") and isinstance(value, list):
            for container in value:
                if not isinstance(container, Mapping):
                    continue
                own = container.get("securityContext")
                own = own if isinstance(own, Mapping) else {}
                resolved = {**container, "securityContext": {**inherited, **own}}
                out.update(leaves(resolved, (f"{key}[{container.get('name')}]",)))
        else:
            out.update(leaves(value, (key,)))
    return out


def overridden(
    before: Iterable[Mapping[str, Any]],
    after: Iterable[Mapping[str, Any]],
    reference: Mapping[str, Any],
) -> list[str]:
    """One line per setting the edits change in a workload of ``after`` whose value in
    ``before`` is that output's own: set, and not what ``reference`` (the same workload as
    the finding's output renders it, before the edits) has. A fix of the finding's output
    may fill what another output leaves unset or change what both share, never override a
    choice the other output made (an overlay's own user id)."""
    mine = settings(reference)
    previous = {identity(doc): doc for doc in before}
    lines: list[str] = []
    for doc in after:
        key = identity(doc)
        old = previous.get(key)
        if old is None or old == doc:
            continue
        was, now = settings(old), settings(doc)
        for path, value in was.items():
            if value is not None and now.get(path) != value and mine.get(path) != value:
                what = f"{key[0]} {key[1] + '/' if key[1] else ''}{key[2]}"
                lines.append(
                    f"{what} sets {dotted(path)} to {value!r} itself, which the edit would "
                    f"change to {now.get(path)!r}"
                )
    return lines


def _stem(key: Identity) -> Identity:
    return (key[0], key[1], key[2].rsplit("-", 1)[0])


def _renamed(previous: Mapping[Identity, Any], keys: Sequence[Identity]) -> dict[Identity, Any]:
    """Objects whose name changed between two renders only in its last ``-`` segment (Helm
    test pods and hooks named with ``randAlphaNum``): the new name -> the previous object,
    where exactly one unmatched object on each side shares the stem."""
    gone: dict[Identity, list[Identity]] = {}
    for key in previous.keys() - set(keys):
        gone.setdefault(_stem(key), []).append(key)
    new: dict[Identity, list[Identity]] = {}
    for key in keys:
        if key not in previous:
            new.setdefault(_stem(key), []).append(key)
    return {
        added[0]: previous[gone[stem][0]]
        for stem, added in new.items()
        if len(added) == 1 and len(gone.get(stem, ())) == 1
    }


def describe(output: str, failures: Sequence[str]) -> str:
    """The one-line refusal for an edit that breaks ``output``."""
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"the edit would make {output} worse: {failures[0]}{more}"
