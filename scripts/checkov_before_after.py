"""Checkov's failures before and after kube-remedy's fixes, per mapped Checkov check.

    # two directories you prepared yourself
    .venv/bin/python scripts/checkov_before_after.py BEFORE_DIR AFTER_DIR

    # one directory: copy it, fix the copy as `remedy apply` would (planned from the reports
    # given, or from Checkov's own scan of the directory), then compare
    .venv/bin/python scripts/checkov_before_after.py DIR --fix [--report REPORT ...]

    # charts the deployments pull from chart repositories, from a chart cache (repeatable)
    .venv/bin/python scripts/checkov_before_after.py DIR --fix --charts CACHE_DIR

Runs the real Checkov of `scripts/setup-scanners.sh` (``.tools/checkov``) with
``--framework kubernetes -o json --skip-download --quiet`` and prints, for every Checkov check
that `bot/data/scanner_map.yaml` maps to a Kubescape control, the number of failing resources
before -> after.

Helm charts are measured as deployed: every chart of the directory is rendered the way the
Argo CD Applications / Flux HelmReleases beside it deploy it (release, namespace, values files,
inline values; a chart's tests only where the deployment runs them; the chart's defaults
under its own name when nothing deploys it) into
``<chart>/_rendered/<release>/`` of a scratch directory, and Checkov scans that too. Findings on
rendered resources point into their chart, so the plan fixes them through the chart's values.
A chart a deployment pulls from a chart repository is rendered from the chart caches given
with ``--charts`` (and Helm's own cache) into ``_remote/<chart>-<version>/_rendered/<release>/``;
one no cache holds is named on stderr and left out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import scanner_map  # noqa: E402
from bot.errors import RemedyError  # noqa: E402
from bot.locate.base import read_exact  # noqa: E402
from bot.locate.chart_sources import ChartCache  # noqa: E402
from bot.model import ChangeSet  # noqa: E402
from bot.plan import Plan, build_plan  # noqa: E402
from bot.sources import load_report, parse_report  # noqa: E402
from bot.sources.base import Report  # noqa: E402
from bot.sources.merge import merge_reports  # noqa: E402

CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
MAX_ROUNDS = 20
"""A file with findings of several families gets one change set per family (risky fixes one
each); each pass applies one per file (as merging one MR after another would), so a busy file
needs several passes, and a fix may unblock another finding ("fix C-0041 first") that only
the next round's plan of the whole report proposes."""


def run_checkov(directory: Path) -> dict:
    """Checkov's JSON output for ``directory`` (a mapping, one run: kubernetes)."""
    if not CHECKOV.exists():
        raise SystemExit(f"{CHECKOV} not found: run `bash scripts/setup-scanners.sh` first")
    proc = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory.resolve()),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--skip-download",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"checkov failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    data = json.loads(proc.stdout)
    runs = data if isinstance(data, list) else [data]
    merged: dict = {"check_type": "kubernetes", "results": {"failed_checks": []}}
    for run in runs:
        if isinstance(run, dict) and isinstance(run.get("results"), dict):
            merged["results"]["failed_checks"] += run["results"].get("failed_checks") or []
    return merged


def render_as_deployed(
    repo: Path, out: Path, charts: ChartCache | None = None, overlay_policies: bool = True
) -> int:
    """Render every chart of ``repo`` as deployed into ``out`` (chart-relative layout; remote
    charts from ``charts``, default Helm's own cache, under ``_remote/``); returns the number of
    renders. A chart that does not render is an error (exit 2). ``overlay_policies``: copy the
    NetworkPolicies a kustomize overlay deploys beside a HelmRelease into its render (for a scan
    of the renders alone)."""
    from bot.locate.base import FileOverlay
    from bot.locate.helm import Deployment, HelmIndex, is_test_hook, overlay_network_policies

    index = HelmIndex.build(repo, chart_cache=charts or ChartCache.configured())
    for missing in index.missing:
        print(f"not rendered: {missing.deployment}: {missing.reason}", file=sys.stderr)
    overlay = FileOverlay(index.root)
    count = 0
    for chart in index.charts.values():
        base = f"{chart.path}/values.yaml".lstrip("/")
        apps = [a for a in index.apps if a.chart == chart.path]
        deployments = [
            Deployment(chart, a.release, a.namespace or "default", (base, *a.value_files), a)
            for a in apps
        ] or [Deployment(chart, chart.name, "default", (base,))]
        for dep in deployments:
            # as Flux deploys it: a HelmRelease's post-renderers applied
            docs = index.deployed(
                dep, index.chart_root(chart), dep.render_values(overlay), overlay
            ).docs
            external = chart.external
            folder = (
                Path("_remote", f"{external.ref.name}-{external.version}")
                if external
                else Path(chart.path)
            )
            target = out / folder / "_rendered" / (dep.app.name if dep.app else dep.release)
            target.mkdir(parents=True, exist_ok=True)
            by_template: dict[str, list[str]] = {}
            for doc in docs:
                if dep.app is not None and dep.app.runs_tests is False and is_test_hook(doc):
                    continue  # never created: the deployment does not run the chart's tests
                document = dict(doc.document)
                meta = dict(document.get("metadata") or {})
                meta.setdefault("namespace", dep.namespace)  # as Helm applies it
                document["metadata"] = meta
                by_template.setdefault(doc.template, []).append(
                    yaml.safe_dump(document, sort_keys=False)
                )
            for template, texts in by_template.items():
                name = template.split("/templates/", 1)[-1].replace("/", "__")
                (target / name).write_text("---\n".join(texts), encoding="utf-8")
            # NetworkPolicies the overlay deploys beside the HelmRelease select its pods too
            policies = overlay_network_policies(dep.app, overlay) if overlay_policies else []
            if policies:
                text = "---\n".join(yaml.safe_dump(p, sort_keys=False) for p in policies)
                (target / "_overlay-networkpolicies.yaml").write_text(text, encoding="utf-8")
            count += 1
    return count


