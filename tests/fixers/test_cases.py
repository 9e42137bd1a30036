"""Every fixer against its named before/after cases (STYLE.md rule 4).

A case folder holds ``finding.json``, ``before.yaml``, optionally ``context.json`` (policy
values, as `FixContext` JSON) and either ``after.yaml`` (the fixer
must produce exactly these bytes), ``reason.txt`` (it must decline with this text), ``created/``
(the manifests it must create) or nothing (it must be a no-op). Every fix is re-run on its own
output and must then answer AlreadyCompliant.
"""

from __future__ import annotations

import pytest

from fixers.model import AlreadyCompliant, CreateManifest, Fixed, NeedsHuman
from fixers.registry import fixer_for, run_fixer
from fixers.view import ManifestPodView
from tests.fixers._support import Case, apply_plain, documents, edits_module, load_cases

CASES = load_cases()


def _view(document: object) -> ManifestPodView:
    view = ManifestPodView.from_document(document)
    assert view is not None, "before.yaml document is not a workload"
    return view


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
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
    if case.has("context.json"):
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


def test_every_case_folder_is_complete() -> None:
    for case in CASES:
        assert case.has("before.yaml"), case.id
        outcomes = [case.has("after.yaml") or case.has("created"), case.has("reason.txt")]
        assert outcomes.count(True) <= 1, f"{case.id}: after.yaml and reason.txt both present"
