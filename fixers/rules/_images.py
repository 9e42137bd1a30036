"""Image references, shared by the image fixers."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fixers.base import ContainerFix, ContainerFixer
from fixers.model import NeedsHuman, Set
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


def floating_latest(image: str) -> bool:
    """True for ``nginx``, ``nginx:latest``, ``reg:5000/app:latest``; False with a digest."""
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return True
    return last.rsplit(":", 1)[1] == "latest"


def literal_image(container: ContainerView) -> str | NeedsHuman:
    """The container's image reference, or NeedsHuman when it has no literal one."""
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        return NeedsHuman(f"container {container.name} has no literal image to inspect")
    return image


class AlwaysPull(ContainerFixer):
    """Set ``imagePullPolicy: Always`` on the containers whose image reference can move
    (`moves`), so every node runs what the reference names now."""

    summary: ClassVar[str] = "imagePullPolicy set to Always on {changed}"

    def moves(self, image: str) -> bool:
        raise NotImplementedError

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        image = literal_image(container)
        if isinstance(image, NeedsHuman):
            return image
        if not self.moves(image) or container.get("imagePullPolicy") == "Always":
            return None
        return ContainerFix(
            (Set(container.path("imagePullPolicy"), "Always"),),
            label=f"{container.name} ({image})",
        )
