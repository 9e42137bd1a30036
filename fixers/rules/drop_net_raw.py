"""Drop the NET_RAW capability (C-9002, Checkov CKV_K8S_28).

Kubernetes field: ``containers[].securityContext.capabilities.drop``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/#set-capabilities-for-a-container).
"""

from __future__ import annotations

from collections.abc import Mapping

from fixers.base import Fixer
from fixers.model import (
    AlreadyCompliant,
    AppendUnique,
    Finding,
    Fixed,
    NeedsHuman,
    Result,
    Risk,
)
from fixers.policy import FixContext
from fixers.rules._capabilities import normalise
from fixers.view import PodView, target_containers


class DropNetRaw(Fixer):
    """Add ``NET_RAW`` to ``capabilities.drop`` of each container that drops neither it nor
    ``ALL``. A container that adds NET_RAW itself needs it (ping, CNI): that is declined."""

    controls = ("C-9002",)
    risk = Risk.MEDIUM  # ping and raw-socket diagnostics stop working
    family = "security-context"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        edits: list[AppendUnique] = []
        changed: list[str] = []
        for container in target_containers(view, finding):
            caps = container.get("securityContext", "capabilities", default={}) or {}
            drop = caps.get("drop", []) if isinstance(caps, Mapping) else None
            added = caps.get("add", []) if isinstance(caps, Mapping) else None
            if not isinstance(drop, list) or not isinstance(added, list):
                return NeedsHuman(
                    f"container {container.name}: capabilities are not plain lists; "
                    "add NET_RAW to capabilities.drop by hand"
                )
            if {"ALL", "NET_RAW"} & {normalise(c) for c in drop}:
                continue
            if "NET_RAW" in {normalise(c) for c in added}:
                return NeedsHuman(
                    f"container {container.name} adds NET_RAW itself (raw sockets: ping, "
                    "packet capture, CNI); remove that add or waive the finding with the reason"
                )
            path = container.path("securityContext", "capabilities", "drop")
            edits.append(AppendUnique(path, "NET_RAW"))
            changed.append(container.name)
        if not edits:
            return AlreadyCompliant("every container drops NET_RAW (or ALL)")
        return Fixed(
            tuple(edits),
            notes=(
                f"NET_RAW dropped on {', '.join(changed)}",
                "ping and other raw-socket tools no longer work inside these containers",
            ),
        )
