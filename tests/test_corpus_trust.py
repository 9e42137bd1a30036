"""The whole shared corpus, scanned by real Checkov and planned: every edit stays inside the
resource its finding names, every finding of the report appears in the plan's output, and
after every fix (scripts/checkov_before_after.py's loop) no Checkov check fails more often."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.plan import build_plan
from bot.sources import load_report, parse_report
from fixers.edits import load_documents
from tests.conftest import ROOT, corpus_path

SCRIPT = ROOT / "scripts" / "checkov_before_after.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("checkov_before_after", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rendered(chart: Path) -> str:
    import helm_python

    files = helm_python.Chart.load(str(chart)).render({}, name=chart.name, namespace="corpus")
    return "\n---\n".join(
        text for path, text in sorted(files.items()) if path.endswith((".yaml", ".yml")) and text
    )


def _identity(doc: Any) -> tuple[str, str] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        return None
    return str(doc.get("kind")), str(doc["metadata"].get("name"))


GROWN_ON_PURPOSE = {
    # Checkov flags any added capability; dropping ALL and adding back only NET_BIND_SERVICE for
    # a container listening below 1024 is the stricter setting (it had every default before).
    "CKV_K8S_25": "drop ALL adds back NET_BIND_SERVICE where a container port is below 1024",
}


@pytest.mark.slow
# Checkov twice over the corpus, and the fix loop's plans (about 11 minutes with the machine's
# two cores shared by a dozen busy processes)
@pytest.mark.timeout(1500)
def test_whole_corpus_edits_only_named_resources_and_drops_nothing(tmp_path: Path) -> None:
    script = _script()
    if not script.CHECKOV.exists():
        pytest.skip(f"{script.CHECKOV} not installed (scripts/setup-scanners.sh)")
    repo = tmp_path / "cd-config"
    shutil.copytree(corpus_path("manifests"), repo / "manifests", symlinks=True)
    rendered = repo / "rendered"
    rendered.mkdir()
    for chart in sorted(corpus_path("charts").iterdir()):
        if (chart / "Chart.yaml").is_file():
            (rendered / f"{chart.name}.yaml").write_text(_rendered(chart), encoding="utf-8")

    scanned = script.run_checkov(repo)  # one Checkov process over the whole directory
    report = parse_report(scanned, "checkov on the corpus")
    assert report.findings
    plan = build_plan(report, repo)

    # 0 findings absent from the output
    shown = {
        *(f.identity for f in plan.fixed_findings),
        *(f.identity for f in plan.already_compliant),
        *(u.finding.identity for u in plan.unfixable),
    }
    missing = {f.identity for f in report.findings} - shown
    assert not missing, sorted(missing)[:10]
    # unmapped checks are listed by id
    assert all(s.what.split()[0].startswith("CKV") for s in report.skipped if " on " in s.what)

    # 0 edits outside the named resource
    for change_set in plan.change_sets:
        named = {(f.resource.kind, f.resource.name) for f in change_set.findings}
        for change in change_set.files:
            if change.is_new:
                continue
            before, after = load_documents(change.before or ""), load_documents(change.after)
            assert len(before) == len(after), change.path
            for old, new in zip(before, after, strict=True):
                if old != new:
                    assert _identity(old) in named, (change_set.key, change.path, _identity(old))

    # Checkov before/after: every change set merged (one per file and round, planned again on
    # the merged files from the same report, as the script does), then one more Checkov run.
    saved = tmp_path / "checkov-before.json"
    saved.write_text(json.dumps(scanned), encoding="utf-8")
    # `load_report` streams any JSON object over 20 MB as a Kubescape report: read it whole.
    script.load_report = functools.partial(load_report, stream_above=saved.stat().st_size + 1)
    (tmp_path / "fixed").mkdir()
    fixed, applied = script.fix_copy(repo, [saved], tmp_path / "fixed")
    assert applied >= len(plan.change_sets)
    failed_before = script.failures(scanned)
    failed_after = script.failures(script.run_checkov(fixed))
    worse = {
        check: (failed_before.get(check, 0), count)
        for check, count in failed_after.items()
        if count > failed_before.get(check, 0) and check not in GROWN_ON_PURPOSE
    }
    assert not worse, worse  # check id: (failing resources before, after)
    assert sum(failed_after.values()) < sum(failed_before.values())
