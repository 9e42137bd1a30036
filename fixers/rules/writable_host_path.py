"""Mount hostPath volumes read-only (C-0045).

Kubernetes field: ``containers[].volumeMounts[].readOnly``
(https://kubernetes.io/docs/concepts/storage/volumes/#hostpath).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import PodFixer
from fixers.model import AlreadyCompliant, Fixed, Result, Risk, Set
from fixers.rules._host_path import host_path_mounts
from fixers.view import PodView, target_containers

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class WritableHostPath(PodFixer):
    """Set ``readOnly: true`` on every mount of a hostPath volume that is writable."""

    controls = ("C-0045",)
    risk = Risk.HIGH
    family = "host-path"
    honours_intent = True

    def fix_pod(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        containers = list(target_containers(view, finding))
        edits: list[Set] = []
        notes: list[str] = []
        for container, index, mount, host in host_path_mounts(view, containers):
            if mount.get("readOnly") is True:
                continue
            edits.append(Set(container.path("volumeMounts", index, "readOnly"), True))
            notes.append(
                f"{container.name}: hostPath {host} mounted read-only at {mount.get('mountPath')}"
            )
        if not edits:
            return AlreadyCompliant("every hostPath mount is read-only")
        sockets = sorted(
            {host for _, _, _, host in host_path_mounts(view, containers) if host.endswith(".sock")}
        )
        if sockets:
            # connect() ignores a read-only mount: the API behind the socket stays reachable.
            notes.append(
                f"read-only does not limit what a process can do through {', '.join(sockets)}; "
                "the socket itself must go (C-0048)"
            )
        notes.append(
            "a workload that writes to the node (log shippers' positions, caches, sockets) "
            "will fail with 'read-only file system'; such data belongs in a volume of its own"
        )
        return Fixed(tuple(edits), notes=tuple(notes))
