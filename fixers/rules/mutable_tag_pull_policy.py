"""Always pull images referenced by a mutable tag (C-9004, Checkov CKV_K8S_15).

Kubernetes field: ``containers[].imagePullPolicy``
(https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy).
"""

from __future__ import annotations

from fixers.model import Risk
from fixers.rules._images import AlwaysPull


class MutableTagPullPolicy(AlwaysPull):
    """Set ``imagePullPolicy: Always`` on containers whose image is referenced by a tag (a tag
    can move; a digest cannot), so every node runs what the tag names now."""

    controls = ("C-9004",)
    risk = Risk.LOW
    family = "images"
    compliant = "every container pulls always or uses a digest"
    caveat = "each pod start asks the registry; pinning a digest avoids the pulls"

    def moves(self, image: str) -> bool:
        return "@" not in image
