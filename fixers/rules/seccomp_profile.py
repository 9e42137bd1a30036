"""Give containers the runtime's default seccomp profile (C-0055 Linux hardening, and C-0210,
CIS 5.7.2, which wants RuntimeDefault itself).

With runtime evidence (a completed Kubescape profile), RuntimeDefault is set only when every
observed system call is one the default profile allows (`fixers.runtime_evidence.seccomp_check`,
blocked list in ``fixers/data/runtime_default_seccomp.yaml``); otherwise the fix is declined
naming the calls.

Kubernetes field: ``containers[].securityContext.seccompProfile``
(https://kubernetes.io/docs/tutorials/security/seccomp/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import NeedsHuman, Risk, Set
from fixers.runtime_evidence import seccomp_check
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


PRIVILEGED = (
    "{} is privileged: Kubernetes runs a privileged container Unconfined whatever profile "
    "it names (https://kubernetes.io/docs/reference/node/seccomp/), so RuntimeDefault takes "
    "effect only once privileged is dropped"
)


def _profile_type(profile: Any) -> str | None:
    if isinstance(profile, Mapping):
        kind = profile.get("type")
        return str(kind) if kind is not None else None
    return None


class SeccompProfile(ContainerFixer):
    """Set ``seccompProfile: {type: RuntimeDefault}`` on containers that have no seccomp profile
    of their own and inherit none from the pod."""

    controls = ("C-0055", "C-0210")
    risk = Risk.MEDIUM
    family = "security-context"

    compliant = "every container runs with a seccomp profile"
    summary = "seccompProfile RuntimeDefault set on {changed}"
    caveat = (
        "the runtime's default profile blocks rare system calls (e.g. unshare, "
        "keyctl, ptrace); applications that use them fail with EPERM"
    )

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        own = _profile_type(container.get("securityContext", "seccompProfile"))
        effective = own or _profile_type(view.get("securityContext", "seccompProfile"))
        if effective == "Unconfined":
            return NeedsHuman(
                f"container {container.name} asks for an Unconfined seccomp profile on "
                "purpose; decide whether it really needs every system call"
            )
        if effective == "Localhost" and finding.control_id == "C-0210":
            return NeedsHuman(
                f"container {container.name} uses a Localhost seccomp profile, which may be "
                "stricter than RuntimeDefault; keep it and record an exception, or replace "
                "it by hand"
            )
        if effective is not None:
            return None
        path = container.path("securityContext", "seccompProfile")
        if container.get("securityContext", "privileged") is True:
            return ContainerFix(
                (Set(path, {"type": "RuntimeDefault"}),), notes=(PRIVILEGED.format(container.name),)
            )
        return ContainerFix((Set(path, {"type": "RuntimeDefault"}),))

    def closing_notes(
        self, view: PodView, finding: Finding, ctx: FixContext
    ) -> tuple[str, ...] | NeedsHuman:
        # With runtime evidence: RuntimeDefault only when the observed system calls fit it.
        checked = seccomp_check(view, finding, ctx.runtime) if ctx.runtime is not None else None
        if isinstance(checked, NeedsHuman):
            return checked
        return tuple(checked) if checked else (self.caveat,)
