"""Stop containers from binding ports on the node (C-0044).

Kubernetes field: ``containers[].ports[].hostPort``
(https://kubernetes.io/docs/concepts/configuration/overview/#services).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import NeedsHuman, Remove, Result, Risk
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class HostPort(ContainerFixer):
    """Remove ``hostPort`` from container ports; the containerPort stays."""

    controls = ("C-0044",)
    risk = Risk.HIGH
    family = "host-namespaces"

    compliant = "no container binds a host port"
    caveat = (
        "clients that connected to the node's IP on that port must use a Service "
        "(NodePort or LoadBalancer if they are outside the cluster)"
    )

    def before(self, view: PodView, finding: Finding, ctx: FixContext) -> Result | None:
        if view.get("hostNetwork") is True:
            return NeedsHuman(
                "the pod uses hostNetwork, where every containerPort is a host port anyway; "
                "fix C-0041 first"
            )
        return None

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        edits: list[Remove] = []
        notes: list[str] = []
        for index, port in enumerate(container.get("ports", default=[]) or []):
            if isinstance(port, Mapping) and port.get("hostPort") not in (None, 0):
                edits.append(Remove(container.path("ports", index, "hostPort")))
                notes.append(
                    f"{container.name}: removed hostPort {port['hostPort']} "
                    f"(containerPort {port.get('containerPort')})"
                )
        return ContainerFix(tuple(edits), notes=tuple(notes))
