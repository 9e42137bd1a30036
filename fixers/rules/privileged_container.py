"""Stop containers from running privileged (C-0057).

Kubernetes fields: ``containers[].securityContext.privileged`` and, because Kubescape counts
it as privileged too, ``SYS_ADMIN`` in ``capabilities.add``
(https://kubernetes.io/docs/concepts/security/pod-security-standards/).
"""

from __future__ import annotations

from fixers.base import Fixer
from fixers.intent import declined
from fixers.model import AlreadyCompliant, AnyEdit, Finding, Fixed, Remove, Result, Risk, Set
from fixers.policy import FixContext
from fixers.rules._capabilities import normalise
from fixers.view import PodView, target_containers


class PrivilegedContainer(Fixer):
    """Set ``privileged: false`` where a container is privileged and drop ``SYS_ADMIN`` from
    its added capabilities."""

    controls = ("C-0057",)
    risk = Risk.HIGH
    family = "security-context"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if (no := declined(view, finding, ctx.intent)) is not None:
            return no
        edits: list[AnyEdit] = []
        notes: list[str] = []
        for container in target_containers(view, finding):
            if container.get("securityContext", "privileged") is True:
                edits.append(Set(container.path("securityContext", "privileged"), False))
                notes.append(f"{container.name}: privileged set to false")
            added = container.get("securityContext", "capabilities", "add", default=[]) or []
            drop = (
                [i for i, c in enumerate(added) if normalise(c) == "SYS_ADMIN"]
                if isinstance(added, list)
                else []
            )
            if drop:
                path = container.path("securityContext", "capabilities", "add")
                if len(drop) == len(added):
                    edits.append(Remove(path))
                else:
                    # Highest index first, so the earlier indices stay valid.
                    edits.extend(Remove((*path, i)) for i in reversed(drop))
                notes.append(f"{container.name}: no longer adds SYS_ADMIN")
        if not edits:
            return AlreadyCompliant("no container is privileged or adds SYS_ADMIN")
        notes.append(
            "privileged access is usually there for a reason (device access, mounting, "
            "iptables, CSI/CNI agents); a node agent will stop working - if this is one, close "
            "the merge request and record an exception"
        )
        return Fixed(tuple(edits), notes=tuple(notes))
