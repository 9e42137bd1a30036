"""Remove dangerous Linux capabilities from ``capabilities.add`` (C-0046).

Kubernetes field: ``containers[].securityContext.capabilities.add``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/#set-capabilities-for-a-container).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import NeedsHuman, Result, Risk
from fixers.rules._capabilities import INSECURE, remove_added
from fixers.runtime_evidence import capabilities_fix
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class InsecureCapabilities(ContainerFixer):
    """Drop the insecure capabilities (Kubescape's list: SYS_ADMIN, NET_ADMIN, NET_RAW, ...)
    that a container adds; other added capabilities are kept as they are."""

    controls = ("C-0046",)
    risk = Risk.HIGH  # the workload added them on purpose; without them it may not work
    family = "security-context"

    compliant = "no container adds an insecure capability"
    caveat = (
        "software that really needs these capabilities (VPN, packet capture, kernel "
        "tuning) will get 'operation not permitted'; such workloads need an exception"
    )
    honours_intent = True

    def before(self, view: PodView, finding: Finding, ctx: FixContext) -> Result | None:
        # Runtime evidence hook (branch runtime): drop ALL, add back what was observed.
        if ctx.runtime is None:
            return None
        return capabilities_fix(view, finding, ctx.runtime, INSECURE)

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        edits, removed = remove_added(container, INSECURE)
        if not edits:
            return None
        listed = ", ".join(str(c) for c in removed)
        return ContainerFix(tuple(edits), notes=(f"{container.name}: no longer adds {listed}",))
