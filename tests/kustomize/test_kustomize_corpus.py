"""Real Kustomize repositories, scanned as their overlays render them: Checkov before and after
kube-remedy's change sets are merged (scripts/checkov_before_after.py's loop)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot import controls as catalog
from bot import scanner_map
from bot.locate.kustomize import KustomizeIndex
from bot.sources import parse_report
from fixers.registry import fixer_for
from tests.conftest import corpus_path
from tests.scanners import require_checkov
from tests.test_corpus_trust import GROWN_ON_PURPOSE

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "checkov_before_after.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("checkov_before_after", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_overlays(repo: Path, out: Path) -> dict[str, str]:
    """Every overlay of ``repo`` built with ``kubectl kustomize`` into ``out/<overlay>/``;
    returns the overlays that do not build, with kubectl's error."""
    broken = {}
    for folder in KustomizeIndex.build(repo).overlays:
        proc = subprocess.run(
            ["kubectl", "kustomize", str(repo / folder)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            broken[folder] = proc.stderr.strip()[-300:]
            continue
        target = out / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / "rendered.yaml").write_text(proc.stdout, encoding="utf-8")
    return broken


def fixable(check_id: str) -> bool:
    """A Checkov check whose control has a fixer and which the catalog does not call "not
    fixable in git" (probes, the default namespace, image digests need a person)."""
    entry = scanner_map.entries("checkov").get(check_id)
    if entry is None or fixer_for(str(entry["control"])) is None:
        return False
    control = catalog.get(str(entry["control"]))
    return control is None or control.unfixable_reason is None


@pytest.fixture(autouse=True)
def planned_with_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans build with kube-remedy's reader: the loop plans up to 45 times per repository, and
    ``kubectl kustomize`` for every trial state would take minutes (tests/kustomize/
    test_kustomize_plan.py runs the planner on both engines). The overlays are rendered for
    Checkov, before and after, by ``kubectl kustomize``."""
    monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")


def before_after(name: str, tmp_path: Path) -> tuple[Counter[str], Counter[str], Any]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (kubectl kustomize renders the overlays)")
    require_checkov()
    script = _script()
    repo = tmp_path / name
    shutil.copytree(corpus_path("kustomize", name), repo)
    assert render_overlays(repo, tmp_path / "before") == {}
    scanned = script.run_checkov(tmp_path / "before")
    report = parse_report(scanned, f"checkov {name} overlays")
    _, plan = script.fix_from_report(repo, report)
    assert render_overlays(repo, tmp_path / "after") == {}  # every overlay still builds
    after = script.run_checkov(tmp_path / "after")
    before_counts, after_counts = script.failures(scanned), script.failures(after)
    fixable_before = sum(n for c, n in before_counts.items() if fixable(c))
    fixable_after = sum(n for c, n in after_counts.items() if fixable(c))
    print(name, f"fixable {fixable_before} -> {fixable_after}, declined {declined(plan)}")
    print("\n".join(script.table(before_counts, after_counts)))
    print("\n".join(script.why_not_fixed(plan)))
    return before_counts, after_counts, plan


def declined(plan: Any) -> int:
    """Failures on fixable checks whose fixer asks a person instead (a user id set on purpose,
    a bare image name a build tool rewrites, MySQL's memory): still failing by design."""
    return sum(
        1
        for u in plan.unfixable
        if u.category == "needs-human"
        for check in u.finding.scanner_ids
        if fixable(check)
    )


def assert_fixed(before: Counter[str], after: Counter[str], plan: Any) -> None:
    worse = {
        c: (before[c], n)
        for c, n in after.items()
        if n > before.get(c, 0) and c not in GROWN_ON_PURPOSE
    }
    assert not worse, worse  # check id: (failing resources before, after)
    fixable_before = sum(n for c, n in before.items() if fixable(c)) - declined(plan)
    fixable_after = sum(n for c, n in after.items() if fixable(c)) - declined(plan)
    assert fixable_before > 0
    assert fixable_after <= 0.1 * fixable_before, (fixable_before, fixable_after)


def test_kustomize_examples(tmp_path: Path) -> None:
    before, after, plan = before_after("kustomize-examples", tmp_path)
    assert_fixed(before, after, plan)


def test_flux_example(tmp_path: Path) -> None:
    """Its overlays render HelmReleases of remote charts and Flux objects only: no workload
    for Checkov to fail offline. Every overlay builds, before and after, and nothing changes."""
    before, after, plan = before_after("flux2-kustomize-helm-example", tmp_path)
    assert before == after
    assert not plan.change_sets


def test_bank_of_anthos(tmp_path: Path) -> None:
    before, after, plan = before_after("bank-of-anthos", tmp_path)
    assert_fixed(before, after, plan)


def test_flux_example_with_its_chart_cached(tmp_path: Path) -> None:
    """The same repository with podinfo in the chart cache (the corpus chart, the version both
    overlays accept): the HelmRelease renders in each overlay as Flux deploys it, and the fixes
    land in the HelmRelease (values or post-renderer), never in the cached chart."""
    require_checkov()
    from bot.locate.chart_sources import ChartCache

    script = _script()
    charts = ChartCache([corpus_path("charts", "podinfo")])
    source = corpus_path("kustomize", "flux2-kustomize-helm-example")
    before = script.failures(script.measure(source, charts))
    repo, _ = script.fix_copy(source, [], tmp_path, charts)
    after_output = script.measure(repo, charts)
    after = script.failures(after_output)
    plan = script.fix_from_report(repo, parse_report(after_output, "checkov after"), charts)[1]
    print("\n".join(script.table(before, after)))
    print("\n".join(script.why_not_fixed(plan)))
    changed = subprocess.run(
        ["git", "diff", "--no-index", "--stat", str(source), str(repo)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "charts/podinfo" not in changed
    assert_fixed(before, after, plan)
