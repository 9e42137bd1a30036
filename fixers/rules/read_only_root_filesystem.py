"""Make container root filesystems read-only, with a writable /tmp (C-0017).

Kubernetes fields: ``containers[].securityContext.readOnlyRootFilesystem``, an ``emptyDir``
entry in ``volumes`` and a ``volumeMounts`` entry
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/,
https://kubernetes.io/docs/concepts/storage/volumes/#emptydir).
"""

from __future__ import annotations

from collections.abc import Mapping

from fixers.base import Fixer
from fixers.model import (
    AlreadyCompliant,
    AnyEdit,
    AppendUnique,
    Finding,
    Fixed,
    NeedsHuman,
    Result,
    Risk,
    Set,
)
from fixers.policy import FixContext
from fixers.runtime_evidence import read_only_fix
from fixers.view import PodView, target_containers


class ReadOnlyRootFilesystem(Fixer):
    """Set ``readOnlyRootFilesystem: true`` and mount an ``emptyDir`` at /tmp so that programs
    that need scratch space keep working."""

    controls = ("C-0017",)
    risk = Risk.HIGH
    family = "security-context"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        # Runtime evidence hook (branch runtime): mounts where the containers were seen writing.
        if ctx.runtime is not None:
            observed = read_only_fix(view, finding, ctx.runtime)
            if observed is not None:
                return observed
        policy = ctx.policy
        name, mount_path = policy.tmp_volume_name, policy.tmp_mount_path
        volumes = view.get("volumes", default=[]) or []
        existing = next(
            (v for v in volumes if isinstance(v, Mapping) and v.get("name") == name), None
        )
        if existing is not None and "emptyDir" not in existing:
            return NeedsHuman(
                f"the pod already has a volume named {name!r} that is not an emptyDir; "
                "choose where the container may write before making its filesystem read-only"
            )
        edits: list[AnyEdit] = []
        changed: list[str] = []
        mounted: list[str] = []
        for container in target_containers(view, finding):
            if container.get("securityContext", "readOnlyRootFilesystem") is True:
                continue
            edits.append(Set(container.path("securityContext", "readOnlyRootFilesystem"), True))
            changed.append(container.name)
            mounts = container.get("volumeMounts", default=[]) or []
            if any(isinstance(m, Mapping) and m.get("mountPath") == mount_path for m in mounts):
                continue
            edits.append(
                AppendUnique(
                    container.path("volumeMounts"),
                    {"name": name, "mountPath": mount_path},
                    key="name",
                )
            )
            mounted.append(container.name)
        if not edits:
            return AlreadyCompliant("every container sets readOnlyRootFilesystem: true")
        notes = [f"readOnlyRootFilesystem set to true on {', '.join(changed)}"]
        if mounted:
            edits.append(
                AppendUnique(
                    view.path("volumes"),
                    {"name": name, "emptyDir": {}},
                    key="name",
                    comment="writable scratch space: the root filesystem is read-only",
                )
            )
            notes.append(
                f"an emptyDir volume {name!r} is mounted at {mount_path} on {', '.join(mounted)} "
                "so temporary files still work"
            )
        notes.append(
            "an application that writes elsewhere (caches, pid files, uploads) will fail with "
            "'read-only file system'; mount an emptyDir there too"
        )
        return Fixed(
            tuple(edits),
            notes=tuple(notes),
            values_used=(f"scratch volume {name!r} at {mount_path}: {policy.source}",),
        )
