"""Drop every Linux capability a container does not add back (C-9001, Checkov CKV_K8S_37,
Trivy KSV003).

Kubernetes field: ``containers[].securityContext.capabilities.drop``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/#set-capabilities-for-a-container).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import AnyEdit, AppendUnique, NeedsHuman, Risk
from fixers.rules._capabilities import drop_and_add, normalise
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


def low_ports(container: ContainerView) -> list[int]:
    """The container ports below 1024 (binding them needs NET_BIND_SERVICE)."""
    ports: Any = container.get("ports", default=[]) or []
    found = []
    for port in ports if isinstance(ports, list) else []:
        number = port.get("containerPort") if isinstance(port, Mapping) else None
        if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 1024:
            found.append(number)
    return found


class DropAllCapabilities(ContainerFixer):
    """Add ``ALL`` to ``capabilities.drop`` of each container that does not drop it; where the
    container listens on a port below 1024, add back ``NET_BIND_SERVICE``. Capabilities the
    container adds on purpose are kept (they are added after the drop)."""

    controls = ("C-9001",)
    risk = Risk.HIGH  # an image that chowns or switches user at start-up needs CHOWN/SETUID
    family = "security-context"

    compliant = "every container drops ALL capabilities"
    caveat = (
        "images that start as root and change owner or user at start-up (chown, su, "
        "gosu) need CHOWN, SETUID or SETGID added back; check the pods start"
    )

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        lists = drop_and_add(container, "ALL")
        if isinstance(lists, NeedsHuman):
            return lists
        drop, added = lists
        if any(normalise(c) == "ALL" for c in drop if c is not None):
            return None
        path = container.path("securityContext", "capabilities")
        edits: list[AnyEdit] = [AppendUnique((*path, "drop"), "ALL")]
        note = f"{container.name}: drops ALL capabilities"
        ports = low_ports(container)
        if ports and "NET_BIND_SERVICE" not in {normalise(c) for c in added}:
            edits.append(AppendUnique((*path, "add"), "NET_BIND_SERVICE"))
            listed = ", ".join(str(p) for p in ports)
            note += f", adds back NET_BIND_SERVICE (it listens on port {listed}, below 1024)"
        return ContainerFix(tuple(edits), notes=(note,))
