"""Write constraints.txt: every runtime dependency of kube-remedy[cluster] at the version installed
in this virtualenv (the one the test suite ran with), for reproducible images.

    .venv/bin/python scripts/pin-constraints.py
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Runtime dependencies of kube-remedy[cluster], pinned to the versions the test suite ran with.\n"
    "# Used by the Dockerfile (pip install -c constraints.txt); regenerate with scripts/pin-constraints.py.\n"
)


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    """Installed name -> version for ``root[extras]`` and everything it requires."""
    found: dict[str, tuple[str, str, set[str]]] = {}

    def walk(name: str, wanted: tuple[str, ...]) -> None:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            return
        key = _key(name)
        known = found.get(key)
        if known is not None and set(wanted) <= known[2]:
            return
        entry = found.setdefault(key, (dist.metadata["Name"], dist.version, set()))
        entry[2].update(wanted)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in ("", *sorted(entry[2]))
            ):
                walk(req.name, tuple(req.extras))

    walk(root, extras)
    return {name: version for key, (name, version, _) in found.items() if key != _key(root)}


def main() -> None:
    pins = closure("kube-remedy", ("cluster",))
    lines = [
        f"{name}=={version}" for name, version in sorted(pins.items(), key=lambda i: _key(i[0]))
    ]
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote constraints.txt ({len(lines)} pins)")


if __name__ == "__main__":
    main()
