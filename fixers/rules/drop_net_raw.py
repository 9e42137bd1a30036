"""Drop the NET_RAW capability (C-9002, Checkov CKV_K8S_28).

Kubernetes field: ``containers[].securityContext.capabilities.drop``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/#set-capabilities-for-a-container).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import AppendUnique, NeedsHuman, Risk
from fixers.rules._capabilities import drop_and_add, normalise
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class DropNetRaw(ContainerFixer):
    """Add ``NET_RAW`` to ``capabilities.drop`` of each container that drops neither it nor
    ``ALL``. A container that adds NET_RAW itself needs it (ping, CNI): that is declined."""

    controls = ("C-9002",)
    risk = Risk.MEDIUM  # ping and raw-socket diagnostics stop working
    family = "security-context"

    compliant = "every container drops NET_RAW (or ALL)"
    summary = "NET_RAW dropped on {changed}"
    caveat = "ping and other raw-socket tools no longer work inside these containers"

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        lists = drop_and_add(container, "NET_RAW")
        if isinstance(lists, NeedsHuman):
            return lists
        drop, added = lists
        if {"ALL", "NET_RAW"} & {normalise(c) for c in drop}:
            return None
        if "NET_RAW" in {normalise(c) for c in added}:
            return NeedsHuman(
                f"container {container.name} adds NET_RAW itself (raw sockets: ping, "
                "packet capture, CNI); remove that add or waive the finding with the reason"
            )
        path = container.path("securityContext", "capabilities", "drop")
        return ContainerFix((AppendUnique(path, "NET_RAW"),))
