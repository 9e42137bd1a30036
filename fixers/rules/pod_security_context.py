"""Give a pod a securityContext of its own (C-0211, CIS 5.7.3 "Apply Security Context to Your
Pods and Containers").

Scanners read C-0211 two ways:

- Checkov (CKV_K8S_29) asks that the pod spec carries a non-empty ``securityContext``; so does
  any finding that names no failing part. The setting every workload can take without knowing
  the application is the runtime's default seccomp profile, set for the whole pod; a
  container's own profile still wins over it.
- Kubescape asks for every part of a hardened context at once: seLinuxOptions, fsGroup,
  supplementalGroups, sysctls and more, which only the owners can choose, plus container
  settings that have controls (and fixers) of their own, and names each failing part as a fix
  path. That reading is declined with the list of what is missing and where each part is fixed.

Kubernetes field: ``spec.securityContext`` (PodSecurityContext,
https://kubernetes.io/docs/tasks/configure-pod-container/security-context/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Fixed, NeedsHuman, Result, Risk, Set
from fixers.view import PodView

OWN_CONTROLS = {
    "runAsNonRoot": "C-0013",
    "runAsUser": "C-0013",
    "allowPrivilegeEscalation": "C-0016",
    "readOnlyRootFilesystem": "C-0017",
    "seccompProfile": "C-0210",
}
"""Parts of Kubescape's C-0211 that other controls check and other fixers fix."""

OWNERS_CHOOSE = (
    "seLinuxOptions",
    "fsGroup",
    "fsGroupChangePolicy",
    "supplementalGroups",
    "sysctls",
    "procMount",
    "capabilities",
)

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext
"""Parts of Kubescape's C-0211 whose values depend on the application and its volumes."""


def _asks_for_every_part(finding: Finding) -> bool:
    """Kubescape's reading: its findings name the failing parts as fix paths (hints);
    Checkov's CKV_K8S_29 names none."""
    return bool(finding.hints)


def _field(path: str) -> str:
    for part in reversed(path.replace("]", "").replace("[", ".").split(".")):
        if part in OWN_CONTROLS or part in OWNERS_CHOOSE:
            return part
    return path


def _compound_reason(finding: Finding) -> str:
    fields = list(dict.fromkeys(_field(h.path) for h in finding.hints))
    elsewhere = [f"{f} ({OWN_CONTROLS[f]})" for f in fields if f in OWN_CONTROLS]
    owners = [f for f in fields if f not in OWN_CONTROLS]
    parts = ["Kubescape's C-0211 passes only when every part of a hardened securityContext is set"]
    if elsewhere:
        parts.append(f"fixed by their own controls: {', '.join(elsewhere)}")
    if owners:
        parts.append(f"values only the workload's owners know: {', '.join(owners)}")
    return "; ".join(parts)


class PodSecurityContext(Fixer):
    """Set ``securityContext.seccompProfile: {type: RuntimeDefault}`` on a pod that has no
    securityContext (or an empty one)."""

    controls = ("C-0211",)
    risk = Risk.MEDIUM
    family = "security-context"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if _asks_for_every_part(finding):
            return NeedsHuman(_compound_reason(finding))
        current = view.get("securityContext")
        if isinstance(current, Mapping) and current:
            return AlreadyCompliant("the pod sets a securityContext of its own")
        if view.get("os", "name") == "windows":
            return NeedsHuman(
                "the pod runs on Windows, where seccomp does not apply; set "
                "securityContext.windowsOptions (e.g. runAsUserName) as the image needs"
            )
        return Fixed(
            (Set(view.path("securityContext", "seccompProfile"), {"type": "RuntimeDefault"}),),
            notes=(
                "pod securityContext added: seccompProfile RuntimeDefault for every container "
                "that does not choose its own",
                "the runtime's default profile blocks rare system calls (e.g. unshare, "
                "keyctl, ptrace); applications that use them fail with EPERM",
            ),
        )
