"""Reproducible installs: every runtime dependency is pinned in constraints.txt, the pins satisfy
pyproject's ranges, and the scanners CI installs are the versions the mapping was checked against."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[_key(name)] = version
    return pins


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [*project["dependencies"], *project["optional-dependencies"]["cluster"]]
    pins = _pins()
    for line in runtime:
        req = Requirement(line)
        assert _key(req.name) in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[_key(req.name)]), f"{req.name}=={pins[_key(req.name)]}"


def test_test_tools_are_not_pinned_into_the_image() -> None:
    assert not {"pytest", "ruff", "mypy", "dulwich"} & set(_pins())


def test_live_cluster_client_is_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(Requirement(d).name == "kubernetes" for d in project["dependencies"])
    assert "cluster" in project["optional-dependencies"]


def test_scanners_are_pinned() -> None:
    script = (ROOT / "scripts" / "setup-scanners.sh").read_text()
    assert re.search(r"^CHECKOV_VERSION=\d+\.\d+\.\d+$", script, re.M)
    assert '"checkov==$CHECKOV_VERSION"' in script
