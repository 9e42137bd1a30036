"""Give containers CPU and memory requests and limits (C-0004, C-0009, C-0050, C-0270, C-0271).

Kubernetes fields: ``containers[].resources.requests`` and ``containers[].resources.limits``
(https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fixers.base import ContainerFix, ContainerFixer
from fixers.intent import intent_of, scales_with_cluster, serves_stateful
from fixers.model import NeedsHuman, Risk, Set
from fixers.rules._quantity import BadQuantity, at_least, scale
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext, ResourceDefaults

# Which (section, resource) fields each control requires, from Kubescape's rules.
REQUIRED: Mapping[str, tuple[tuple[str, str], ...]] = {
    "C-0004": (("requests", "memory"), ("limits", "memory")),
    "C-0009": (("limits", "cpu"), ("limits", "memory")),
    "C-0050": (("requests", "cpu"), ("limits", "cpu")),
    "C-0270": (("limits", "cpu"),),
    "C-0271": (("limits", "memory"),),
}


class ResourceLimits(ContainerFixer):
    """Fill in missing requests/limits: limits from requests x ratio, requests from limits,
    policy defaults only when a container has neither. Existing values are never changed."""

    controls = tuple(REQUIRED)
    risk = Risk.MEDIUM
    family = "resources"

    def compliant_reason(self, finding: Finding) -> str:
        fields = ", ".join(f"{s}.{r}" for s, r in REQUIRED[finding.control_id])
        return f"every container already sets resources {fields}"

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        defaults, source = ctx.policy.resources_for(view.namespace)
        where = f" in {ctx.location_path}" if ctx.location_path else ""
        try:
            planned = _plan_container(
                container, REQUIRED[finding.control_id], defaults, source, where
            )
        except BadQuantity as exc:
            return NeedsHuman(f"container {container.name}: {exc}; fix the value by hand")
        scales = scales_with_cluster(container.get("image"))
        limits = [f"{s}.{r}" for s, r, _, _ in planned if s == "limits"]
        if scales is not None and limits and not container.init:
            return NeedsHuman(
                f"container {container.name} runs {scales.name}, whose usage grows with the "
                f"cluster, not with its requests: a limit derived for {', '.join(limits)} would "
                f"throttle or kill it under load; recommendation: {scales.recommendation} "
                f"({scales.source})"
            )
        guessed = [
            f"{s}.{r}" for s, r, _, why in planned if why.startswith(("default ", "capped at"))
        ]
        if guessed and (stateful := _stateful(view, container, ctx)) is not None:
            return NeedsHuman(
                f"container {container.name} {stateful}: a generic default for "
                f"{', '.join(guessed)} would starve or kill it; set requests from its measured "
                "usage and the limits follow from them"
            )
        return ContainerFix(
            tuple(Set(container.path("resources", s, r), value) for s, r, value, _ in planned),
            notes=tuple(
                f"{container.name}: resources.{s}.{r} set to {value}" for s, r, value, _ in planned
            ),
            values_used=tuple(
                f"{container.name} {r} {s[:-1]} {value}: {why}" for s, r, value, why in planned
            ),
        )


def _stateful(view: PodView, container: ContainerView, ctx: FixContext) -> str | None:
    """Why a container is a database, a stateful server or a workload whose purpose the
    evidence names (a node agent, a CNI plugin: killed for memory, it stops its work on every
    node), with a sizing recommendation; or None."""
    found = serves_stateful(container)
    if found is not None:
        entry, how = found
        known = f" ({how})" if how else ""
        return f"runs {entry.name}{known}; recommendation: {entry.recommendation} ({entry.source})"
    purpose = intent_of(view, ctx.intent).purpose
    if purpose and not container.init:
        if view.kind == "DaemonSet":
            return (
                f"belongs to {purpose}; recommendation: size it from its usage on the busiest "
                "node (kubectl top pod) before limiting it: killed for memory or throttled, it "
                "stops doing its work there"
            )
        # a controller Deployment of a node agent (a CSI driver's provisioner): one per
        # cluster, not per node
        return (
            f"belongs to {purpose}; recommendation: size it from its usage under a busy "
            "cluster's load (kubectl top pod) before limiting it: killed for memory or "
            "throttled, it stops doing its work for the whole cluster"
        )
    if view.kind == "StatefulSet" and not container.init:
        return (
            "belongs to a StatefulSet; recommendation: size it from its usage over a busy week "
            "(kubectl top pod, or a VerticalPodAutoscaler in recommendation mode)"
        )
    return None


def _plan_container(
    container: ContainerView,
    required: tuple[tuple[str, str], ...],
    defaults: ResourceDefaults,
    source: str,
    where: str = "",
) -> list[tuple[str, str, str, str]]:
    """(section, resource, value, where the value comes from) for each missing field."""
    planned: list[tuple[str, str, str, str]] = []
    ratio = max(defaults.limit_to_request_ratio, 1.0)
    # Limits first, so a default request can be capped at a limit set in the same pass.
    for section, resource in sorted(required, key=lambda f: f[0] != "limits"):
        if container.get("resources", section, resource) is not None:
            continue
        request = container.get("resources", "requests", resource)
        limit = container.get("resources", "limits", resource)
        default_request = getattr(defaults, f"{resource}_request")
        default_limit = getattr(defaults, f"{resource}_limit")
        if section == "limits":
            if request is not None:
                value = scale(request, ratio, fractions=resource == "cpu")
                why = f"existing request {request}{where} x {ratio:g}"
            else:
                value = default_limit
                why = f"default limit from {source}"
        else:
            if limit is not None:
                # What Kubernetes would assume anyway: an unset request defaults to the limit.
                value = str(limit)
                why = f"equal to the existing limit {limit}{where} (the Kubernetes default)"
            else:
                value = default_request
                why = f"default request from {source}"
                planned_limit = next(
                    (v for s, r, v, _ in planned if s == "limits" and r == resource), None
                )
                if planned_limit is not None and not at_least(planned_limit, value):
                    value = planned_limit
                    why = f"capped at the new limit {planned_limit}"
        planned.append((section, resource, value, why))
    return planned
