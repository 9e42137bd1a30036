"""Shared steps of the Helm locator tests: find failing controls, fix through values, verify."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.locate.base import FileOverlay
from bot.locate.helm import HelmIndex, HelmTarget, locate_helm
from bot.locate.helm_render import RenderCache, RenderedDoc
from fixers.model import AlreadyCompliant, Finding, Fixed, ResourceRef, Result
from fixers.policy import FixContext
from fixers.registry import fixer_for, run_fixer
from fixers.view import ManifestPodView

CONTROLS = ("C-0016", "C-0017", "C-0013", "C-0034", "C-0004", "C-0050", "C-0046", "C-0055")
CTX = FixContext(location_kind="helm-values")


def failing_controls(document: Mapping[str, Any]) -> list[str]:
    """The controls (with a fixer) that the rendered workload fails."""
    view = ManifestPodView.from_document(document)
    assert view is not None
    failing = []
    for control in CONTROLS:
        fixer = fixer_for(control)
        if fixer is None:
            continue
        finding = finding_for(control, view.kind, view.name, view.namespace)
        if not isinstance(run_fixer(fixer, view, finding, CTX), AlreadyCompliant):
            failing.append(control)
    return failing


def finding_for(
    control: str, kind: str, name: str, namespace: str | None = None, chart: str | None = None
) -> Finding:
    return Finding(
        control_id=control,
        resource=ResourceRef(kind=kind, name=name, namespace=namespace),
        source={"chart_path": chart},
    )


@dataclass
class Outcome:
    target: HelmTarget
    result: Result
    overlay: FileOverlay
    before: list[RenderedDoc]
    after: list[RenderedDoc]
    noise: set[tuple[str, tuple[Any, ...]]]
    """Leaves that differ between two renders of the same values (random passwords, names)."""

    def diffs(self) -> dict[str, tuple[list[str], list[str]]]:
        """path -> (removed lines, added lines) of every changed file."""
        out = {}
        for change in self.overlay.changes():
            removed, added = [], []
            before = (change.before or "").splitlines()
            for line in difflib.ndiff(before, change.after.splitlines()):
                if line.startswith("- "):
                    removed.append(line[2:])
                elif line.startswith("+ "):
                    added.append(line[2:])
            out[change.path] = (removed, added)
        return out

    def rendered_changes(self) -> set[tuple[str, tuple[Any, ...]]]:
        """(resource, leaf path) of every rendered leaf that differs before/after."""
        return _leaf_diff(self.before, self.after) - self.noise


def locate(repo: Path, finding: Finding, index: HelmIndex | None = None) -> HelmTarget:
    target = locate_helm(finding, repo, index or HelmIndex.build(repo))
    assert not isinstance(target, str), target
    return target


def fix_and_verify(repo: Path, finding: Finding, index: HelmIndex | None = None) -> Outcome:
    """Locate, plan with the real fixer on the values view, write, re-render and re-check."""
    target = locate(repo, finding, index)
    fixer = fixer_for(finding.control_id)
    assert fixer is not None
    result = run_fixer(fixer, target.view, finding, CTX)
    assert isinstance(result, Fixed), result
    overlay = FileOverlay(repo)
    before = target.render_all(overlay)
    target.write(result.edits + target.view.prerequisites(result.edits), overlay)
    view = target.reread(overlay)
    assert not isinstance(view, str), view
    again = run_fixer(fixer, view, finding, CTX)
    assert isinstance(again, AlreadyCompliant), again
    # The control passes on the whole rendered output, not only on the re-read view.
    for doc in target.render_all(overlay):
        if (doc.kind, doc.name) == (finding.resource.kind, finding.resource.name):
            assert finding.control_id not in failing_controls(doc.document)
    # The run's render cache answers the same values with the same output: render afresh.
    dep = target.deployment
    fresh = RenderCache(target.index.renderer).docs(
        target.chart_dir, dep.render_values(FileOverlay(repo)), dep.release, dep.namespace
    )
    noise = _leaf_diff(before, fresh)
    return Outcome(target, result, overlay, before, target.render_all(overlay), noise)


def _leaves(node: Any, prefix: tuple[Any, ...] = ()) -> Iterable[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, key))
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from _leaves(value, (*prefix, index))
    else:
        yield prefix, node


def _leaf_diff(before: list[RenderedDoc], after: list[RenderedDoc]) -> set[tuple[str, tuple]]:
    def flat(docs: list[RenderedDoc]) -> dict[tuple[str, tuple], Any]:
        out = {}
        for doc in docs:
            ident = f"{doc.kind}/{doc.name}"
            for path, value in _leaves(doc.document):
                out[(ident, path)] = value
        return out

    a, b = flat(before), flat(after)
    return {key for key in a.keys() | b.keys() if a.get(key, ...) != b.get(key, ...)}
