"""Name the Secrets a container reads into environment variables (C-0207, Checkov CKV_K8S_35).

Kubernetes fields: ``containers[].env[].valueFrom.secretKeyRef``, ``envFrom[].secretRef``
(https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, NeedsHuman, Result, Risk
from fixers.view import ContainerView, PodView, target_containers

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


def secret_variables(container: ContainerView) -> list[str]:
    """``VAR <- secret/key`` for each env entry, ``secret/*`` for each envFrom, from Secrets."""
    found = []
    env: Any = container.get("env", default=[]) or []
    for item in env if isinstance(env, list) else []:
        ref = item.get("valueFrom", {}).get("secretKeyRef") if isinstance(item, Mapping) else None
        if isinstance(ref, Mapping):
            found.append(f"{item.get('name')} <- {ref.get('name')}/{ref.get('key')}")
    env_from: Any = container.get("envFrom", default=[]) or []
    for item in env_from if isinstance(env_from, list) else []:
        ref = item.get("secretRef") if isinstance(item, Mapping) else None
        if isinstance(ref, Mapping):
            found.append(f"all keys of {ref.get('name')}")
    return found


class SecretEnvVars(Fixer):
    """Decline with the exact hint: each variable and the Secret key it comes from, and how
    to mount it instead. Only the application's owners can make it read a file."""

    controls = ("C-0207",)
    risk = Risk.MEDIUM
    family = "secrets"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        hints = []
        for container in target_containers(view, finding):
            found = secret_variables(container)
            if found:
                hints.append(f"{container.name}: {'; '.join(found)}")
        if not hints:
            return AlreadyCompliant("no container reads a Secret into its environment")
        return NeedsHuman(
            "secrets in environment variables ("
            + " | ".join(hints)
            + "): mount each Secret as a volume (secret.secretName, readOnly) and change the "
            "application to read the file, then remove the variable"
        )
