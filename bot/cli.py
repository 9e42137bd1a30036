"""``remedy``: the command line. Thin: parse arguments, call one service, print with rich.

Exit codes, the same for every command: 0 done, 1 findings left unfixed (a CI gate), 2 usage
or input error, 3 transient failure (GitLab 429/5xx/network, Redis down): try again later.

Output for people goes to stdout (tables that wrap, never cut), progress of long work to stderr
(only when stderr is a terminal); ``--output json`` on plan and apply prints one JSON document
instead (bot/output.py, docs/output-schema.json).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError, ForgeTransientError, RemedyError

# Everything else is imported where a command needs it: `remedy --help` and `remedy explain`
# must not pay for the readers, the planner, Helm, Kubernetes or Celery (tests/test_cli_startup.py).
if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from bot import controls as catalog
    from bot.cluster import ClusterAccess
    from bot.lifecycle import SyncDecision
    from bot.locate.chart_sources import ChartCache
    from bot.model import ChangeSet
    from bot.plan import Plan
    from bot.repo_config import RepoConfig
    from bot.sources.base import Report
    from bot.sources.runtime import RuntimeEvidence
    from fixers.model import Finding

EXIT_OK, EXIT_UNFIXED, EXIT_USAGE, EXIT_TRANSIENT = 0, 1, 2, 3

CONFIG_FILE = ".remedy.yaml"
"""The repository's settings file (`bot.repo_config.CONFIG_FILE`, named here for the help)."""
CLUSTER_SCANNERS = ("kubescape-operator", "kyverno", "trivy")
"""Scanners whose results can be read from a cluster (`bot.sources.cluster_formats`)."""

console: Console | None = None
"""Output for people (stdout), made on first use."""
errors: Console | None = None
"""Errors and progress (stderr), made on first use."""


def _out() -> Console:
    global console
    if console is None:
        from rich.console import Console

        console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    return console


def _err() -> Console:
    global errors
    if errors is None:
        from rich.console import Console

        errors = Console(stderr=True, highlight=False)
    return errors


_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def safe(text: object, *, lines: bool = False) -> str:
    """``text`` (from a report or cd-config) made harmless for a terminal: control characters
    (ANSI escapes, NUL, C1), bidirectional overrides and invisible format characters are shown
    as visible escapes like ``\\x1b`` or ``\\u202e``; newlines too unless ``lines``."""
    out = _UNSAFE.sub(lambda m: _escape(m.group()), str(text))
    return out if lines else out.replace("\n", "\\n").replace("\t", "\\t")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cell(text: object) -> Text:
    """A table cell of untrusted text: sanitised, and never read as rich markup."""
    from rich.text import Text

    return Text(safe(text))


@contextmanager
def _working(what: str) -> Iterator[None]:
    """A spinner with ``what`` on stderr while a step without a count runs; nothing when
    stderr is not a terminal (CI logs, pipes), where rich's live display is not even imported:
    the result on stdout is the same either way."""
    if not _err().is_terminal:
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=_err(), transient=True) as progress:
        progress.add_task(what, total=None)
        yield


