"""Take pods off the node's network namespace (C-0041).

Kubernetes field: ``spec.hostNetwork`` of the pod
(https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import PodFixer
from fixers.model import AlreadyCompliant, AnyEdit, Fixed, Remove, Result, Risk
from fixers.view import PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class HostNetwork(PodFixer):
    """Remove ``hostNetwork: true`` (and the ``ClusterFirstWithHostNet`` DNS policy that only
    makes sense with it)."""

    controls = ("C-0041",)
    risk = Risk.HIGH
    family = "host-namespaces"
    honours_intent = True

    def fix_pod(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if view.get("hostNetwork") is not True:
            return AlreadyCompliant("the pod does not use the node's network")
        edits: list[AnyEdit] = [Remove(view.path("hostNetwork"))]
        notes = ["removed hostNetwork: true from the pod; it gets its own network namespace"]
        if view.get("dnsPolicy") == "ClusterFirstWithHostNet":
            edits.append(Remove(view.path("dnsPolicy")))
            notes.append("removed dnsPolicy: ClusterFirstWithHostNet (the default now applies)")
        notes.append(
            "the pod is no longer reachable on the node's IP and ports; clients that used the "
            "node address need a Service, and CNI/node agents must keep hostNetwork"
        )
        return Fixed(tuple(edits), notes=tuple(notes))
