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

from fixers.model import (
    AlreadyCompliant,
    AnyEdit,
    AppendUnique,
    CreateManifest,
    Ensure,
    Finding,
    Fixed,
    NeedsHuman,
    Remove,
    Set,
)
from fixers.policy import FixContext
from fixers.registry import fixer_for, run_fixer
from fixers.view import ManifestPodView

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


def load_cases(root: Path = CASES) -> list[Case]:
    """Every ``<fixer>/<situation>/`` case folder below ``root``."""
    cases = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
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


def _view(document: object) -> ManifestPodView:
    view = ManifestPodView.from_document(document)
    assert view is not None, "before.yaml document is not a workload"
    return view


def check_case(case: Case) -> None:
    """The registry's fixer for the case's control gives the case's outcome (after.yaml,
    reason.txt, created/ or a no-op) and is idempotent on its own output."""
    fixer = fixer_for(case.finding.control_id)
    assert fixer is not None and fixer.name == case.fixer, (
        f"{case.finding.control_id} is handled by {fixer and fixer.name}, not {case.fixer}"
    )
    before = case.text("before.yaml")
    document = documents(before)[case.document_index]
    result = run_fixer(fixer, _view(document), case.finding, case.context())

    if case.has("reason.txt"):
        assert isinstance(result, NeedsHuman), result
        assert case.text("reason.txt").strip() in result.reason
        return
    if not case.has("after.yaml") and not case.has("created"):
        assert isinstance(result, AlreadyCompliant), result
        assert result.reason
        return

    assert isinstance(result, Fixed), result
    assert result.notes, "a fix must say what it changed"
    if case.has("context.json") and "policy" in json.loads(case.text("context.json")):
        source = case.context().policy.source
        assert any(source in v for v in result.values_used), result.values_used
    doc_edits = [e for e in result.edits if not isinstance(e, CreateManifest)]
    created = {e.name: e for e in result.edits if isinstance(e, CreateManifest)}
    _check_created(case, created)

    expected = case.text("after.yaml") if case.has("after.yaml") else before
    fixed_document = apply_plain(document, doc_edits)
    assert fixed_document == documents(expected)[case.document_index]
    edits = edits_module()
    if edits is not None:
        assert edits.apply_edits(before, doc_edits, case.document_index) == expected

    again = run_fixer(fixer, _view(fixed_document), case.finding, case.context())
    if created and not doc_edits:
        # A created manifest is not visible in the workload's view: the fixer proposes the
        # same file again, which writes nothing new.
        assert again == result
    else:
        assert isinstance(again, AlreadyCompliant), f"not idempotent: {again}"


def _check_created(case: Case, created: dict[str, CreateManifest]) -> None:
    folder = case.folder / "created"
    expected = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yaml"))}
    assert sorted(created) == sorted(expected)
    edits = edits_module()
    for name, text in expected.items():
        assert dict(created[name].document) == documents(text)[0]
        if edits is not None:
            assert edits.render_manifest(created[name].document, created[name].comment) == text
