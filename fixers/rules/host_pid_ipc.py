"""Stop pods from sharing the node's process and IPC namespaces (C-0038).

Kubernetes fields: ``spec.hostPID`` and ``spec.hostIPC`` of the pod
(https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import PodFixer
from fixers.model import AlreadyCompliant, Fixed, Remove, Result, Risk
from fixers.view import PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class HostPidIpc(PodFixer):
    """Remove ``hostPID: true`` and ``hostIPC: true`` (the default, false, applies)."""

    controls = ("C-0038",)
    risk = Risk.HIGH
    family = "host-namespaces"
    honours_intent = True

    def fix_pod(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        removed = [f for f in ("hostPID", "hostIPC") if view.get(f) is True]
        if not removed:
            return AlreadyCompliant("the pod shares neither the node's PID nor IPC namespace")
        return Fixed(
            tuple(Remove(view.path(f)) for f in removed),
            notes=(
                f"removed {' and '.join(f + ': true' for f in removed)} from the pod",
                "monitoring agents, debuggers and anything that signals or inspects host "
                "processes or uses host shared memory will stop working",
            ),
        )
