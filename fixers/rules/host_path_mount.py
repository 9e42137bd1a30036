"""Explain hostPath volumes instead of removing them (C-0048).

Kubernetes field: ``spec.volumes[].hostPath``
(https://kubernetes.io/docs/concepts/storage/volumes/#hostpath).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import PodFixer
from fixers.model import AlreadyCompliant, NeedsHuman, Result, Risk
from fixers.rules._host_path import host_path_volumes
from fixers.view import PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class HostPathMount(PodFixer):
    """Declines: replacing a hostPath volume means choosing where the data lives (a PVC, an
    emptyDir, a ConfigMap), which only the owner can decide."""

    controls = ("C-0048",)
    risk = Risk.HIGH
    family = "host-path"
    honours_intent = True

    def fix_pod(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        volumes = host_path_volumes(view)
        if not volumes:
            return AlreadyCompliant("the pod has no hostPath volume")
        listed = ", ".join(f"{name} ({path})" for name, path in sorted(volumes.items()))
        return NeedsHuman(
            f"hostPath volumes {listed} need a decision on where the data should live "
            "(PersistentVolumeClaim, emptyDir, ConfigMap, or an exception for node agents); "
            "removing them would lose data or break the workload"
        )
