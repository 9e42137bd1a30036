"""Helpers shared by the fixer tests: load a case, apply edits to plain data."""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic import TypeAdapter

from fixers.model import AnyEdit, AppendUnique, CreateManifest, Ensure, Finding, Remove, Set
from fixers.policy import FixContext

CASES = Path(__file__).resolve().parent / "cases"


def edits_module() -> ModuleType | None:
    """``fixers.edits`` (the round-trip applier) when it exists in this tree."""
    try:
        return importlib.import_module("fixers.edits")
    except ModuleNotFoundError:
        return None


@dataclass(frozen=True)
class Case:
    fixer: str
    situation: str
    folder: Path
    finding: Finding
    document_index: int

    @property
    def id(self) -> str:
        return f"{self.fixer}/{self.situation}"

    def text(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")

    def has(self, name: str) -> bool:
        return (self.folder / name).exists()

    def context(self) -> FixContext:
        """The case's ``context.json`` (policy values), else the documented defaults."""
        if self.has("context.json"):
            return FixContext.model_validate_json(self.text("context.json"))
        return FixContext()


def load_cases() -> list[Case]:
    cases = []
    for folder in sorted(p for p in CASES.glob("*/*") if p.is_dir()):
        raw = json.loads((folder / "finding.json").read_text(encoding="utf-8"))
        index = int(raw.pop("document_index", 0))
        cases.append(
            Case(
                fixer=folder.parent.name,
                situation=folder.name,
                folder=folder,
                finding=TypeAdapter(Finding).validate_python(raw),
                document_index=index,
            )
        )
    return cases


def documents(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text)]


def apply_plain(document: Any, edits: Sequence[AnyEdit]) -> Any:
    """Apply edits to a plain (PyYAML) copy of a document: the semantic reference that the
    byte-level applier must agree with."""
    data = copy.deepcopy(document)
    for edit in edits:
        if isinstance(edit, CreateManifest):
            continue
        *parents, last = edit.path
        node = data
        for step, following in zip(parents, [*parents[1:], last], strict=True):
            if isinstance(step, int):
                node = node[step]
                continue
            if step not in node or node[step] is None:
                if isinstance(edit, Remove):
                    node = None
                    break
                node[step] = [] if isinstance(following, int) else {}
            node = node[step]
        if node is None:
            continue
        if isinstance(edit, Set):
            node[last] = copy.deepcopy(edit.value)
        elif isinstance(edit, Ensure):
            if isinstance(node, dict) and last not in node:
                node[last] = copy.deepcopy(edit.value)
        elif isinstance(edit, Remove):
            if isinstance(node, dict):
                node.pop(last, None)
            elif isinstance(last, int) and last < len(node):
                del node[last]
        elif isinstance(edit, AppendUnique):
            items = node.get(last) if isinstance(node, dict) else node[last]
            if items is None:
                items = []
                node[last] = items
            value = copy.deepcopy(edit.value)
            if edit.key is not None:
                present = any(
                    isinstance(i, dict) and i.get(edit.key) == value.get(edit.key) for i in items
                )
            else:
                present = value in items
            if not present:
                items.append(value)
    return data
