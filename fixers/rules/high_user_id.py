"""Run the pod as a user id of 10000 or more (C-9003, Checkov CKV_K8S_40).

Kubernetes field: ``spec.securityContext.runAsUser`` (PodSecurityContext,
https://kubernetes.io/docs/tasks/configure-pod-container/security-context/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Fixed, NeedsHuman, Result, Risk, Set
from fixers.view import PodView, persistent_mounts

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext

HIGH_UID = 10000


def _uid(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class HighUserId(Fixer):
    """Where neither the pod nor any container sets ``runAsUser``, set the pod's to the
    repository's ``run_as_user`` policy (the same id the non-root fix uses). A low id someone
    set on purpose (file ownership in the image, volumes) is never changed: declined, as is
    a pod that keeps data on persistent volumes (its files belong to the user that wrote
    them)."""

    controls = ("C-9003",)
    risk = Risk.HIGH  # files in the image or on volumes may be owned by another user
    family = "security-context"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if view.get("hostUsers") is False:
            return AlreadyCompliant("the pod runs in its own user namespace (hostUsers: false)")
        pod = _uid(view.get("securityContext", "runAsUser"))
        containers = [c for c in view.containers if not c.init and not c.ephemeral]
        own = {c.name: _uid(c.get("securityContext", "runAsUser")) for c in containers}
        effective = {name: uid if uid is not None else pod for name, uid in own.items()}
        low = {name: uid for name, uid in effective.items() if uid is not None and uid < HIGH_UID}
        if not low and all(uid is not None for uid in effective.values()):
            return AlreadyCompliant(f"every container runs as a user id of {HIGH_UID} or more")
        if low:
            listed = ", ".join(f"{name} runs as {uid}" for name, uid in sorted(low.items()))
            return NeedsHuman(
                f"{listed}, set on purpose: the image's files or volumes may belong to that "
                f"user; choose an id of {HIGH_UID} or more the image supports, or waive"
            )
        policy = ctx.policy
        kept = [path for c in containers for path in persistent_mounts(view, c)]
        if kept:
            return NeedsHuman(
                f"the pod keeps data on persistent volumes ({', '.join(kept)}) that its "
                f"current user wrote; a new user id ({policy.run_as_user}) could not write it: "
                "set runAsUser to the id that owns the data (with fsGroup), or waive the finding"
            )
        if policy.run_as_user < HIGH_UID:
            return NeedsHuman(
                f"the run_as_user policy ({policy.run_as_user}, {policy.source}) is below "
                f"{HIGH_UID}; raise it in .remedy.yaml to fix this"
            )
        return Fixed(
            (Set(view.path("securityContext", "runAsUser"), policy.run_as_user),),
            notes=(
                f"pod runs as user {policy.run_as_user} (no user id was set)",
                "an image that expects its own USER (file ownership, home directory) may fail "
                "to start or to write; check the pods come up before merging",
            ),
            values_used=(f"runAsUser {policy.run_as_user}: {policy.source}",),
        )
