"""Shared steps of the Kustomize plan tests: plan a finding, write its change set, build every
overlay with ``kubectl kustomize`` and compare each overlay's output before and after."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot import regressions
from bot.locate.kustomize import OVERLAYS_META, KustomizeIndex
from bot.model import ChangeSet
from bot.plan import Plan, build_plan
from bot.sources.base import Report
from fixers.edits import load_documents
from fixers.model import AlreadyCompliant, Finding, ResourceRef, Severity, SourceHint
from fixers.policy import FixContext
from fixers.registry import fixer_for, run_fixer
from fixers.view import ManifestPodView


def engine_repo(source: Path, engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``source`` to plan in, with kubectl's engine or kube-remedy's reader."""
    if engine == "reader":
        monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")
    elif shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    shutil.copytree(source, tmp_path / "repo")
    return tmp_path / "repo"


def overlay_finding(
    control: str, overlay: str, namespace: str | None, name: str, container: str | None
) -> Finding:
    """A Checkov finding on a Deployment as ``overlay`` renders it."""
    return Finding(
        control_id=control,
        scanner="checkov",
        severity=Severity.HIGH,
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace=namespace, name=name
        ),
        container=container,
        source=SourceHint(path=overlay),
    )


def plan_of(repo: Path, *findings: Finding) -> Plan:
    return build_plan(Report("checkov", "test", tuple(findings)), repo)


def only_change_set(plan: Plan) -> ChangeSet:
    assert not plan.unfixable, [u.reason for u in plan.unfixable]
    assert len(plan.change_sets) == 1, [cs.key for cs in plan.change_sets]
    return plan.change_sets[0]


def kubectl_build(repo: Path, folder: str) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of one overlay (the test skips where kubectl is missing)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the edited overlays cannot be built")
    proc = subprocess.run(
        [kubectl, "kustomize", str(repo / folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, f"{folder} does not build: {proc.stderr[-400:]}"
    return [d for d in load_documents(proc.stdout) if isinstance(d, dict)]


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old, new) runs of lines that differ between two texts (the rest is byte-identical)."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    pairs = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=old, b=new).get_opcodes():
        if op != "equal":
            pairs.append(("".join(old[a1:a2]), "".join(new[b1:b2])))
    return pairs


def write_and_build(
    repo: Path, cs: ChangeSet, finding: Finding, overlay: str, deployed: str | None = None
) -> dict[str, Any]:
    """Write the change set, build every overlay with kubectl before and after, and check: the
    finding's control passes on its resource in its overlay, no other overlay gets a new
    failure. Returns the finding's resource as the overlay renders it after the fix.
    ``deployed``: the resource's name as the overlay renders it, when a deployment renames it."""
    overlays = KustomizeIndex.build(repo).overlays
    before = {folder: kubectl_build(repo, folder) for folder in overlays}
    for change in cs.files:
        (repo / change.path).parent.mkdir(parents=True, exist_ok=True)
        (repo / change.path).write_text(change.after, encoding="utf-8", newline="")
    after = {folder: kubectl_build(repo, folder) for folder in overlays}
    resource = finding.resource
    wanted = (resource.kind, resource.namespace or "", deployed or resource.name)
    (fixed,) = [d for d in after[overlay] if regressions.identity(d) == wanted]
    view = ManifestPodView.from_document(fixed)
    fixer = fixer_for(finding.control_id)
    assert view is not None and fixer is not None
    # the finding's own container (or workload) now passes its control
    assert isinstance(run_fixer(fixer, view, finding, FixContext()), AlreadyCompliant)
    listed = cs.meta.get(OVERLAYS_META, "").split(", ")
    for folder in overlays:
        assert regressions.new_failures(before[folder], after[folder]) == [], folder
        if (folder or ".") not in listed:  # the MR names every overlay whose output changes
            assert before[folder] == after[folder], folder
    return fixed
