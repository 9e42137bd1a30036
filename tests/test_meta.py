"""Conventions the codebase keeps, checked by reading it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fixers_never_imports_bot() -> None:
    offenders = []
    for path in (ROOT / "fixers").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "bot" or n.startswith("bot.")]
    assert offenders == []


def test_only_the_gitlab_forge_imports_python_gitlab() -> None:
    offenders = []
    for path in list((ROOT / "bot").rglob("*.py")) + list((ROOT / "fixers").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() == "bot/forge/gitlab.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(
                a.name.split(".")[0] == "gitlab" for a in node.names
            ):
                offenders.append(str(path))
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gitlab":
                offenders.append(str(path))
    assert offenders == []
