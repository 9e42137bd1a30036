"""Our fixers against Kubescape's own rule tests (regolibrary), read in place from the corpus.

For each control we fix, every failing rule-test input (non-empty ``expected.json``) is fixed,
the fix applied, and the fixer must then answer AlreadyCompliant; where Kubescape names
``fixPaths``/``deletePaths``, our edits must touch the same fields (container indices aside).
Cases where we deliberately differ from Kubescape are listed in ``DIFFERENCES`` with the why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixers.model import (
    AlreadyCompliant,
    AnyEdit,
    CreateManifest,
    Finding,
    Fixed,
    NeedsHuman,
    Remove,
    ResourceRef,
)
from fixers.policy import FixContext
from fixers.registry import fixer_for, run_fixer
from fixers.view import ManifestPodView
from tests.conftest import CORPUS
from tests.fixers._support import apply_plain, documents, edits_module

pytestmark = pytest.mark.corpus

TESTS = CORPUS / "manifests" / "regolibrary-rule-tests"

DIFFERENCES: dict[tuple[str, str], str] = {
    # Kubescape flags ephemeral containers; they are added by `kubectl debug`, are not part of
    # the declared spec in cd-config, and we never edit them.
    ("C-0013", "pod-ephemeralcontainer"): "ephemeral containers are not edited",
    ("C-0017", "pod-ephemeralcontainer"): "ephemeral containers are not edited",
    ("C-0046", "pod-ephemeralcontainer"): "ephemeral containers are not edited",
    ("C-0057", "pod-ephemeralcontainer"): "ephemeral containers are not edited",
    # Requests/limits are present but above Kubescape's configured maxima: lowering a value
    # needs the owner's judgement, and we never lower an existing value.
    ("C-0004", "workload-exceeded"): "values above the configured maximum need review",
    ("C-0004", "workload-milli-suffix"): "values above the configured maximum need review",
    ("C-0004", "workload-mixed-unit"): "values above the configured maximum need review",
    ("C-0050", "workload-mixed-unit"): "values above the configured maximum need review",
    # Kubescape's configured floating tags (e.g. a bare major version) are its setting; we fix
    # only 'latest' and untagged images.
    ("C-0075", "pod-configured-floating-tag"): "configured floating tags are not ours to guess",
}

FIELD_DIFFERENCES: dict[tuple[str, str], str] = {
    # Kubescape suggests writing privileged: false next to allowPrivilegeEscalation; unset
    # already means false, and a privileged container makes C-0016 decline (C-0057 fixes it).
    ("C-0016", "securityContext.privileged"): "privileged is false by default",
}


@dataclass(frozen=True)
class RuleCase:
    control: str
    rule: str
    folder: Path

    @property
    def id(self) -> str:
        return f"{self.control}/{self.rule}/{self.folder.name}"


def _rule_dirs() -> dict[str, Path]:
    dirs = {}
    for meta in sorted((TESTS / "rules").glob("*/rule.metadata.json")):
        dirs[json.loads(meta.read_text(encoding="utf-8"))["name"]] = meta.parent
    return dirs


def _cases() -> list[RuleCase]:
    if not TESTS.exists():
        return []
    rules = _rule_dirs()
    found = []
    for control_file in sorted((TESTS / "controls").glob("*.json")):
        control = json.loads(control_file.read_text(encoding="utf-8"))
        if fixer_for(control["controlID"]) is None:
            continue
        for rule in control.get("rulesNames", []):
            if rule not in rules:
                continue
            for folder in sorted((rules[rule] / "test").glob("*")):
                expected = folder / "expected.json"
                if expected.exists() and json.loads(expected.read_text(encoding="utf-8")):
                    found.append(RuleCase(control["controlID"], rule, folder))
    return found


CASES = _cases()


def _flagged(case: RuleCase) -> list[dict[str, Any]]:
    return json.loads((case.folder / "expected.json").read_text(encoding="utf-8"))


def _workloads(case: RuleCase) -> Iterator[tuple[str, int, Any]]:
    for path in sorted((case.folder / "input").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for index, document in enumerate(documents(text)):
            if ManifestPodView.from_document(document) is not None:
                yield text, index, document


def _normal(path: str | tuple[Any, ...]) -> str:
    """``spec.containers[1].x`` and ("spec", "containers", 1, "x") -> ``spec.containers[].x``."""
    if isinstance(path, tuple):
        text = ""
        for step in path:
            text += "[]" if isinstance(step, int) else f".{step}"
        path = text.lstrip(".")
    return re.sub(r"\[\d+\]", "[]", path)


def _field_difference(control: str, path: str) -> bool:
    return any(c == control and path.endswith(f) for c, f in FIELD_DIFFERENCES)


def _covered(wanted: str, edits: list[AnyEdit]) -> bool:
    for edit in edits:
        if isinstance(edit, CreateManifest):
            continue
        have = _normal(edit.path)
        if wanted == have or wanted.startswith(have + ".") or wanted.startswith(have + "["):
            return True
        if have.startswith(wanted + ".") or have.startswith(wanted + "["):
            return True
    return False


@pytest.mark.skipif(not CASES, reason="regolibrary rule tests not present in ../shared/corpus")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fixer_satisfies_kubescape_rule_test(case: RuleCase) -> None:
    fixer = fixer_for(case.control)
    assert fixer is not None
    alerts = _flagged(case)
    flagged = {
        (o.get("kind"), (o.get("metadata") or {}).get("name"))
        for a in alerts
        for o in (a.get("alertObject") or {}).get("k8sApiObjects", [])
    }
    wanted_fix = {
        path
        for a in alerts
        for p in a.get("fixPaths") or []
        if not _field_difference(case.control, path := _normal(p["path"]))
    }
    wanted_delete = {_normal(p) for a in alerts for p in a.get("deletePaths") or []}
    applier = edits_module()
    outcomes: list[str] = []
    all_edits: list[AnyEdit] = []
    for text, index, document in _workloads(case):
        view = ManifestPodView.from_document(document)
        assert view is not None
        if (view.kind, view.name) not in flagged:
            continue
        finding = Finding(
            control_id=case.control,
            resource=ResourceRef(kind=view.kind, name=view.name, namespace=view.namespace),
        )
        result = run_fixer(fixer, view, finding, FixContext())
        if isinstance(result, NeedsHuman):
            assert result.reason
            outcomes.append("declined")
            continue
        if isinstance(result, AlreadyCompliant):
            outcomes.append("compliant")
            continue
        assert isinstance(result, Fixed)
        outcomes.append("fixed")
        doc_edits = [e for e in result.edits if not isinstance(e, CreateManifest)]
        all_edits += doc_edits
        if applier is not None:
            fixed_text = applier.apply_edits(text, doc_edits, index)
            fixed = documents(fixed_text)[index]
            assert fixed == apply_plain(document, doc_edits)
        else:
            fixed = apply_plain(document, doc_edits)
        for created in (e for e in result.edits if isinstance(e, CreateManifest)):
            spec = created.document["spec"]
            assert set(spec["podSelector"]["matchLabels"].items()) <= set(view.labels.items())
            # Kubescape's C-0030 rule passes a pod a policy selects when that policy lists
            # Ingress or Egress in its policyTypes; C-0260 needs only the selection.
            assert {"Ingress", "Egress"} & set(spec["policyTypes"])
        if doc_edits:
            again_view = ManifestPodView.from_document(fixed)
            assert again_view is not None
            again = run_fixer(fixer, again_view, finding, FixContext())
            assert isinstance(again, AlreadyCompliant), f"not compliant after the fix: {again}"

    assert outcomes, f"no flagged workload found in {case.folder}"
    difference = DIFFERENCES.get((case.control, case.folder.name))
    if difference is not None:
        assert "fixed" not in outcomes, f"listed as a difference ({difference}) but now fixed"
        return
    assert "compliant" not in outcomes, "Kubescape flags a workload the fixer calls compliant"
    if "declined" in outcomes:
        return
    missing = {p for p in wanted_fix if not _covered(p, all_edits)}
    assert not missing, f"Kubescape's fixPaths not covered: {sorted(missing)}"
    removed = [e for e in all_edits if isinstance(e, Remove)]
    missing_delete = {p for p in wanted_delete if not _covered(p, list(removed))}
    # deletePaths are Kubescape's bluntest suggestion; a fix that sets the field safe instead
    # (privileged: false) must at least touch the same field.
    missing_delete = {p for p in missing_delete if not _covered(p, all_edits)}
    assert not missing_delete, f"Kubescape's deletePaths not covered: {sorted(missing_delete)}"
