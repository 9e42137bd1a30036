"""Name the containers whose image is ``latest`` or untagged (C-9005, Checkov CKV_K8S_14,
Trivy KSV013).

Kubernetes field: ``containers[].image``
(https://kubernetes.io/docs/concepts/containers/images/#image-names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, NeedsHuman, Result, Risk
from fixers.rules._images import floating_latest, literal_image
from fixers.view import PodView, target_containers

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class ImageTag(Fixer):
    """Decline with the exact hint: which container, which image, what to write. The version
    to pin is the owners' choice (the bot does not query registries)."""

    controls = ("C-9005",)
    risk = Risk.MEDIUM
    family = "images"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        floating = []
        names = []
        for container in target_containers(view, finding):
            image = literal_image(container)
            if isinstance(image, NeedsHuman):
                return image
            if floating_latest(image):
                floating.append(f"{container.name} ({image})")
                names.append(image.removesuffix(":latest"))
        if not floating:
            return AlreadyCompliant("every image has a version tag or a digest")
        return NeedsHuman(
            f"pin a version: {', '.join(floating)} runs whatever 'latest' is; write "
            f"{' and '.join(names)} with the version tag you tested (name:version) or its "
            "digest (name@sha256:...)"
        )
