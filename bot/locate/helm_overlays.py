"""Flux HelmReleases as Kustomize overlays deploy them.

A HelmRelease kept in a kustomize base is deployed by the overlays that build it: each overlay
may patch its ``spec.values``, its name or its namespace. Read from its file alone, the release
says what the base says, and a fix verified on that would not reach an overlay whose patch
sets the same values. So every HelmRelease an overlay builds becomes its own deployment, with
the values and names the overlay renders; its inline values stay writable only where no patch
of that overlay touches ``spec.values`` (a write to the base file then is a write to what the
overlay deploys). A base that only other kustomizations include is not a deployment itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from bot.errors import RepositoryError
from bot.locate.base import FileOverlay
from bot.locate.gitops import HelmApp, deployed_paths, flux_app
from bot.locate.kustomize_build import KustomizeReader, kustomization_dirs

_VALUES = ("spec", "values")


def overlay_releases(root: Path, apps: Sequence[HelmApp]) -> list[HelmApp]:
    """``apps`` with each HelmRelease that kustomize overlays build replaced by one app per
    deploying overlay (see the module docstring)."""
    releases = {(a.manifest, a.document_index): a for a in apps if a.kind == "HelmRelease"}
    folders = kustomization_dirs(root) if releases else []
    if not folders:
        return list(apps)
    reader = KustomizeReader(FileOverlay(root))
    own_file: dict[str, str] = {}
    reads: dict[str, set[str]] = {}
    built: dict[str, list[HelmApp]] = {}
    replaced: set[tuple[str, int]] = set()
    for folder in folders:
        try:
            own_file[folder], kust = reader.kustomization(folder)
            if kust.get("kind") == "Component":
                continue
            reads[folder] = reader.files(folder)
            rendered = reader.build(folder)
        except RepositoryError:
            continue
        for res in rendered:
            base = releases.get((res.origin, res.index))
            if res.kind != "HelmRelease" or base is None:
                continue
            app = flux_app(res.origin, res.index, res.doc)
            if app is None:
                continue
            patches = [
                t.source.file
                for t in res.touches
                if t.path[: len(_VALUES)] == _VALUES or _VALUES[: len(t.path)] == t.path
            ]
            built.setdefault(folder, []).append(
                dataclasses.replace(
                    app,
                    name=f"{app.name} (kustomize overlay {folder or '.'})",
                    inline_path=None if patches else app.inline_path,
                    read_only_why=f"the overlay's values patch {patches[0]}"
                    if patches
                    else app.read_only_why,
                )
            )
            replaced.add((res.origin, res.index))
    # a base other kustomizations include is not deployed on its own (unless Flux or Argo CD
    # points at it)
    included = {
        f for f in built if any(own_file[f] in files for g, files in reads.items() if g != f)
    }
    deploying = set(deployed_paths(root)) | (set(built) - included)
    out = [a for a in apps if (a.manifest, a.document_index) not in replaced]
    for folder in sorted(built):
        if folder in deploying:
            out.extend(built[folder])
    return out