def measure(repo: Path, charts: ChartCache | None = None) -> dict:
    """Checkov on ``repo``'s files and its charts rendered as deployed, in one scan (a
    NetworkPolicy of the repository selects the pods a chart renders); rendered files are
    named as if they lay inside their chart (``<chart>/_rendered/...``)."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if not render_as_deployed(repo, scratch / "rendered", charts, overlay_policies=False):
            return run_checkov(repo)
        shutil.copytree(repo, scratch / "repo", ignore=shutil.ignore_patterns(".git"))
        output = run_checkov(scratch)
    for check in output["results"]["failed_checks"]:
        path = str(check.get("file_path", ""))
        for top in ("/repo/", "/rendered/"):
            if path.startswith(top):
                check["file_path"] = "/" + path[len(top) :]
    return output


def render_all(repos: dict[str, Path], out: Path) -> dict[str, int]:
    """Render every repository of ``repos`` as deployed into ``out/<name>/`` (chart-relative
    layout, as `render_as_deployed`); returns the number of renders per name."""
    return {name: render_as_deployed(repo, out / name) for name, repo in repos.items()}


def split_by_repo(output: dict, names: Iterable[str]) -> dict[str, dict]:
    """One Checkov output over ``out/<name>/...`` split into one output per name, with paths
    relative to that repository (``/<chart>/_rendered/...``)."""
    split: dict[str, dict] = {
        name: {"check_type": "kubernetes", "results": {"failed_checks": []}} for name in names
    }
    for check in output["results"]["failed_checks"]:
        head, _, rest = str(check.get("file_path", "")).lstrip("/").partition("/")
        if head in split and rest:
            check = {**check, "file_path": "/" + rest}
            split[head]["results"]["failed_checks"].append(check)
    return split


def measure_all(repos: dict[str, Path], out: Path) -> dict[str, dict]:
    """One Checkov process over every repository's as-deployed renders; output per name."""
    render_all(repos, out)
    return split_by_repo(run_checkov(out), repos)


def fix_from_report(
    repo: Path, report: Report, charts: ChartCache | None = None
) -> tuple[int, Plan]:
    """Write every change set planned for ``repo`` (in place) from one ``report``, round after
    round, re-planning the whole report each round: findings fixed in an earlier round answer
    AlreadyCompliant, so no scanner runs between rounds. Within a round, the change sets an
    earlier one made stale (they share a file) are planned again together, from their own
    findings, on the new content (as the bot recreates an MR on the new base), until none is
    left: one plan per pass, not one per change set, so each pass re-reads the repository
    once. Returns the change sets applied and the last plan (what the bot says about every
    finding once nothing more applies). Remote charts come from ``charts``."""
    applied = 0
    for _ in range(MAX_ROUNDS):
        plan = build_plan(report, repo, charts=charts)
        round_applied, stale = _write_one_per_file(repo, plan.change_sets)
        for _ in range(MAX_ROUNDS):
            if not stale:
                break
            findings = tuple(f for change_set in stale for f in change_set.findings)
            again = build_plan(Report(report.scanner, report.origin, findings), repo, charts=charts)
            written, stale = _write_one_per_file(repo, again.change_sets)
            round_applied += written
        applied += round_applied
        if round_applied == 0:
            return applied, plan
    print(f"warning: still planning change sets after {MAX_ROUNDS} rounds", file=sys.stderr)
    return applied, build_plan(report, repo, charts=charts)