@contextmanager
def _counting(what: str, total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while ``total`` items are worked through: yields the callback
    that moves it (done, total), or None when stderr is not a terminal (as `_working`)."""
    if not _err().is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn(what), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=_err(), transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def _load_reports(
    paths: Sequence[Path],
    cluster: ClusterAccess | None = None,
    scanners: Sequence[str] = (),
    namespace: str | None = None,
) -> Report:
    from bot.sources import fetch_from_cluster, load_report

    reports: list[Report] = []
    for path in paths:
        with _working(f"reading {safe(path.name)}"):
            reports.append(load_report(path))
    if cluster is not None:
        for scanner in dict.fromkeys(scanners):
            with _working(f"reading {scanner} results from the cluster"):
                reports.append(fetch_from_cluster(scanner, cluster, namespace))
    if not reports:
        raise RemedyError("no findings to read: give --report FILE or --from-cluster")
    if len(reports) == 1:
        return reports[0]
    from bot.sources.merge import merge_reports

    return merge_reports(reports)


def _repo_config(repo: Path, explicit: Path | None) -> RepoConfig:
    from bot.repo_config import defaults, parse_repo_config

    path = explicit or repo / CONFIG_FILE
    if not path.is_file():
        if explicit:
            raise RemedyError(f"config file {explicit} not found")
        return defaults()
    return parse_repo_config(path.read_text(encoding="utf-8"), str(path))


def _plan(args: argparse.Namespace) -> tuple[Report, Plan, RepoConfig]:
    from bot.plan import build_plan

    repo = Path(args.repo)
    if not repo.is_dir():
        raise RemedyError(f"repository directory {repo} not found")
    cluster = None
    if args.from_cluster:
        from bot.cluster import ClusterAccess

        cluster = ClusterAccess(kubeconfig=args.kubeconfig, context=args.kube_context)
    report = _load_reports(
        [Path(p) for p in args.report or ()], cluster, args.from_cluster or (), args.namespace
    )
    config = _repo_config(repo, Path(args.config) if args.config else None)
    runtime = _load_evidence(args)
    with _counting("planning", len(report.findings)) as progress:
        plan = build_plan(
            report,
            repo,
            config,
            progress=progress,
            runtime=runtime.for_resource if runtime is not None else None,
            charts=_chart_cache(args.charts),
        )
    return report, plan, config


def _chart_dirs(dirs: Sequence[str] | None) -> tuple[Path, ...]:
    """The ``--charts`` directories; each must exist."""
    found = tuple(Path(d).expanduser() for d in dirs or ())
    for directory in found:
        if not directory.is_dir():
            raise RemedyError(f"chart cache directory {directory} not found")
    return found


def _chart_cache(dirs: Sequence[str] | None) -> ChartCache:
    """``--charts`` directories, then Helm's own cache."""
    from bot.locate.chart_sources import ChartCache

    return ChartCache.configured(_chart_dirs(dirs))


def _load_evidence(args: argparse.Namespace) -> RuntimeEvidence | None:
    """Runtime evidence from ``--evidence`` files and ``--evidence-from-cluster``, if asked."""
    if not args.evidence and not args.evidence_from_cluster:
        return None
    from rich.text import Text

    from bot.cluster import ClusterAccess
    from bot.sources.runtime import fetch_evidence, load_evidence

    evidence = load_evidence([Path(p) for p in args.evidence or ()])
    if args.evidence_from_cluster:
        access = ClusterAccess(kubeconfig=args.kubeconfig, context=args.kube_context)
        evidence = fetch_evidence(access, args.namespace, evidence)
    _err().print(Text(evidence.describe()), soft_wrap=True)
    return evidence


def print_plan(report: Report, plan: Plan) -> None:
    """The change sets as a table, then every finding left unfixed with its reason."""
    from rich.table import Table
    from rich.text import Text

    from bot.score import format_delta

    table = Table(title=f"Change sets ({len(plan.change_sets)})", show_lines=False)
    for col in ("branch key", "controls", "files", "resources", "risk"):
        table.add_column(col, overflow="fold")
    for cs in plan.change_sets:
        table.add_row(
            cell(cs.key),
            cell(", ".join(cs.controls)),
            Text(
                "\n".join(safe(c.path) + (" (new)" if c.is_new else "") for c in cs.files)
                + _overlays_line(cs)
                + _charts_line(cs)
            ),
            str(len({f.resource.key for f in cs.findings})),
            cell(cs.risk.label),
        )
    _out().print(table)
    print_chart_summary(plan)
    scores = _scores(report, plan)
    if scores:
        _out().print(
            Text(
                safe(
                    "Compliance if all merged: "
                    + " · ".join(format_delta(fw, a, b) for fw, (a, b) in scores.items())
                )
            )
        )
    if plan.unfixable:
        left = Table(title=f"Not fixed ({len(plan.unfixable)})")
        for col in ("control", "resource", "category", "reason"):
            left.add_column(col, overflow="fold")
        for u in plan.unfixable:
            res = str(u.finding.resource) + (
                f" [{u.finding.container}]" if u.finding.container else ""
            )
            left.add_row(cell(_ids(u.finding)), cell(res), cell(u.category), cell(u.reason))
        _out().print(left)
    if plan.already_compliant:
        ok = Table(title=f"Already compliant in the repository ({len(plan.already_compliant)})")
        for col in ("control", "resource"):
            ok.add_column(col, overflow="fold")
        for f in plan.already_compliant:
            ok.add_row(
                cell(_ids(f)), cell(str(f.resource) + (f" [{f.container}]" if f.container else ""))
            )
        _out().print(ok)
    for note in plan.notes:
        _out().print(f"note: {note}", markup=False, highlight=False)
    if report.skipped:
        unread = Table(title=f"Not read from the report ({len(report.skipped)})")
        for col in ("result", "why"):
            unread.add_column(col, overflow="fold")
        for skipped in report.skipped:
            unread.add_row(cell(skipped.what), cell(skipped.reason))
        _out().print(unread)
    _out().print(
        f"{len(plan.findings)} findings: {len(plan.fixed_findings)} fixed in "
        f"{len(plan.change_sets)} change sets, {len(plan.already_compliant)} already compliant "
        f"in the repository, {len(plan.unfixable)} not fixed; {len(report.skipped)} results "
        "not read (listed above with their scanner id)."
    )


def _ids(finding: Finding) -> str:
    """The control and, when another scanner reported it, that scanner's ids."""
    others = [i for i in finding.scanner_ids if i != finding.control_id]
    return finding.control_id + (f" ({', '.join(others)})" if others else "")


def _overlays_line(cs: ChangeSet) -> str:
    """The kustomize overlays whose rendered output the change set changes, as a table line."""
    overlays = cs.meta.get("kustomize-overlays")
    inline = cs.meta.get("kustomize-inline-patches")
    line = f"\n  changes overlays: {safe(overlays)}" if overlays else ""
    return line + (f"\n  inline patches: {safe(inline)}" if inline else "")


def _charts_line(cs: ChangeSet) -> str:
    """The remote charts the change set was rendered with (version and source)."""
    sources = sorted({f.location.chart_source for f in cs.fixes if f.location.chart_source})
    return "".join(f"\n  rendered chart: {safe(s)}" for s in sources)


def print_chart_summary(plan: Plan) -> None:
    """Per Helm chart: controls fixed through values, by exposing a key, by a Flux
    post-renderer patch, not fixed."""
    from rich.table import Table

    columns = {
        "helm-values": "fixed in values",
        "helm-template": "fixed by exposing a values key",
        "helm-post-renderer": "fixed by a post-renderer patch",
        "not": "not fixed",
    }
    charts: dict[str, dict[str, set[str]]] = {}

    def entry(chart: str) -> dict[str, set[str]]:
        return charts.setdefault(chart, {bucket: set() for bucket in columns})

    for cs in plan.change_sets:
        for fix in cs.fixes:
            if fix.location.chart is not None and fix.location.kind in columns:
                entry(fix.location.chart or ".")[fix.location.kind].add(fix.finding.control_id)
    for u in plan.unfixable:
        if u.finding.source.chart_path:
            entry(u.finding.source.chart_path)["not"].add(f"{u.finding.control_id} ({u.category})")
    if not charts:
        return
    table = Table(title=f"Helm charts ({len(charts)})")
    for col in ("chart", *columns.values()):
        table.add_column(col, overflow="fold")
    for chart, e in sorted(charts.items()):
        table.add_row(cell(chart), *(cell(", ".join(sorted(e[b])) or "-") for b in columns))
    _out().print(table)


def _scores(report: Report, plan: Plan) -> dict[str, tuple[float, float]]:
    """Per framework: (score now, score if every change set is merged)."""
    from bot.score import framework_label, framework_scores

    before = framework_scores(report)
    after = framework_scores(report, {f.identity for f in plan.fixed_findings})
    return {framework_label(fw): (before[fw], after.get(fw, before[fw])) for fw in before}


def _print_json(
    command: str,
    report: Report,
    plan: Plan,
    code: int,
    decisions: Sequence[SyncDecision] | None = None,
) -> None:
    import json

    from bot.output import plan_document

    document = plan_document(command, report, plan, code, _scores(report, plan), decisions)
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def cmd_plan(args: argparse.Namespace) -> int:
    report, plan, _ = _plan(args)
    code = EXIT_UNFIXED if plan.unfixable else EXIT_OK
    if args.output == "json":
        _print_json("plan", report, plan, code)
    else:
        print_plan(report, plan)
    return code


def cmd_apply(args: argparse.Namespace) -> int:
    from rich.markdown import Markdown
    from rich.text import Text

    from bot.codeowners import load_codeowners, reviewers_for
    from bot.forge.local import LocalForge
    from bot.publish import publish_plan, summarize

    report, plan, config = _plan(args)
    as_json = args.output == "json"
    if not as_json:
        print_plan(report, plan)
    forge = LocalForge(Path(args.repo))
    reviewers = reviewers_for(
        load_codeowners(forge.read_file), config.teams, exclude=[args.bot_username]
    )
    # local mode has no rate limits: nobody's review queue fills up
    with _working(f"publishing {len(plan.change_sets)} change sets"):
        outcome = publish_plan(
            forge,
            plan,
            report,
            config,
            bot_username=args.bot_username,
            reviewers=reviewers,
            limits=False,
        )
    code = EXIT_UNFIXED if plan.unfixable else EXIT_OK
    if as_json:
        _print_json("apply", report, plan, code, outcome.decisions)
        return code
    _out().print(Text(safe(f"Local mode in {args.repo}: {summarize(outcome.decisions)}")))
    for decision in outcome.decisions:
        _out().print(Text(safe(f"{decision.action} {decision.branch}: {decision.reason}")))
        if decision.change is not None and decision.action in ("created", "updated"):
            path = forge.description_path(decision.change)
            _out().rule(Text(safe(f"MR: {decision.change.title}")))
            description = safe(decision.change.description, lines=True)
            _out().print(Markdown(description) if args.rich else Text(description))
            _out().print(Text(safe(f"(description written to {path})")))
    return code


def cmd_explain(args: argparse.Namespace) -> int:
    """Explain a Kubescape control, or the control(s) another scanner's check maps to."""
    from rich.markdown import Markdown

    from bot import controls as catalog
    from bot import scanner_map

    query = args.control.strip()
    if catalog.get(query) is not None:
        _out().print(Markdown("\n".join(_explain_lines(catalog.require(query)))))
        return EXIT_OK
    mapped = scanner_map.lookup(query)
    if not mapped:
        raise ConfigError(
            f"unknown control or check id {safe(query[:80])!r}: give a Kubescape id (C-0016) or "
            "alias, a Trivy KSV id, a Checkov CKV_K8S id or a Kyverno policy name that "
            "kube-remedy maps (bot/data/scanner_map.yaml; `remedy controls` lists the controls)"
        )
    lines: list[str] = []
    for m in mapped:
        where = ", ".join(f"`{c}` when the failing path names {f}" for f, c in m.by_path)
        lines.append(
            f"{m.check_id} ({m.scanner}: {m.title}) is Kubescape control `{m.control}`"
            + (f", or {where}." if where else ".")
        )
    for control_id in dict.fromkeys(c for m in mapped for c in m.controls):
        lines += ["", *_explain_lines(catalog.require(control_id))]
    _out().print(Markdown("\n".join(lines)))
    return EXIT_OK


def _explain_lines(control: catalog.Control) -> list[str]:
    from fixers.registry import fixer_for

    fixer = fixer_for(control.id)
    lines = [
        f"# {control.id} {control.name}",
        f"Severity: {control.severity}. Frameworks: {', '.join(control.frameworks) or '-'}.",
        "",
        f"**Why it matters.** {control.why}",
        "",
        f"**What the fix does.** {control.fix}",
    ]
    if fixer is not None:
        lines += [
            "",
            f"**Risk.** {fixer.risk.label}.",
            "",
            f"Fixer: `{fixer.name}` (family {fixer.family}).",
        ]
    elif (why := catalog.not_fixable_in_git(control)) is not None:
        lines += ["", f"**Not fixed in git** ({why.category}). {why.action}"]
    else:
        lines += ["", "**No fixer yet.** kube-remedy reports it and leaves it to a person."]
    return lines


def cmd_controls(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bot import controls as catalog
    from fixers.registry import fixer_for

    table = Table(title="Controls")
    for col in ("id", "name", "severity", "frameworks", "fixer"):
        table.add_column(col, overflow="fold")
    for control in catalog.all_controls():
        fixer = fixer_for(control.id)
        why = catalog.not_fixable_in_git(control)
        table.add_row(
            control.id,
            control.name,
            control.severity,
            ", ".join(control.frameworks),
            fixer.name
            if fixer is not None
            else f"[dim]{why.category if why is not None else 'no fixer'}[/dim]",
        )
    _out().print(table)
    return EXIT_OK


def example_dir() -> Path:
    """The example cd-config and report shipped with the project."""
    from importlib import resources

    here = Path(__file__).resolve().parent.parent / "examples"
    if here.is_dir():
        return here
    return Path(str(resources.files("bot").joinpath("examples")))


def cmd_demo(args: argparse.Namespace) -> int:
    """Copy the example cd-config into a fresh git repository and run apply on it."""
    import shutil
    import subprocess
    import tempfile

    from rich.text import Text

    examples = example_dir()
    target = Path(args.into) if args.into else Path(tempfile.mkdtemp(prefix="remedy-demo-"))
    repo = target / "cd-config"
    if repo.exists():
        raise RemedyError(f"{repo} already exists; choose another --into")
    shutil.copytree(examples / "cd-config", repo)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        [
            "git",
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@example.com",
            "commit",
            "-qm",
            "cd-config",
        ],
    ):
        subprocess.run(cmd, cwd=repo, check=True)
    _out().print(
        Text(safe(f"Example cd-config copied to {repo} (a fresh git repository)\n", lines=True))
    )
    apply_args = ["apply", "--report", str(examples / "kubescape-report.json"), "--repo", str(repo)]
    apply_args += ["--bot-username", args.bot_username] + (["--rich"] if args.rich else [])
    code = cmd_apply(build_parser().parse_args(apply_args))
    branches = subprocess.run(
        ["git", "branch", "--list", "remedy/*"], cwd=repo, capture_output=True, text=True
    ).stdout
    _out().print(Text(safe(f"\nBranches in {repo}:\n{branches}", lines=True)))
    return code


def cmd_run(args: argparse.Namespace) -> int:
    """One run against GitLab, in process: plan, open/update MRs, refresh the dashboard."""
    from pydantic import SecretStr
    from rich.text import Text

    from bot.service import run_project_once
    from bot.settings import FileReport, GitlabArtifactReport, ProjectConfig, load_settings

    settings = load_settings(args.config)
    source = (
        FileReport(path=args.report[0])
        if args.report
        else GitlabArtifactReport(job=args.artifact_job, artifact_path=args.artifact_path)
    )
    # a configured project keeps its runtime evidence; the report is the command line's
    configured = next((p for p in settings.projects if p.id == args.project), None)
    evidence = configured.evidence if configured is not None else None
    charts = _chart_dirs(args.charts)
    if configured is not None:
        charts = (*charts, *configured.chart_cache_dirs)
    project = ProjectConfig(
        id=args.project, report=source, evidence=evidence, chart_cache_dirs=charts
    )
    update: dict[str, object] = {"gitlab_url": args.gitlab_url, "projects": (project,)}
    if args.token:
        update["gitlab_token"] = SecretStr(args.token)
    if args.bot_username:
        update["bot_username"] = args.bot_username
    settings = settings.model_copy(update=update)
    summary = run_project_once(settings, settings.project(args.project))
    for line in summary.lines():
        _out().print(Text(safe(line)))
    if summary.failed:
        return EXIT_TRANSIENT if summary.transient else EXIT_USAGE
    return EXIT_UNFIXED if summary.unfixable else EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.settings import load_settings
    from bot.tasks import start_worker

    start_worker(load_settings(args.config), args.concurrency)
    return EXIT_OK


def cmd_beat(args: argparse.Namespace) -> int:
    from bot.settings import load_settings
    from bot.tasks import start_beat

    start_beat(load_settings(args.config))
    return EXIT_OK


def cmd_run_once(args: argparse.Namespace) -> int:
    from rich.text import Text

    from bot.settings import load_settings
    from bot.tasks import run_once

    result = run_once(load_settings(args.config), args.project)
    for key, value in result.items():
        _out().print(Text(safe(f"{key}: {value}")))
    if result.get("status") == "error":
        _err().print(
            Text("error: ", style="red") + Text(safe(str(result.get("error")))), soft_wrap=True
        )
        return EXIT_TRANSIENT if result.get("kind") == "ForgeTransientError" else EXIT_USAGE
    return EXIT_UNFIXED if result.get("unfixable") else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.settings import load_settings
    from bot.web import serve

    serve(load_settings(args.config))
    return EXIT_OK


def cmd_notify_pipeline(args: argparse.Namespace) -> int:
    """CI template, default branch: ask the bot to run now (a signed Pipeline Hook)."""
    import httpx
    from rich.text import Text

    from bot import ci

    secret = os.environ.get(args.secret_variable, "")
    if not secret:
        raise ConfigError(
            f"CI/CD variable {args.secret_variable} (the bot's webhook secret) is not set"
        )
    event = ci.pipeline_event(os.environ, args.scan_status)
    with httpx.Client() as client:
        answer = ci.notify_pipeline(args.bot_url, secret, event, client)
    _out().print(Text(f"bot: {safe(answer) or 'accepted'}"))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    """CI template, bot MRs: compliance score of the target branch and of this branch."""
    import httpx
    from rich.text import Text

    from bot import ci
    from bot.sources import load_report

    branch = os.environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "")
    if args.branch_prefix and branch and not branch.startswith(args.branch_prefix):
        _out().print(Text(f"{safe(branch)} is not a kube-remedy branch; nothing to score"))
        return EXIT_OK
    after = load_report(Path(args.after))
    with httpx.Client() as client:
        before: Report | None
        if args.before:
            before = load_report(Path(args.before))
        elif args.before_from_ci:
            before = ci.fetch_target_report(os.environ, client)
        else:
            before = None
        target = os.environ.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or "before"
        note = ci.score_note(ci.compare_scores(before, after), target, before is not None)
        sys.stdout.write(note)
        token = os.environ.get(args.note_token_variable, "") if args.note_token_variable else ""
        if token:
            ci.post_note(os.environ, token, note, client)
    return EXIT_OK


