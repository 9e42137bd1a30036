"""Always pull floating ``latest`` images (C-0075).

Kubernetes field: ``containers[].imagePullPolicy``
(https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy).
"""

from __future__ import annotations

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, Finding, Fixed, NeedsHuman, Result, Risk, Set
from fixers.policy import FixContext
from fixers.view import PodView, target_containers


def floating_latest(image: str) -> bool:
    """True for ``nginx``, ``nginx:latest``, ``reg:5000/app:latest``; False with a digest."""
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return True
    return last.rsplit(":", 1)[1] == "latest"


class ImagePullPolicy(Fixer):
    """Set ``imagePullPolicy: Always`` on containers whose image has the ``latest`` tag (or no
    tag), so every node runs the image the tag currently names."""

    controls = ("C-0075",)
    risk = Risk.LOW
    family = "images"

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        edits: list[Set] = []
        changed: list[str] = []
        for container in target_containers(view, finding):
            image = container.get("image")
            if not isinstance(image, str) or not image:
                return NeedsHuman(f"container {container.name} has no literal image to inspect")
            if not floating_latest(image) or container.get("imagePullPolicy") == "Always":
                continue
            edits.append(Set(container.path("imagePullPolicy"), "Always"))
            changed.append(f"{container.name} ({image})")
        if not edits:
            return AlreadyCompliant("no container runs a 'latest' image without pulling it")
        return Fixed(
            tuple(edits),
            notes=(
                f"imagePullPolicy set to Always on {', '.join(changed)}",
                "pods now fail to start when the registry is unreachable; pinning a version "
                "or digest is the better long-term fix",
            ),
        )
