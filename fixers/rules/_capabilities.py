"""Capability lists shared by the capability fixers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fixers.model import NeedsHuman, Remove
from fixers.view import ContainerView

# Kubescape's default settings.postureControlInputs.insecureCapabilities.
INSECURE = frozenset(
    {
        "SETPCAP",
        "NET_ADMIN",
        "NET_RAW",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_PTRACE",
        "SYS_ADMIN",
        "SYS_BOOT",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "PERFMON",
        "ALL",
        "BPF",
    }
)


# What a container runtime grants a container that adds and drops nothing (containerd's and
# Docker's default set): the only capabilities a fix may add back after dropping ALL, since
# the container had them before.
RUNTIME_DEFAULT = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def low_ports(container: ContainerView) -> list[int]:
    """The container ports below 1024 (binding them needs NET_BIND_SERVICE)."""
    ports: Any = container.get("ports", default=[]) or []
    found = []
    for port in ports if isinstance(ports, list) else []:
        number = port.get("containerPort") if isinstance(port, Mapping) else None
        if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 1024:
            found.append(number)
    return found


def normalise(capability: Any) -> str:
    """``cap_sys_admin`` and ``SYS_ADMIN`` name the same capability."""
    text = str(capability).strip().upper()
    return text.removeprefix("CAP_")


def drop_and_add(
    container: ContainerView, dropping: str
) -> tuple[list[Any], list[Any]] | NeedsHuman:
    """The container's ``capabilities.drop`` and ``capabilities.add`` lists (empty when unset),
    or NeedsHuman when they are not plain lists, so ``dropping`` must be added by hand."""
    caps = container.get("securityContext", "capabilities", default={}) or {}
    drop = caps.get("drop", []) if isinstance(caps, Mapping) else None
    added = caps.get("add", []) if isinstance(caps, Mapping) else None
    if not isinstance(drop, list) or not isinstance(added, list):
        return NeedsHuman(
            f"container {container.name}: capabilities are not plain lists; "
            f"add {dropping} to capabilities.drop by hand"
        )
    return drop, added


def remove_added(
    container: ContainerView, unwanted: frozenset[str]
) -> tuple[list[Remove], list[Any]]:
    """Edits that take the ``unwanted`` capabilities out of ``capabilities.add`` (the whole list
    when nothing else is left), and the entries they remove; nothing when none is added."""
    added = container.get("securityContext", "capabilities", "add", default=[]) or []
    if not isinstance(added, list):
        return [], []
    drop = [i for i, c in enumerate(added) if normalise(c) in unwanted]
    if not drop:
        return [], []
    path = container.path("securityContext", "capabilities", "add")
    if len(drop) == len(added):
        return [Remove(path)], [added[i] for i in drop]
    # Highest index first, so the earlier indices stay valid.
    return [Remove((*path, i)) for i in reversed(drop)], [added[i] for i in drop]
