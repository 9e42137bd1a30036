"""Contract properties every fixer keeps, whatever the case: purity, and a view that cannot
place a field becomes a NeedsHuman answer."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from fixers.model import AnyEdit, CreateManifest, Fixed, NeedsHuman, YamlPath
from fixers.registry import fixer_for, run_fixer
from fixers.view import FieldNotExposed, ManifestContainer, ManifestPodView
from tests.fixers._support import Case, documents, load_cases

CASES = load_cases()
FIXED = [c for c in CASES if c.has("after.yaml")]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_does_not_mutate_its_input(case: Case) -> None:
    document = documents(case.text("before.yaml"))[case.document_index]
    pristine = copy.deepcopy(document)
    view = ManifestPodView.from_document(document)
    assert view is not None
    fixer = fixer_for(case.finding.control_id)
    assert fixer is not None
    first = run_fixer(fixer, view, case.finding, case.context())
    assert document == pristine
    assert run_fixer(fixer, view, case.finding, case.context()) == first, "plan is not pure"


@dataclass(frozen=True)
class _ClosedContainer:
    """A container whose location exposes no field (like a chart without values keys)."""

    inner: ManifestContainer

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def init(self) -> bool:
        return self.inner.init

    @property
    def ephemeral(self) -> bool:
        return self.inner.ephemeral

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        return self.inner.get(*field_path, default=default)

    def path(self, *field_path: str | int) -> YamlPath:
        raise FieldNotExposed(".".join(map(str, field_path)), "the chart has no values key")


@dataclass(frozen=True)
class _ClosedPod:
    inner: ManifestPodView
    containers: tuple[_ClosedContainer, ...]

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def namespace(self) -> str | None:
        return self.inner.namespace

    @property
    def labels(self) -> Any:
        return self.inner.labels

    @property
    def annotations(self) -> Any:
        return self.inner.annotations

    @property
    def selector(self) -> Any:
        return self.inner.selector

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        return self.inner.get(*field_path, default=default)

    def path(self, *field_path: str | int) -> YamlPath:
        raise FieldNotExposed(".".join(map(str, field_path)), "the chart has no values key")

    def prerequisites(self, edits: Sequence[AnyEdit]) -> tuple[AnyEdit, ...]:
        return ()


@pytest.mark.parametrize("case", FIXED, ids=[c.id for c in FIXED])
def test_field_not_exposed_becomes_needs_human(case: Case) -> None:
    document = documents(case.text("before.yaml"))[case.document_index]
    view = ManifestPodView.from_document(document)
    assert view is not None
    closed = _ClosedPod(view, tuple(_ClosedContainer(c) for c in view.containers))
    fixer = fixer_for(case.finding.control_id)
    assert fixer is not None
    result = run_fixer(fixer, closed, case.finding, case.context())
    if isinstance(result, Fixed):
        # Only a fixer that writes no document field (a new manifest) may still succeed.
        assert all(isinstance(e, CreateManifest) for e in result.edits)
    else:
        assert isinstance(result, NeedsHuman)
        assert "no place to set" in result.reason
