"""Remove dangerous Linux capabilities from ``capabilities.add`` (C-0046).

Kubernetes field: ``containers[].securityContext.capabilities.add``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/#set-capabilities-for-a-container).
"""

from __future__ import annotations

from fixers.base import Fixer
from fixers.intent import declined
from fixers.model import AlreadyCompliant, AnyEdit, Finding, Fixed, Remove, Result, Risk
from fixers.policy import FixContext
from fixers.rules._capabilities import INSECURE, normalise
from fixers.runtime_evidence import capabilities_fix
from fixers.view import PodView, target_containers


class InsecureCapabilities(Fixer):
    """Drop the insecure capabilities (Kubescape's list: SYS_ADMIN, NET_ADMIN, NET_RAW, ...)
    that a container adds; other added capabilities are kept as they are."""

    controls = ("C-0046",)
    risk = Risk.HIGH  # the workload added them on purpose; without them it may not work
    family = "security-context"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if (no := declined(view, finding, ctx.intent)) is not None:
            return no
        # Runtime evidence hook (branch runtime): drop ALL, add back what was observed.
        if ctx.runtime is not None:
            observed = capabilities_fix(view, finding, ctx.runtime, INSECURE)
            if observed is not None:
                return observed
        edits: list[AnyEdit] = []
        notes: list[str] = []
        for container in target_containers(view, finding):
            added = container.get("securityContext", "capabilities", "add", default=[]) or []
            if not isinstance(added, list):
                continue
            drop = [i for i, c in enumerate(added) if normalise(c) in INSECURE]
            if not drop:
                continue
            path = container.path("securityContext", "capabilities", "add")
            if len(drop) == len(added):
                edits.append(Remove(path))
            else:
                # Highest index first, so the earlier indices stay valid.
                edits.extend(Remove((*path, i)) for i in reversed(drop))
            removed = ", ".join(str(added[i]) for i in drop)
            notes.append(f"{container.name}: no longer adds {removed}")
        if not edits:
            return AlreadyCompliant("no container adds an insecure capability")
        notes.append(
            "software that really needs these capabilities (VPN, packet capture, kernel "
            "tuning) will get 'operation not permitted'; such workloads need an exception"
        )
        return Fixed(tuple(edits), notes=tuple(notes))
