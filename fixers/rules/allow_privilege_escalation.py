"""Set ``allowPrivilegeEscalation: false`` on every container (C-0016).

Kubernetes field: ``containers[].securityContext.allowPrivilegeEscalation``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import NeedsHuman, Risk, Set
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class AllowPrivilegeEscalation(ContainerFixer):
    """Forbid setuid binaries and the like from gaining more privileges than the process has."""

    controls = ("C-0016",)
    risk = Risk.LOW
    family = "security-context"
    compliant = "every container sets allowPrivilegeEscalation: false"
    summary = "allowPrivilegeEscalation set to false on {changed}"

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        if container.get("securityContext", "allowPrivilegeEscalation") is False:
            return None
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
        return ContainerFix(
            (Set(container.path("securityContext", "allowPrivilegeEscalation"), False),)
        )
