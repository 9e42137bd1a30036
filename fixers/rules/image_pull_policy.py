"""Always pull floating ``latest`` images (C-0075).

Kubernetes field: ``containers[].imagePullPolicy``
(https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy).
"""

from __future__ import annotations

from fixers.model import Risk
from fixers.rules._images import AlwaysPull, floating_latest


class ImagePullPolicy(AlwaysPull):
    """Set ``imagePullPolicy: Always`` on containers whose image has the ``latest`` tag (or no
    tag), so every node runs the image the tag currently names."""

    controls = ("C-0075",)
    risk = Risk.LOW
    family = "images"
    compliant = "no container runs a 'latest' image without pulling it"
    caveat = (
        "pods now fail to start when the registry is unreachable; pinning a version "
        "or digest is the better long-term fix"
    )

    def moves(self, image: str) -> bool:
        return floating_latest(image)