class _Version(argparse.Action):
    """``--version``, looked up only when asked (package metadata is slow to import)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        sys.stdout.write(f"{parser.prog} {_version()}\n")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kube-remedy")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remedy",
        description="Fix Kubernetes security findings through reviewed merge requests.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    readable = CLUSTER_SCANNERS

    def charts_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--charts",
            action="append",
            metavar="DIR",
            help="a chart cache (repeatable): untarred charts and/or .tgz archives of the "
            "charts deployments pull from chart repositories (`helm pull CHART --untar -d "
            "DIR`); Helm's own cache is searched after them",
        )

    def report_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--report", action="append", help="scan report (repeatable)")
        p.add_argument(
            "--from-cluster",
            action="append",
            nargs="?",
            const="kubescape-operator",
            choices=readable,
            metavar="SCANNER",
            help="also read the results a scanner keeps in the cluster (repeatable; default "
            f"kubescape-operator; one of {', '.join(readable)})",
        )
        p.add_argument(
            "--evidence",
            action="append",
            metavar="FILE",
            help="runtime evidence (repeatable): Kubescape ApplicationProfile / ContainerProfile "
            "/ NetworkNeighborhood / GeneratedNetworkPolicy exported with kubectl, Falco alerts",
        )
        p.add_argument(
            "--evidence-from-cluster",
            action="store_true",
            help="also read Kubescape's runtime profiles from the cluster (--kubeconfig, "
            "--kube-context, --namespace apply)",
        )
        p.add_argument("--kubeconfig", help="with --from-cluster (default: $KUBECONFIG)")
        p.add_argument("--kube-context", help="with --from-cluster (default: current context)")
        p.add_argument("--namespace", help="with --from-cluster: one namespace (default: all)")
        p.add_argument("--repo", required=True, help="local clone of cd-config")
        charts_arg(p)
        p.add_argument(
            "--config",
            help=f"the repository's kube-remedy settings file (default: REPO/{CONFIG_FILE})",
        )
        p.add_argument(
            "--output",
            choices=("text", "json"),
            default="text",
            help="text: tables for people; json: one document for CI jobs "
            "(schema: docs/output-schema.json)",
        )

    p = sub.add_parser("plan", help="show the change sets a report leads to")
    report_args(p)
    p.set_defaults(func=cmd_plan)

    bot_username_help = "the bot's GitLab username: never asked to review its own MRs"
    p = sub.add_parser("apply", help="local mode: one branch per change set + MR text")
    report_args(p)
    p.add_argument("--bot-username", default="kube-remedy", help=bot_username_help)
    p.add_argument(
        "--rich", action="store_true", help="render MR descriptions as Markdown, not plain text"
    )
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("demo", help="run apply on the shipped example (no GitLab, no Redis)")
    p.add_argument("--into", help="directory to create the example repository in")
    p.add_argument("--bot-username", default="kube-remedy", help=bot_username_help)
    p.add_argument(
        "--rich", action="store_true", help="render MR descriptions as Markdown, not plain text"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("explain", help="explain a control (or a scanner check it maps from)")
    p.add_argument(
        "control",
        help="a Kubescape control id (C-0017) or alias, a Trivy KSV id (KSV014), a Checkov id "
        "(CKV_K8S_22) or a Kyverno policy name (require-ro-rootfs)",
    )
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("controls", help="list known controls and their fixers")
    p.set_defaults(func=cmd_controls)

    p = sub.add_parser("run", help="one run against GitLab: plan and open/update MRs")
    p.add_argument("--gitlab-url", required=True, help="GitLab base URL (https://gitlab.com)")
    p.add_argument("--project", required=True, help="project id or group/name")
    p.add_argument("--token", help="GitLab token (default: $REMEDY_GITLAB_TOKEN / _FILE)")
    p.add_argument("--report", action="append", help="a report file instead of the CI artifact")
    p.add_argument("--artifact-job", default="kubescape", help="CI job that scans cd-config")
    p.add_argument(
        "--artifact-path",
        default="kubescape-results.json",
        help="path of the report inside that job's artifacts",
    )
    p.add_argument("--bot-username", help="the bot's GitLab username (default: settings)")
    p.add_argument("--config", help="bot settings file, YAML (default: $REMEDY_CONFIG)")
    charts_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("worker", help="a Celery worker (settings from REMEDY_* / REMEDY_CONFIG)")
    p.add_argument("--concurrency", type=int, help="threads (default: REMEDY_WORKER_CONCURRENCY)")
    p.add_argument("--config", help="bot settings file, YAML (default: $REMEDY_CONFIG)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("beat", help="the Celery beat scheduler (run exactly one)")
    p.add_argument("--config", help="bot settings file, YAML (default: $REMEDY_CONFIG)")
    p.set_defaults(func=cmd_beat)

    p = sub.add_parser("run-once", help="run one configured project now, without a worker")
    p.add_argument("project", help="a configured project id (group/name or numeric id)")
    p.add_argument("--config", help="bot settings file, YAML (default: $REMEDY_CONFIG)")
    p.set_defaults(func=cmd_run_once)

    p = sub.add_parser("serve", help="the web process: GitLab webhooks, Slack/Mattermost, /metrics")
    p.add_argument("--config", help="bot settings file, YAML (default: $REMEDY_CONFIG)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "notify-pipeline", help="in GitLab CI: tell the bot a scan of the default branch finished"
    )
    p.add_argument("--bot-url", required=True, help="base URL of the bot's web process")
    p.add_argument(
        "--secret-variable",
        default="KUBE_REMEDY_WEBHOOK_SECRET",
        help="environment variable holding the bot's webhook secret",
    )
    p.add_argument(
        "--scan-status",
        default=os.environ.get("KUBESCAPE_STATUS") or "success",
        choices=["success", "failed"],
        help="how the scan job ended (default: $KUBESCAPE_STATUS from the scan job, else success)",
    )
    p.set_defaults(func=cmd_notify_pipeline)

    p = sub.add_parser("score", help="compliance score per framework before and after (Markdown)")
    p.add_argument("--after", required=True, help="Kubescape JSON report of this branch")
    before = p.add_mutually_exclusive_group()
    before.add_argument("--before", help="Kubescape JSON report to compare with")
    before.add_argument(
        "--before-from-ci",
        action="store_true",
        help="in a merge-request pipeline: the target branch's latest kubescape artifact",
    )
    p.add_argument(
        "--note-token-variable",
        help="environment variable with a token (api scope): post the result as an MR note",
    )
    p.add_argument(
        "--branch-prefix",
        default="",
        help="score only merge requests whose source branch starts with this (the bot's branches)",
    )
    p.set_defaults(func=cmd_score)
    return parser


def _unreachable(exc: BaseException) -> bool:
    """Redis, the broker or the network went away mid-command: transient, not a bug."""
    import redis
    from kombu.exceptions import OperationalError

    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | OperationalError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    try:
        return int(args.func(args))
    except ForgeTransientError as exc:
        from rich.text import Text

        _err().print(
            Text("error: ", style="red") + Text(f"{exc} (transient: try again later)"),
            soft_wrap=True,
        )
        return EXIT_TRANSIENT
    except RemedyError as exc:
        from rich.text import Text

        _err().print(Text("error: ", style="red") + Text(safe(exc)), soft_wrap=True)
        return exc.exit_code
    except Exception as exc:
        if not _unreachable(exc):
            raise
        from rich.text import Text

        _err().print(
            Text("error: ", style="red")
            + Text(
                f"a service is unreachable ({type(exc).__name__}: {str(exc)[:200]}); try again later"
            ),
            soft_wrap=True,
        )
        return EXIT_TRANSIENT
    except KeyboardInterrupt:
        _err().print("interrupted; nothing was half-written")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
