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
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.controls import get as control
from bot.locate.helm import HelmIndex
from bot.plan import Plan
from bot.sources import parse_report
from fixers.intent import WAIVE_PREFIX
from fixers.registry import fixer_for
from tests.conftest import CORPUS, ROOT

_spec = importlib.util.spec_from_file_location(
    "checkov_before_after", ROOT / "scripts" / "checkov_before_after.py"
)
assert _spec and _spec.loader
cba = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cba)

NEEDS_APP_KNOWLEDGE = frozenset({"C-0018", "C-0056", "C-0207"})
"""Probes need the endpoint the application serves; secrets as files need the application
changed to read them (the C-0207 fixer only ever names the variables)."""
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


HANDLED = {
    "vendored": re.compile(
        r"no place to set .*: chart \S+ has no values key for it and chart \S+ is "
        r"(maintained upstream|vendored)"
    ),
    "waived": re.compile("^" + re.escape(WAIVE_PREFIX)),
    "intent": re.compile(
        r"(runs as \d+, set on purpose: |a generic default for \S+(, \S+)* would starve or kill it)"
    ),
    "collateral": re.compile(r"also changes .*, which changes .*: "),
}
"""Why a finding still failing after the fixes is handled, not missed: the field needs a new
template key in a chart the repository does not own (the next upgrade would lose it; the MR
says so), or the bot's own waiver (workload intent: a node agent's host access, a database's
user) is proposed instead of a fix, or the fixer declines on the workload's intent (a user id
the chart sets on purpose; generic limits for a database or a StatefulSet), or the values edit
would change riskier fields than the fix names (a key exposed in a test pod's template that the
main container's whole securityContext feeds: `bot.locate.helm_collateral`)."""

NETWORK_POLICY_TEMPLATE = re.compile(r"a new manifest \(.*\) cannot be added through chart values")
"""A NetworkPolicy needs a new template: handled when the chart is not the repository's own."""

GROWN_ON_PURPOSE = {"helm-create-demo": {"CKV_K8S_25"}}
"""Checks failing more often after, on purpose: dropping ALL capabilities adds back
NET_BIND_SERVICE for an nginx listening on port 80 (CKV_K8S_25 flags any added capability)."""


@dataclass(frozen=True)
class Outcome:
    before: Counter[str]
    after: dict
    fixed: Path
    renders: int
    plan: Plan


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every chart measured, fixed from the one report and measured again."""
    if not cba.CHECKOV.exists():
        pytest.skip(f"{cba.CHECKOV} not installed (scripts/setup-scanners.sh)")
    work = tmp_path_factory.mktemp("as-deployed")
    repos = {p.name: p for p in _charts()}
    before = cba.measure_all(repos, work / "before")
    fixed: dict[str, Path] = {}
    plans: dict[str, Plan] = {}
    for name, repo in repos.items():
        fixed[name] = work / "fixed" / name
        shutil.copytree(repo, fixed[name])
        report = parse_report(before[name], f"checkov {name}")
        plans[name] = cba.fix_from_report(fixed[name], report)[1]
    renders = cba.render_all(fixed, work / "after")
    after = cba.split_by_repo(cba.run_checkov(work / "after"), fixed)
    return {
        name: Outcome(cba.failures(before[name]), after[name], fixed[name], renders[name], plan)
        for name, plan in plans.items()
    }


def _handled(outcome: Outcome) -> dict[tuple[str, str, str], str]:
    """(control, kind, name) -> which accepted reason the bot's last plan gives for it."""
    own = {c.name for c in HelmIndex.build(outcome.fixed).charts.values() if not c.third_party}
    out: dict[tuple[str, str, str], str] = {}
    for item in outcome.plan.unfixable:
        ref = item.finding.resource
        why = next((k for k, rx in HANDLED.items() if rx.search(item.reason)), None)
        if why is None and NETWORK_POLICY_TEMPLATE.search(item.reason):
            chart = item.reason.split(" and chart ", 1)[-1].split(" ", 1)[0]
            why = None if chart in own else "network-policy-template"
        if why is not None:
            out[(item.finding.control_id, ref.kind, ref.name)] = why
    return out


def _identity(check: dict) -> tuple[str, str, str]:
    """(control, kind, name) of one failed check, as the bot reads it (the resource Checkov
    quotes: a graph check names a Deployment's pod by its labels)."""
    report = parse_report(
        {"check_type": "kubernetes", "results": {"failed_checks": [check]}}, "checkov after"
    )
    finding = report.findings[0]
    return finding.control_id, finding.resource.kind, finding.resource.name


def _reason_for(
    handled: dict[tuple[str, str, str], str], control: str, kind: str, name: str
) -> str | None:
    """The accepted reason for a failure; a name that differs only in a random suffix its
    template draws on every render (Helm test pods) is the same resource."""
    if (control, kind, name) in handled:
        return handled[(control, kind, name)]
    stem, _, suffix = name.rpartition("-")
    same = {
        why
        for (c, k, other), why in handled.items()
        if (c, k) == (control, kind)
        and other.rpartition("-")[0] == stem
        and len(other.rpartition("-")[2]) == len(suffix) == 5
    }
    return same.pop() if len(same) == 1 else None


def _unhandled_fixable(outcome: Outcome) -> tuple[int, Counter[str]]:
    """Fixable failures after, and how many of them each accepted reason handles."""
    handled = _handled(outcome)
    left, reasons = 0, Counter[str]()
    for check in outcome.after["results"]["failed_checks"]:
        if not _fixable({check["check_id"]: 1}):
            continue
        why = _reason_for(handled, *_identity(check))
        if why is None:
            left += 1
        else:
            reasons[why] += 1
    return left, reasons


KNOWN_GAPS: dict[str, str] = {}
"""Charts below the 90 % bar, each with the gap the issue notes record (issue 14). The bar is
still measured and reported for them; any other assertion holds for every chart."""


@pytest.mark.slow
# The module's fixture runs in the first test's time: two Checkov processes and every chart's
# fix rounds, about 3 minutes on an idle 2-core machine and several times that on a busy one.
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("repo", _charts(), ids=lambda p: p.name)
def test_checkov_failures_before_after_as_deployed(
    repo: Path, outcomes: dict[str, Outcome], tmp_path: Path
) -> None:
    outcome = outcomes[repo.name]
    before, after = outcome.before, cba.failures(outcome.after)
    assert outcome.renders > 0
    grown = set(after - before) - GROWN_ON_PURPOSE.get(repo.name, set())
    assert not grown, f"checks failing more often after: {after - before}"
    fixable_before = _fixable(before)
    left, reasons = _unhandled_fixable(outcome)
    # every chart still renders as deployed, and no workload gains a schema problem
    assert _schema_problems(outcome.fixed, tmp_path / "after") <= _schema_problems(
        repo, tmp_path / "before"
    )
    if fixable_before:
        gone = (fixable_before - left) / fixable_before
        message = (
            f"{fixable_before} -> {left} fixable failures not handled ({gone:.0%}); "
            f"handled with a reason: {dict(reasons)}"
        )
        if gone < 0.9 and repo.name in KNOWN_GAPS:
            pytest.xfail(f"known gap: {KNOWN_GAPS[repo.name]}; {message}")
        assert gone >= 0.9, message


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
