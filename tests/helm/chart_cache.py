"""Build chart caches for the remote-chart tests from the fixture worker chart."""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path

FIXTURES = Path(__file__).parent / "charts"


def cached_worker(folder: Path, version: str, *, archive: bool) -> Path:
    """The fixture worker chart at ``version`` in ``folder``: a Helm-style archive
    ``worker-<version>.tgz``, or an untarred ``worker-<version>/worker`` directory (what
    ``helm pull --untar -d worker-<version>`` makes)."""
    build = folder / f".build-{version}"
    chart = build / "worker"
    shutil.copytree(FIXTURES / "worker", chart)
    meta = chart / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", f"version: {version}", meta.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    if archive:
        out = folder / f"worker-{version}.tgz"
        with tarfile.open(out, "w:gz") as tar:
            tar.add(chart, arcname="worker")
    else:
        out = folder / f"worker-{version}" / "worker"
        out.parent.mkdir()
        shutil.move(chart, out)
    shutil.rmtree(build)
    return out


def tree_digest(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (the cache must stay as it was)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


SHOP = "https://charts.example.com/shop"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def flux_repo(tmp_path: Path, version: str, spec_extra: str) -> Path:
    """A cd-config with the worker chart from `SHOP` deployed by a Flux HelmRelease (release
    ``shop``, namespace ``shop``) at ``version``; ``spec_extra``: more of its spec."""
    repo = tmp_path / "cd-config"
    write(
        repo / "apps" / "worker" / "repository.yaml",
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\n"
        f"metadata:\n  name: shop\n  namespace: shop\nspec:\n  url: {SHOP}\n",
    )
    write(
        repo / "apps" / "worker" / "release.yaml",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
        "metadata:\n  name: worker\n  namespace: shop\nspec:\n  releaseName: shop\n"
        f"  chart:\n    spec:\n      chart: worker\n      version: '{version}'\n"
        "      sourceRef: {kind: HelmRepository, name: shop}\n" + spec_extra,
    )
    return repo
