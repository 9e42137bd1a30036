"""Real Checkov before -> after on charts rendered as deployed (slow: two Checkov processes).

Every chart of the shared corpus and the in-house fixture repository `repos/shop` (component
switches, a NetworkPolicy switch, a template reading a misspelled key, one key several
templates need, a base values file with per-environment files deployed by Argo CD Applications,
a vendored upstream chart overridden in an Application). Fixable controls are the mapped checks
whose control has a fixer that needs no application knowledge (probes need it).

One Checkov process scans every chart's as-deployed renders before; each chart's copy is fixed
from that one report, re-planned round after round (findings fixed in an earlier round answer
AlreadyCompliant); one Checkov process scans every fixed copy's renders after."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.controls import get as control
from bot.sources import parse_report
from fixers.registry import fixer_for
from tests.conftest import CORPUS, ROOT

_spec = importlib.util.spec_from_file_location(
    "checkov_before_after", ROOT / "scripts" / "checkov_before_after.py"
)
assert _spec and _spec.loader
cba = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cba)

NEEDS_APP_KNOWLEDGE = frozenset({"C-0018", "C-0056"})
REPOS = Path(__file__).parent / "repos"


def _fixable(counts: dict[str, int]) -> int:
    entries = cba.scanner_map.entries("checkov")
    total = 0
    for check, n in counts.items():
        entry = entries.get(check)
        if not entry:
            continue
        ctrl = entry["control"]
        catalogued = control(ctrl)
        if ctrl in NEEDS_APP_KNOWLEDGE or fixer_for(ctrl) is None:
            continue
        if catalogued is not None and catalogued.unfixable_reason is not None:
            continue
        total += n
    return total


def _charts() -> list[Path]:
    corpus = CORPUS / "charts"
    found = (
        sorted(p for p in corpus.iterdir() if (p / "Chart.yaml").is_file())
        if corpus.is_dir()
        else []
    )
    return [REPOS / "shop", *found]


@dataclass(frozen=True)
class Outcome:
    before: Counter[str]
    after: Counter[str]
    fixed: Path
    renders: int


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every chart measured, fixed from the one report and measured again."""
    if not cba.CHECKOV.exists():
        pytest.skip(f"{cba.CHECKOV} not installed (scripts/setup-scanners.sh)")
    work = tmp_path_factory.mktemp("as-deployed")
    repos = {p.name: p for p in _charts()}
    before = cba.measure_all(repos, work / "before")
    fixed: dict[str, Path] = {}
    for name, repo in repos.items():
        fixed[name] = work / "fixed" / name
        shutil.copytree(repo, fixed[name])
        cba.fix_from_report(fixed[name], parse_report(before[name], f"checkov {name}"))
    renders = cba.render_all(fixed, work / "after")
    after = cba.split_by_repo(cba.run_checkov(work / "after"), fixed)
    return {
        name: Outcome(
            cba.failures(before[name]), cba.failures(after[name]), fixed[name], renders[name]
        )
        for name in repos
    }


@pytest.mark.slow
@pytest.mark.parametrize("repo", _charts(), ids=lambda p: p.name)
def test_checkov_failures_before_after_as_deployed(
    repo: Path, outcomes: dict[str, Outcome], tmp_path: Path
) -> None:
    outcome = outcomes[repo.name]
    before, after = outcome.before, outcome.after
    assert outcome.renders > 0
    assert not (after - before), f"checks failing more often after: {after - before}"
    fixable_before, fixable_after = _fixable(before), _fixable(after)
    if fixable_before:
        gone = (fixable_before - fixable_after) / fixable_before
        assert gone >= 0.9, f"{fixable_before} -> {fixable_after} fixable failures ({gone:.0%})"
    # every chart still renders as deployed, and no workload gains a schema problem
    assert _schema_problems(outcome.fixed, tmp_path / "after") <= _schema_problems(
        repo, tmp_path / "before"
    )


def _schema_problems(repo: Path, out: Path) -> set[tuple[str, str, str]]:
    import yaml

    from bot.verify import schema_problems

    assert cba.render_as_deployed(repo, out) > 0
    problems = set()
    for path in sorted(out.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                name = str((doc.get("metadata") or {}).get("name"))
                problems |= {(str(doc.get("kind")), name, p) for p in schema_problems(doc)}
    return problems
