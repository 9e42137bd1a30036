"""Stop containers from running privileged (C-0057).

Kubernetes fields: ``containers[].securityContext.privileged`` and, because Kubescape counts
it as privileged too, ``SYS_ADMIN`` in ``capabilities.add``
(https://kubernetes.io/docs/concepts/security/pod-security-standards/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import AnyEdit, NeedsHuman, Risk, Set
from fixers.rules._capabilities import remove_added
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext

SYS_ADMIN = frozenset({"SYS_ADMIN"})


class PrivilegedContainer(ContainerFixer):
    """Set ``privileged: false`` where a container is privileged and drop ``SYS_ADMIN`` from
    its added capabilities."""

    controls = ("C-0057",)
    risk = Risk.HIGH
    family = "security-context"

    compliant = "no container is privileged or adds SYS_ADMIN"
    caveat = (
        "privileged access is usually there for a reason (device access, mounting, "
        "iptables, CSI/CNI agents); a node agent will stop working - if this is one, close "
        "the merge request and record an exception"
    )
    honours_intent = True

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        edits: list[AnyEdit] = []
        notes: list[str] = []
        if container.get("securityContext", "privileged") is True:
            edits.append(Set(container.path("securityContext", "privileged"), False))
            notes.append(f"{container.name}: privileged set to false")
        removals, _ = remove_added(container, SYS_ADMIN)
        if removals:
            edits += removals
            notes.append(f"{container.name}: no longer adds SYS_ADMIN")
        return ContainerFix(tuple(edits), notes=tuple(notes))
