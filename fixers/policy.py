"""Policy values a fixer needs judgement for: resource defaults, user ids.

Values come from a stated source (the repository's ``.remedy.yaml``, a per-namespace override,
or documented defaults) and each carries that source so the MR can name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fixers.intent import WorkloadIntent
from fixers.runtime_evidence import WorkloadRuntime
from fixers.view import Pods, ServicePorts

BUILT_IN = "built-in default"
"""The source named for a value nobody configured."""


class ResourceDefaults(BaseModel):
    """Default requests/limits, used only when a container has nothing to derive from."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"
    limit_to_request_ratio: float = Field(default=2.0, gt=0)
    """Limits derived from existing requests: limit = request x ratio (memory: at least equal)."""


class Policy(BaseModel):
    """Everything a fixer may need beyond the manifest itself."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    resources: ResourceDefaults = Field(default_factory=ResourceDefaults)
    namespace_resources: Mapping[str, ResourceDefaults] = Field(default_factory=dict)
    run_as_user: int = Field(default=10001, gt=0)
    run_as_group: int = Field(default=10001, gt=0)
    tmp_volume_name: str = "tmp"
    tmp_mount_path: str = "/tmp"
    source: str = BUILT_IN
    """Where the values set here come from; shown in the MR (e.g. '.remedy.yaml')."""

    def source_of(self, name: str) -> str:
        """Where the value of field ``name`` comes from: this policy's source when it sets the
        field, else the built-in default."""
        return self.source if name in self.model_fields_set else BUILT_IN

    def resources_for(self, namespace: str | None) -> tuple[ResourceDefaults, str]:
        """The resource defaults for a namespace, and where they come from."""
        if namespace and namespace in self.namespace_resources:
            return self.namespace_resources[namespace], f"{self.source}, namespace {namespace}"
        return self.resources, self.source_of("resources")


class FixContext(BaseModel):
    """What a fixer knows beyond the finding and the view."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True
    )

    policy: Policy = Field(default_factory=Policy)
    location_kind: str = "manifest"
    """'manifest' or 'helm-values': fixers word their notes accordingly."""
    network_policies: tuple[Mapping[str, Any], ...] = ()
    """NetworkPolicy documents that exist (or are being added) in the workload's namespace."""
    api_accounts: tuple[tuple[str | None, str], ...] = ()
    """(namespace, name) of the ServiceAccounts RoleBindings and ClusterRoleBindings grant API
    access to, gathered with ``workloads`` (none where the location writes policies its own
    way)."""
    services: tuple[ServicePorts, ...] = ()
    """The Services a NetworkPolicy's egress may name (gathered with ``workloads``)."""
    workloads: tuple[Pods, ...] = ()
    """The pods of the workloads a new NetworkPolicy written as proposed could select besides
    the target's (gathered with ``network_policies``; none where the location writes
    policies its own way, as a chart does)."""
    location_path: str = ""
    """Repository-relative file the edits go to: values derived from the workload name it."""
    intent: WorkloadIntent | None = None
    """What the repository says the workload needs (`fixers.intent.classify` with comments);
    None: fixers classify from the view alone."""
    runtime: WorkloadRuntime | None = None
    """What the workload was observed doing (Kubescape profiles, Falco), when evidence was given."""
