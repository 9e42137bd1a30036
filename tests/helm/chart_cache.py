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
