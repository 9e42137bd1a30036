"""Always pull images referenced by a mutable tag (C-9004, Checkov CKV_K8S_15).

Kubernetes field: ``containers[].imagePullPolicy``
(https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy).
"""

from __future__ import annotations

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Finding, Fixed, NeedsHuman, Result, Risk, Set
from fixers.policy import FixContext
from fixers.view import PodView, target_containers


class MutableTagPullPolicy(Fixer):
    """Set ``imagePullPolicy: Always`` on containers whose image is referenced by a tag (a tag
    can move; a digest cannot), so every node runs what the tag names now."""

    controls = ("C-9004",)
    risk = Risk.LOW
    family = "images"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        edits: list[Set] = []
        changed: list[str] = []
        for container in target_containers(view, finding):
            image = container.get("image")
            if not isinstance(image, str) or not image.strip():
                return NeedsHuman(f"container {container.name} has no literal image to inspect")
            if "@" in image or container.get("imagePullPolicy") == "Always":
                continue
            edits.append(Set(container.path("imagePullPolicy"), "Always"))
            changed.append(f"{container.name} ({image})")
        if not edits:
            return AlreadyCompliant("every container pulls always or uses a digest")
        return Fixed(
            tuple(edits),
            notes=(
                f"imagePullPolicy set to Always on {', '.join(changed)}",
                "each pod start asks the registry; pinning a digest avoids the pulls",
            ),
        )
