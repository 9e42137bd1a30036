"""Every fixer on every workload of real third-party manifests (read in place from the corpus):
no crash, every fix applies byte-exactly, re-parses, and leaves the workload compliant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fixers.model import AlreadyCompliant, CreateManifest, Finding, Fixed, NeedsHuman, ResourceRef
from fixers.policy import FixContext
from fixers.registry import by_control, run_fixer
from fixers.view import ManifestPodView
from tests.conftest import corpus_path
from tests.fixers._support import edits_module

pytestmark = pytest.mark.corpus

SETS = ("kubernetes-examples", "microservices-demo", "kubescape-online-boutique")


def _files() -> list[Path]:
    files: list[Path] = []
    for name in SETS:
        root = corpus_path("manifests", name)
        files += sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))
    return files


def _documents(text: str) -> list[tuple[str, object]]:
    """(text, parsed) of each non-empty document of a multi-document file."""
    found = []
    for chunk in re.split(r"(?m)^---[^\n]*\n", text):
        document = yaml.safe_load(chunk)
        if document is not None:
            found.append((chunk, document))
    return found


def test_every_fixer_on_real_manifests() -> None:
    edits = edits_module()
    if edits is None:
        pytest.skip("fixers.edits (the applier) is not in this tree")
    counts = {"fixed": 0, "declined": 0, "compliant": 0}
    crashes: list[str] = []
    for path in _files():
        try:
            chunks = _documents(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue  # kubescape-online-boutique ships one deliberately invalid file
        # Each document is edited on its own text: a 35-document bundle is not re-parsed per fix.
        for index, (text, document) in enumerate(chunks):
            view = ManifestPodView.from_document(document)
            if view is None:
                continue
            for control, fixer in sorted(by_control().items()):
                finding = Finding(
                    control_id=control,
                    resource=ResourceRef(kind=view.kind, name=view.name, namespace=view.namespace),
                )
                where = f"{path.name}[{index}] {view.kind}/{view.name} {control}"
                result = run_fixer(fixer, view, finding, FixContext())
                if isinstance(result, NeedsHuman):
                    if "could not read this resource" in result.reason:
                        crashes.append(f"{where}: {result.reason}")
                    counts["declined"] += 1
                    continue
                if isinstance(result, AlreadyCompliant):
                    counts["compliant"] += 1
                    continue
                assert isinstance(result, Fixed)
                counts["fixed"] += 1
                doc_edits = [e for e in result.edits if not isinstance(e, CreateManifest)]
                if not doc_edits:
                    continue
                fixed = yaml.safe_load(edits.apply_edits(text, doc_edits, 0))
                fixed_view = ManifestPodView.from_document(fixed)
                assert fixed_view is not None, where
                again = run_fixer(fixer, fixed_view, finding, FixContext())
                assert isinstance(again, AlreadyCompliant), f"{where}: {again}"
    assert crashes == []
    assert counts["fixed"] > 50, counts
    print(f"real manifests: {counts}")
