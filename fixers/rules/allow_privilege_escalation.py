"""Set ``allowPrivilegeEscalation: false`` on every container (C-0016).

Kubernetes field: ``containers[].securityContext.allowPrivilegeEscalation``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/).
"""

from __future__ import annotations

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Finding, Fixed, NeedsHuman, Result, Risk, Set
from fixers.policy import FixContext
from fixers.view import PodView, target_containers


class AllowPrivilegeEscalation(Fixer):
    """Forbid setuid binaries and the like from gaining more privileges than the process has."""

    controls = ("C-0016",)
    risk = Risk.LOW
    family = "security-context"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        edits = []
        changed = []
        for container in target_containers(view, finding):
            if container.get("securityContext", "allowPrivilegeEscalation") is False:
                continue
            if container.get("securityContext", "privileged") is True:
                return NeedsHuman(
                    f"container {container.name} is privileged; Kubernetes rejects "
                    "allowPrivilegeEscalation: false together with privileged: true "
                    "(fix C-0057 first)"
                )
            caps = container.get("securityContext", "capabilities", "add", default=[]) or []
            if "SYS_ADMIN" in caps or "CAP_SYS_ADMIN" in caps:
                return NeedsHuman(
                    f"container {container.name} adds CAP_SYS_ADMIN, which Kubernetes does not "
                    "allow together with allowPrivilegeEscalation: false"
                )
            edits.append(Set(container.path("securityContext", "allowPrivilegeEscalation"), False))
            changed.append(container.name)
        if not edits:
            return AlreadyCompliant("every container sets allowPrivilegeEscalation: false")
        return Fixed(
            tuple(edits),
            notes=(f"allowPrivilegeEscalation set to false on {', '.join(changed)}",),
        )
