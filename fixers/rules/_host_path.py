"""Which mounts of a pod spec are hostPath volumes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fixers.view import ContainerView, PodView


def host_path_volumes(view: PodView) -> dict[str, str]:
    """volume name -> host path, for every hostPath volume of the pod."""
    found: dict[str, str] = {}
    for volume in view.get("volumes", default=[]) or []:
        if isinstance(volume, Mapping) and isinstance(volume.get("hostPath"), Mapping):
            found[str(volume.get("name"))] = str(volume["hostPath"].get("path", ""))
    return found


def host_path_mounts(
    view: PodView, containers: list[ContainerView]
) -> Iterator[tuple[ContainerView, int, Mapping[str, Any], str]]:
    """(container, mount index, mount, host path) for each mount of a hostPath volume."""
    volumes = host_path_volumes(view)
    for container in containers:
        for index, mount in enumerate(container.get("volumeMounts", default=[]) or []):
            if isinstance(mount, Mapping) and str(mount.get("name")) in volumes:
                yield container, index, mount, volumes[str(mount["name"])]
