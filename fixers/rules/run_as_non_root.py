"""Run containers as a non-root user and group (C-0013).

Kubernetes fields: ``securityContext.runAsNonRoot``, ``runAsUser`` and ``runAsGroup`` of the
container, falling back to the pod's
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fixers.base import ContainerFix, ContainerFixer
from fixers.intent import data_mounts, serves_stateful
from fixers.model import NeedsHuman, Risk, Set
from fixers.view import ContainerView, PodView, persistent_mounts

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


def _effective(view: PodView, container: ContainerView, field: str) -> Any:
    """The container's value, else the pod's (how the kubelet resolves it)."""
    value = container.get("securityContext", field)
    if value is None:
        value = view.get("securityContext", field)
    return value


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


_FLAG_ONLY = re.compile(r"^(?:AVD-)?KSV-?0*12$|^require-run-as-nonroot(?:/|$)", re.IGNORECASE)
"""Checks that pass on ``runAsNonRoot: true`` alone, whatever the user id: Trivy's KSV012 and
Kyverno's require-run-as-nonroot (Kubescape and Checkov accept a non-zero runAsUser)."""


def _flag_check(finding: Finding) -> str | None:
    """The finding's check id that passes on ``runAsNonRoot: true`` alone, if any."""
    return next((str(i) for i in finding.scanner_ids if _FLAG_ONLY.match(str(i))), None)


def _server_data(container: ContainerView) -> str | None:
    """Why a database's data volume stops a new user id: its official image, started as
    root, gives the data directory to its own user, and the server refuses one another user
    owns (PostgreSQL)."""
    found = serves_stateful(container)
    if found is None or not found[0].owns_data:
        return None
    entry, _ = found
    data = data_mounts(container, entry)
    if not data:
        return None
    return (
        f"{container.name} runs {entry.name} with its data on a volume at {data[0]}: its image, "
        "started as root, gives that directory to its own user; as another user id it could "
        "neither own nor initialise it: run it as the image's own user (with fsGroup), or "
        f"waive the finding ({entry.owns_data})"
    )


class RunAsNonRoot(ContainerFixer):
    """Make each container run as non-root: where no non-zero user is set (and runAsNonRoot
    does not already vouch for the image), ``runAsNonRoot: true`` with ``runAsUser`` from the
    policy; ``runAsGroup`` from the policy where none (or 0) is set. Non-zero ids are kept;
    for a scanner that checks the flag alone, a non-root user also gets ``runAsNonRoot: true``.
    A container that keeps data on persistent volumes is left to a person: a new user id
    could not write what the old one wrote there."""

    controls = ("C-0013",)
    risk = Risk.HIGH
    family = "security-context"

    compliant = "every container runs as a non-root user and a non-zero group"
    caveat = (
        "images built to run as root (writing to /var/run, binding ports below 1024, "
        "chown at start-up) will fail to start; check the pods come up before merging"
    )
    honours_intent = True

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        policy = ctx.policy
        edits: list[Set] = []
        changed: list[str] = []
        used: list[str] = []
        user = _effective(view, container, "runAsUser")
        declared_non_root = _effective(view, container, "runAsNonRoot") is True
        # Kubescape's rule: a non-zero user, or runAsNonRoot with no user id (the image's
        # own non-root USER is then trusted and checked by the kubelet).
        user_ok = _positive(user) or (declared_non_root and user is None)
        check = _flag_check(finding)
        if user_ok and not declared_non_root and check:
            # the user id already is no root: the flag only has the kubelet check it
            edits.append(Set(container.path("securityContext", "runAsNonRoot"), True))
            changed.append(f"runAsNonRoot: true (it runs as user {user}; {check} checks the flag)")
        if not user_ok:
            kept = persistent_mounts(view, container)
            if kept:
                return NeedsHuman(
                    f"{container.name} keeps data on persistent volumes ({', '.join(kept)}) "
                    f"that its current user wrote; a new user id ({policy.run_as_user}) could "
                    "not write it: set runAsUser to the id that owns the data (with fsGroup), "
                    "or waive the finding"
                )
            data = _server_data(container)
            if data:
                return NeedsHuman(data)
            if not declared_non_root:
                edits.append(Set(container.path("securityContext", "runAsNonRoot"), True))
                changed.append("runAsNonRoot: true")
            edits.append(Set(container.path("securityContext", "runAsUser"), policy.run_as_user))
            changed.append(f"runAsUser: {policy.run_as_user}")
            used.append(
                f"{container.name} runAsUser {policy.run_as_user}: {policy.source_of('run_as_user')}"
            )
        if not _positive(_effective(view, container, "runAsGroup")):
            edits.append(Set(container.path("securityContext", "runAsGroup"), policy.run_as_group))
            changed.append(f"runAsGroup: {policy.run_as_group}")
            used.append(
                f"{container.name} runAsGroup {policy.run_as_group}: {policy.source_of('run_as_group')}"
            )
        if not changed:
            return None
        was = " (it was set to run as root, user 0)" if user == 0 else ""
        return ContainerFix(
            tuple(edits),
            notes=(f"{container.name}: set {', '.join(changed)}{was}",),
            values_used=tuple(used),
        )
