"""Stop containers from binding ports on the node (C-0044).

Kubernetes field: ``containers[].ports[].hostPort``
(https://kubernetes.io/docs/concepts/configuration/overview/#services).
"""

from __future__ import annotations

from collections.abc import Mapping

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Finding, Fixed, NeedsHuman, Remove, Result, Risk
from fixers.policy import FixContext
from fixers.view import PodView, target_containers


class HostPort(Fixer):
    """Remove ``hostPort`` from container ports; the containerPort stays."""

    controls = ("C-0044",)
    risk = Risk.HIGH
    family = "host-namespaces"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if view.get("hostNetwork") is True:
            return NeedsHuman(
                "the pod uses hostNetwork, where every containerPort is a host port anyway; "
                "fix C-0041 first"
            )
        edits: list[Remove] = []
        notes: list[str] = []
        for container in target_containers(view, finding):
            ports = container.get("ports", default=[]) or []
            for index, port in enumerate(ports):
                if isinstance(port, Mapping) and port.get("hostPort") not in (None, 0):
                    edits.append(Remove(container.path("ports", index, "hostPort")))
                    notes.append(
                        f"{container.name}: removed hostPort {port['hostPort']} "
                        f"(containerPort {port.get('containerPort')})"
                    )
        if not edits:
            return AlreadyCompliant("no container binds a host port")
        notes.append(
            "clients that connected to the node's IP on that port must use a Service "
            "(NodePort or LoadBalancer if they are outside the cluster)"
        )
        return Fixed(tuple(edits), notes=tuple(notes))
