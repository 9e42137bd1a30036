"""Explain missing readiness and liveness probes instead of inventing them (C-0018, C-0056).

Kubernetes fields: ``containers[].readinessProbe`` and ``containers[].livenessProbe``
(https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, NeedsHuman, Result, Risk
from fixers.view import PodView, target_containers

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext

PROBES = {"C-0018": "readinessProbe", "C-0056": "livenessProbe"}


class MissingProbes(Fixer):
    """Declines: a probe needs to know the application's health endpoint, port and timing; a
    guessed probe restarts healthy pods or routes traffic to broken ones."""

    controls = tuple(PROBES)
    risk = Risk.MEDIUM
    family = "probes"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        probe = PROBES[finding.control_id]
        # Init containers run to completion and may not have probes.
        missing = [
            c for c in target_containers(view, finding) if not c.init and c.get(probe) is None
        ]
        if not missing:
            return AlreadyCompliant(f"every container defines a {probe}")
        names = ", ".join(c.name for c in missing)
        ports = sorted(
            {
                str(p.get("containerPort"))
                for c in missing
                for p in (c.get("ports", default=[]) or [])
                if isinstance(p, Mapping) and p.get("containerPort") is not None
            }
        )
        hint = f" (declared ports: {', '.join(ports)})" if ports else ""
        return NeedsHuman(
            f"{probe} missing on {names}: a probe needs the application's health endpoint, "
            f"port and timings{hint}, which only its owners know; add an httpGet, tcpSocket or "
            "exec probe by hand"
        )
