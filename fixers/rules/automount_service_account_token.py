"""Stop mounting the service account token into pods that do not ask for it (C-0034, and its
CIS twin C-0190).

Kubernetes field: ``spec.automountServiceAccountToken`` of the pod
(https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Fixed, NeedsHuman, Result, Risk, Set
from fixers.runtime_evidence import automount_check
from fixers.view import PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class AutomountServiceAccountToken(Fixer):
    """Set the pod's ``automountServiceAccountToken: false``."""

    controls = ("C-0034", "C-0190")
    risk = Risk.MEDIUM
    family = "service-account"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        current = view.get("automountServiceAccountToken")
        if current is False:
            return AlreadyCompliant("the pod sets automountServiceAccountToken: false")
        # Runtime evidence hook (branch runtime): a pod seen calling the API keeps its token.
        seen = automount_check(ctx.runtime) if ctx.runtime is not None else None
        if isinstance(seen, NeedsHuman):
            return seen
        was = (
            "it was explicitly true: someone may have wanted the token"
            if current is True
            else "it was unset, so the token was mounted by default"
        )
        return Fixed(
            (Set(view.path("automountServiceAccountToken"), False),),
            notes=(
                f"automountServiceAccountToken set to false on the pod ({was})",
                "applications that call the Kubernetes API (operators, controllers, "
                "service-discovery clients) will fail to authenticate; they need the token "
                "mounted explicitly",
                *((seen,) if seen else ()),
            ),
        )
