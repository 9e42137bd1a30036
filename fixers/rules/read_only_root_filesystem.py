"""Make container root filesystems read-only, with a writable /tmp (C-0017).

Kubernetes fields: ``containers[].securityContext.readOnlyRootFilesystem``, an ``emptyDir``
entry in ``volumes`` and a ``volumeMounts`` entry
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/,
https://kubernetes.io/docs/concepts/storage/volumes/#emptydir).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fixers.base import PodFixer
from fixers.intent import container_writable, intent_of
from fixers.model import (
    AlreadyCompliant,
    AnyEdit,
    AppendUnique,
    Fixed,
    NeedsHuman,
    Result,
    Risk,
    Set,
)
from fixers.runtime_evidence import read_only_fix
from fixers.view import PodView, target_containers

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class ReadOnlyRootFilesystem(PodFixer):
    """Set ``readOnlyRootFilesystem: true`` and mount an ``emptyDir`` at /tmp, and at every
    path the container is known to write (its command, a reason comment, a well-known image's
    run-time paths), so that the program keeps working."""

    controls = ("C-0017",)
    risk = Risk.HIGH
    family = "security-context"
    honours_intent = True

    def fix_pod(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        # Runtime evidence hook (branch runtime): mounts where the containers were seen writing.
        if ctx.runtime is not None:
            observed = read_only_fix(view, finding, ctx.runtime)
            if observed is not None:
                return observed
        policy = ctx.policy
        intent = intent_of(view, ctx.intent)
        volumes = [v for v in view.get("volumes", default=[]) or [] if isinstance(v, Mapping)]
        by_name = {str(v.get("name")): v for v in volumes}
        edits: list[AnyEdit] = []
        changed: list[str] = []
        notes: list[str] = []
        used: list[str] = []
        new_volumes: dict[str, str] = {}
        unknown: list[str] = []
        for container in target_containers(view, finding):
            if container.get("securityContext", "readOnlyRootFilesystem") is True:
                continue
            image_paths, image_source = container_writable(container)
            wanted = [(policy.tmp_mount_path, policy.source_of("tmp_mount_path"))]
            wanted += [(p, image_source) for p in image_paths]
            wanted += [(p, f"{container.name} writes it") for p in intent.writes(container.name)]
            mounts = [
                m for m in container.get("volumeMounts", default=[]) or [] if isinstance(m, Mapping)
            ]
            taken = {str(m.get("mountPath", "")).rstrip("/") for m in mounts}
            names = {str(m.get("name")) for m in mounts}
            plan: list[tuple[str, str, str]] = []
            for path, why in wanted:
                directory = _directory(path)
                if _covered(directory, taken) or any(d == directory for d, _, _ in plan):
                    continue
                name = (
                    policy.tmp_volume_name
                    if directory == policy.tmp_mount_path
                    else _name(directory)
                )
                existing = by_name.get(name)
                if existing is not None and "emptyDir" not in existing:
                    return NeedsHuman(
                        f"the pod already has a volume named {name!r} that is not an emptyDir; "
                        f"choose where {container.name} may write {directory} before making its "
                        "filesystem read-only"
                    )
                if name in names:
                    continue
                plan.append((directory, name, why))
            edits.append(Set(container.path("securityContext", "readOnlyRootFilesystem"), True))
            changed.append(container.name)
            for directory, name, why in plan:
                edits.append(
                    AppendUnique(
                        container.path("volumeMounts"),
                        {"name": name, "mountPath": directory},
                        key="name",
                    )
                )
                new_volumes.setdefault(name, directory)
                notes.append(f"{container.name}: an emptyDir {name!r} is mounted at {directory}")
                used.append(f"writable path {directory} on {container.name}: {why}")
            if not image_paths and not intent.writes(container.name):
                unknown.append(container.name)
        if not edits:
            return AlreadyCompliant("every container sets readOnlyRootFilesystem: true")
        for name, directory in new_volumes.items():
            if name in by_name:
                continue
            edits.append(
                AppendUnique(
                    view.path("volumes"),
                    {"name": name, "emptyDir": {}},
                    key="name",
                    comment=(
                        "writable scratch space: the root filesystem is read-only"
                        if directory == policy.tmp_mount_path
                        else f"writable {directory}: the root filesystem is read-only"
                    ),
                )
            )
        notes.insert(0, f"readOnlyRootFilesystem set to true on {', '.join(changed)}")
        if unknown:
            notes.append(
                f"nothing in the repository says where {', '.join(unknown)} writes besides "
                f"{policy.tmp_mount_path}: an application that writes elsewhere (caches, pid "
                "files, uploads) will fail with 'read-only file system'; mount an emptyDir there"
            )
        return Fixed(tuple(edits), notes=tuple(notes), values_used=tuple(dict.fromkeys(used)))


def _directory(path: str) -> str:
    """The directory to mount for a written path: a file's parent (``/work/config.json`` ->
    ``/work``), a directory itself."""
    path = path.rstrip("/") or "/"
    last = path.rsplit("/", 1)[-1]
    if "." in last.strip(".") and path.count("/") > 1:
        return path.rsplit("/", 1)[0]
    return path


def _covered(path: str, mounted: set[str]) -> bool:
    return any(path == m or path.startswith(m + "/") for m in mounted if m)


def _name(directory: str) -> str:
    """A DNS-1123 volume name for a directory (``/var/cache/nginx`` -> ``var-cache-nginx``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", directory.lower()).strip("-") or "root"
    return slug[:63].rstrip("-")