def _write_one_per_file(
    repo: Path, change_sets: Iterable[ChangeSet]
) -> tuple[int, list[ChangeSet]]:
    """Write each change set whose files are still as planned (the first of each file);
    returns how many were written and those left stale by an earlier one."""
    written, stale = 0, []
    for change_set in change_sets:
        if _stale(repo, change_set):
            stale.append(change_set)
        else:
            written += _write(repo, change_set)
    return written, stale


def _stale(repo: Path, change_set: ChangeSet) -> bool:
    # read_exact keeps CRLF: read_text would turn it into LF and never match.
    return any(
        not change.is_new and read_exact(repo / change.path) != change.before
        for change in change_set.files
    )


def _write(repo: Path, change_set: ChangeSet) -> int:
    for change in change_set.files:
        target = repo / change.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(change.after.encode("utf-8"))
    return 1


def failures(output: dict) -> Counter[str]:
    """Failing resources per Checkov check id."""
    return Counter(c["check_id"] for c in output["results"]["failed_checks"])


def fix_copy(
    source: Path, reports: list[Path], workdir: Path, charts: ChartCache | None = None
) -> tuple[Path, int]:
    """A copy of ``source`` with every planned change set written; returns it and the number of
    change sets applied. Planned from ``reports``, or from one Checkov scan of ``source`` as
    deployed (see `fix_from_report`)."""
    repo = workdir / source.name
    shutil.copytree(source, repo)
    if reports:
        report = merge_reports([load_report(p) for p in reports])
    else:
        report = parse_report(measure(repo, charts), f"checkov {repo}")
    return repo, fix_from_report(repo, report, charts)[0]


def table(before: Counter[str], after: Counter[str]) -> list[str]:
    """One line per mapped Checkov check: id, control, title, failures before -> after."""
    lines = []
    entries = scanner_map.entries("checkov")
    total_before = total_after = 0
    for check_id in sorted(entries, key=lambda c: (c.startswith("CKV2"), int(c.split("_")[-1]))):
        b, a = before.get(check_id, 0), after.get(check_id, 0)
        if not (b or a):
            continue
        total_before, total_after = total_before + b, total_after + a
        entry = entries[check_id]
        lines.append(f"{check_id:<11} {entry['control']}  {b:>3} -> {a:<3} {entry['title']}")
    lines.append(f"{'mapped':<11} {'total':<7} {total_before:>3} -> {total_after:<3}")
    return lines


def why_not_fixed(plan: Plan) -> list[str]:
    """What still fails after the fixes, per control and reason category, with one example.
    Failures the bot's own check finds compliant are counted apart: the scanner points at a
    document the fix already covers (Checkov reports every copy of a repeated object at the
    last copy's lines)."""
    counts: Counter[tuple[str, str]] = Counter()
    example: dict[tuple[str, str], str] = {}
    for item in plan.unfixable:
        key = (item.finding.control_id, item.category)
        counts[key] += 1
        example.setdefault(key, item.reason)
    for finding in plan.already_compliant:
        key = (finding.control_id, "compliant")
        counts[key] += 1
        example.setdefault(
            key, f"kube-remedy's check passes on the document at {finding.source.path}"
        )
    lines = ["", "still failing, by control and why (planned again on the fixed copy):"]
    for (control, category), n in sorted(counts.items()):
        reason = example[(control, category)]
        reason = reason if len(reason) <= 110 else reason[:107] + "..."
        lines.append(f"  {control}  {n:>4}  {category:<12} {reason}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path, nargs="?")
    parser.add_argument("--fix", action="store_true", help="fix a copy of BEFORE and compare")
    parser.add_argument("--report", type=Path, action="append", default=[])
    parser.add_argument(
        "--charts",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a chart cache (untarred charts and/or .tgz archives) for remote charts",
    )
    args = parser.parse_args(argv)
    if bool(args.after) == args.fix:
        parser.error("give AFTER, or --fix to make it from BEFORE")
    charts = ChartCache.configured(args.charts)
    try:
        before = failures(measure(args.before, charts))
        with tempfile.TemporaryDirectory() as tmp:
            if args.fix:
                after_dir, applied = fix_copy(args.before, args.report, Path(tmp), charts)
                print(f"applied {applied} change sets to a copy of {args.before}")
            else:
                after_dir = args.after
            after_output = measure(after_dir, charts)
            after = failures(after_output)
            print("\n".join(table(before, after)))
            grown = sorted((after - before).items())
            print(
                "checks failing more often after (any check, mapped or not): "
                + (", ".join(f"{c} +{n}" for c, n in grown) or "none")
            )
            remaining = build_plan(
                parse_report(after_output, "checkov after"), after_dir, charts=charts
            )
            print("\n".join(why_not_fixed(remaining)))
    except RemedyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
