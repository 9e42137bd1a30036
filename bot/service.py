"""The service the Celery tasks and ``remedy run`` call: plan a project, sync one change set,
refresh the dashboard. Each function re-reads GitLab (the source of truth) and is safe to run
twice; only the snapshot of cd-config and the report are cached on disk, keyed by the commit id
and the report's content, so repeated calls within a run do not re-download anything.

One plan per run, on both paths. ``remedy run`` plans, syncs and writes the dashboard with one
forge. The worker path (`plan_run`) plans once with the same reads, finds which change sets need
a write at all (the lifecycle run against a forge that only records writes), and hands the sync
tasks the reads the plan made (`RunInputs`: the default branch's commit, the report, the
dashboard, the bot's id, the tree), so a sync task re-plans from them without asking GitLab again.
cd-config's own files (``.remedy.yaml``, CODEOWNERS, the template) are read from the snapshot of
that commit, never over the API. A project's runtime evidence (``evidence`` setting) is read from
that snapshot, the worker's files and the cluster; the cluster's objects are recorded with the
run's reads, so its sync tasks plan from the same evidence. ``remedy run`` lists the bot's merge
requests once and keeps its own writes on that listing (`KeptListing`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from bot.cluster import ClusterAccess
from bot.codeowners import CodeOwners, load_codeowners, reviewers_for
from bot.errors import ConfigError, ForgeTransientError, RemedyError, ReportError
from bot.forge.base import ChangeRequest
from bot.forge.gitlab import SNAPSHOT_NAMES, SNAPSHOT_SUFFIXES, GitLabForge
from bot.lifecycle import (
    IGNORE_CONTROL_PREFIX,
    IGNORED_LABEL,
    LIMIT_SETTINGS,
    SyncDecision,
    SyncResult,
    bot_changes_by_key,
    parse_marker,
    same_findings,
)
from bot.locate.chart_sources import ChartCache
from bot.markdown import Md
from bot.markdown import escape as escape_markdown
from bot.plan import Plan, build_plan
from bot.publish import TEMPLATE_OVERRIDE, Descriptions, publish_plan
from bot.render import MR_TEMPLATE, environment
from bot.repo_config import CONFIG_FILE, RepoConfig, parse_repo_config
from bot.settings import ProjectConfig, RuntimeEvidenceSource, Settings
from bot.sources import decode_report, fetch_from_cluster, load_report
from bot.sources.base import Report
from bot.sources.merge import merge_reports
from bot.sources.runtime import (
    ClusterObjects,
    RuntimeEvidence,
    add_cluster,
    load_evidence,
    read_cluster,
)
from fixers.intent import WAIVE_PREFIX
from fixers.memo import Memo

DASHBOARD_TITLE = "kube-remedy dashboard"
DASHBOARD_DONE = 20
"""How many merged and resolved merge requests the dashboard lists (newest first)."""
_TICKED = re.compile(r"^\s*- \[[xX]\] .*<!-- kube-remedy-request:([a-z0-9/._-]+) -->", re.M)


@dataclass(frozen=True)
class ProjectPlan:
    """A project's plan with what produced it."""

    project: str
    plan: Plan
    report: Report
    config: RepoConfig
    config_error: str | None = None
    requested: frozenset[str] = field(default_factory=frozenset)
    codeowners: CodeOwners | None = None
    descriptions: Descriptions | None = None
    """The merge-request descriptions (cd-config's template if it rendered), each rendered once;
    None: built-in templates, rendered when published."""
    template_error: str | None = None
    evidence: str | None = None
    """What runtime evidence the plan used (`RuntimeEvidence.describe`), when configured."""


def open_forge(settings: Settings, project: ProjectConfig, *, retries: int = 0) -> GitLabForge:
    """A forge for one run. ``retries`` is python-gitlab's retry budget: 0 on the Celery path,
    whose tasks retry themselves (one retry layer, never two)."""
    if settings.gitlab_token is None:
        raise ConfigError("no GitLab token: set REMEDY_GITLAB_TOKEN or REMEDY_GITLAB_TOKEN_FILE")
    return GitLabForge(
        settings.gitlab_url,
        settings.gitlab_token.get_secret_value(),
        project.id,
        bot_username=settings.bot_username,
        max_retries=retries,
        assign_reviewers=settings.assign_reviewers,
        remember_listings=True,
    )


class RecordedReads:
    """A forge whose plan-time reads (the default branch's commit, the report artifact, the
    dashboard's text) are recorded as plain JSON, and answered from a record when given one:
    the sync tasks of a run re-plan from what the run task read. Everything else goes to the
    forge."""

    def __init__(
        self, forge: GitLabForge | KeptListing, record: Mapping[str, Any] | None = None
    ) -> None:
        self.forge = forge
        self.record: dict[str, Any] = dict(record or {})
        self.record.setdefault("artifacts", {})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.forge, name)

    def head(self, ref: str | None = None) -> str:
        if ref is not None:
            return self.forge.head(ref)
        if not self.record.get("head"):
            self.record["head"] = self.forge.head()
        return str(self.record["head"])

    def dashboard_text(self) -> str | None:
        if "dashboard" not in self.record:
            self.record["dashboard"] = self.forge.dashboard_text()
        value = self.record["dashboard"]
        return None if value is None else str(value)

    def fetch_artifact(self, job_name: str, artifact_path: str, ref: str | None = None) -> bytes:
        key = json.dumps([job_name, artifact_path, ref])
        stored = self.record["artifacts"].get(key)
        if stored is None:
            data = self.forge.fetch_artifact(job_name, artifact_path, ref)
            self.record["artifacts"][key] = base64.b64encode(zlib.compress(data)).decode()
            return data
        return zlib.decompress(base64.b64decode(stored))

    def cluster_evidence(self, source: RuntimeEvidenceSource) -> ClusterObjects:
        """Kubescape's runtime objects read live from the cluster (recorded like the report:
        a run's tasks plan from the objects its run task read)."""
        stored = self.record.get("evidence")
        if stored is None:
            access = ClusterAccess(kubeconfig=source.kubeconfig, context=source.context)
            objects = read_cluster(access, source.namespace)
            data = json.dumps(objects.to_json(), sort_keys=True).encode()
            self.record["evidence"] = base64.b64encode(zlib.compress(data)).decode()
            return objects
        return ClusterObjects.from_json(json.loads(zlib.decompress(base64.b64decode(stored))))


def checkout_reader(repo: Path, forge: Any) -> Callable[[str], str | None]:
    """Read cd-config's own files (``.remedy.yaml``, CODEOWNERS, templates) from the snapshot
    of the commit being planned: it holds every file of those kinds, so an absent one is absent.
    A path through a symlink, or of a kind the snapshot leaves out, is asked of the forge (which
    answers with the link's text, never the target's content)."""

    def read(path: str) -> str | None:
        name = PurePosixPath(path).name
        if not (name.endswith(SNAPSHOT_SUFFIXES) or name in SNAPSHOT_NAMES):
            return forge.read_file(path)  # type: ignore[no-any-return]
        target = repo
        for part in PurePosixPath(path).parts:
            target = target / part
            if target.is_symlink():
                return forge.read_file(path)  # type: ignore[no-any-return]
        if not target.is_file():
            return None
        return target.read_text(encoding="utf-8")

    return read


def _cache_dir(settings: Settings, project: ProjectConfig) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "__", project.id)
    path = Path(settings.data_dir) / "projects" / slug
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshot(
    settings: Settings, project: ProjectConfig, forge: GitLabForge | RecordedReads
) -> Path:
    """cd-config's default branch on disk, one directory per commit id (kept: the last one)."""
    head = forge.head()
    base = _cache_dir(settings, project) / "checkouts"
    target = base / head
    if target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=base.parent))
    forge.snapshot(tmp)
    base.mkdir(exist_ok=True)
    for old in base.iterdir():
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(target)  # atomic: a half-written snapshot is never used
    return target


def fetch_report(
    settings: Settings, project: ProjectConfig, forge: GitLabForge | RecordedReads
) -> Report:
    source = project.report
    if source.kind == "gitlab-artifact":
        data = forge.fetch_artifact(source.job, source.artifact_path, source.ref)
        origin = f"{project.id}: job {source.job}, artifact {source.artifact_path}"
    elif source.kind == "file":
        return load_report(Path(source.path))
    elif source.kind == "url":
        try:
            response = httpx.get(source.url, timeout=60, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ReportError(f"cannot fetch the report from {source.url}: {exc}") from exc
        data, origin = response.content, source.url
    else:
        access = ClusterAccess(kubeconfig=source.kubeconfig, context=source.context)
        return merge_reports(
            [fetch_from_cluster(f, access, source.namespace) for f in source.scanners]
        )
    return decode_report(data, origin)


EVIDENCE_SUFFIXES = (".json", ".yaml", ".yml")


def evidence_files(repo: Path, paths: Sequence[str]) -> list[Path]:
    """The evidence files that ``paths`` (files or folders of cd-config) name in the snapshot
    ``repo``; a path that is missing, leaves the repository or goes through a symlink is refused."""
    found: list[Path] = []
    for path in paths:
        target = repo
        for part in PurePosixPath(path).parts:
            target = target / part
            if target.is_symlink():
                raise ReportError(f"evidence path {path} in cd-config goes through a symlink")
        if target.is_file():
            found.append(target)
        elif target.is_dir():
            files = sorted(
                f
                for f in target.rglob("*")
                if f.suffix in EVIDENCE_SUFFIXES and f.is_file() and not f.is_symlink()
            )
            if not files:
                raise ReportError(
                    f"evidence folder {path} in cd-config holds no {', '.join(EVIDENCE_SUFFIXES)} file"
                )
            found.extend(files)
        else:
            raise ReportError(f"evidence path {path} is not in cd-config")
    return found


def project_evidence(
    source: RuntimeEvidenceSource, repo: Path, forge: RecordedReads
) -> RuntimeEvidence:
    """The runtime evidence a project's settings name: cd-config's files at the planned commit,
    the worker's files, then the cluster's objects."""
    evidence = load_evidence([*evidence_files(repo, source.repo), *map(Path, source.files)])
    if source.cluster:
        evidence = add_cluster(forge.cluster_evidence(source), evidence)
    return evidence


def requested_keys(dashboard: str | None) -> frozenset[str]:
    """Change sets a person ticked on the dashboard (propose despite limits or an ignore)."""
    return frozenset(_TICKED.findall(dashboard or ""))


def plan_project(settings: Settings, project: ProjectConfig) -> ProjectPlan:
    forge = open_forge(settings, project)
    return plan_with(forge, settings, project)


def plan_with(
    forge: GitLabForge | KeptListing | RecordedReads, settings: Settings, project: ProjectConfig
) -> ProjectPlan:
    """Plan a project through ``forge`` (a `RecordedReads` records or replays the reads)."""
    source = forge if isinstance(forge, RecordedReads) else RecordedReads(forge)
    repo = snapshot(settings, project, source)
    read = checkout_reader(repo, source)
    config_error = None
    try:
        config = parse_repo_config(read(CONFIG_FILE), CONFIG_FILE)
    except ConfigError as exc:
        config, config_error = RepoConfig(enabled=False), str(exc)
    report = fetch_report(settings, project, source)
    evidence = None
    if config.enabled and project.evidence is not None:
        evidence = project_evidence(project.evidence, repo, source)
    runtime = evidence.for_resource if evidence is not None else None
    left_out = reviewer_ignores(source)
    plan = (
        build_plan(
            report,
            repo,
            config,
            runtime=runtime,
            left_out=left_out,
            charts=ChartCache.configured([*project.chart_cache_dirs, *settings.chart_cache_dirs]),
        )
        if config.enabled
        else Plan((), ())
    )
    dashboard = source.dashboard_text()
    descriptions, template_error = plan_descriptions(read, plan, report, settings.bot_username)
    return ProjectPlan(
        project.id,
        plan,
        report,
        config,
        config_error,
        requested_keys(dashboard),
        codeowners=load_codeowners(read),
        descriptions=descriptions,
        template_error=template_error,
        evidence=evidence.describe() if evidence is not None else None,
    )


def plan_descriptions(
    read: Callable[[str], str | None], plan: Plan, report: Report, bot_username: str
) -> tuple[Descriptions, str | None]:
    """The plan's merge-request descriptions, with cd-config's template if it has one and it
    renders in the sandbox for the plan's first change set (or, with none, compiles); otherwise
    with the built-in one, and why the override was dropped (shown on the dashboard). The first
    change set's rendering is kept: publishing renders no description twice."""
    text = read(TEMPLATE_OVERRIDE)
    descriptions = Descriptions(
        report, bot_username=bot_username, overrides=None if text is None else {MR_TEMPLATE: text}
    )
    return descriptions, descriptions.check(plan.change_sets)


def reviewer_ignores(forge: GitLabForge | RecordedReads) -> dict[str, set[str]]:
    """Change-set key -> controls reviewers left out of that open bot MR with
    ``kube-remedy-ignore:C-NNNN`` labels (the ``ignore CONTROL`` command); known before
    planning, so the planner leaves them out of that change set in one pass."""
    wanted: dict[str, set[str]] = {}
    for change in forge.find_changes():
        parsed = parse_marker(change.description)
        controls = {
            label.removeprefix(IGNORE_CONTROL_PREFIX)
            for label in change.labels
            if label.startswith(IGNORE_CONTROL_PREFIX)
        }
        if parsed and controls and change.state == "opened":
            wanted.setdefault(parsed[0], set()).update(controls)
    return wanted


def _publish(
    forge: Any,
    settings: Settings,
    pp: ProjectPlan,
    keys: set[str] | None,
    *,
    only: frozenset[str] | None = None,
) -> SyncResult:
    plan = pp.plan
    if keys is not None:
        plan = Plan(tuple(cs for cs in plan.change_sets if cs.key in keys), plan.unfixable)
    return publish_plan(
        forge,
        plan,
        pp.report,
        pp.config,
        bot_username=settings.bot_username,
        branch_prefix=settings.branch_prefix,
        close_missing=keys is None,
        requested=pp.requested,
        reviewers=reviewers_for(pp.codeowners, pp.config.teams, exclude=[settings.bot_username]),
        descriptions=pp.descriptions,
        only=only,
    )


def sync_one(settings: Settings, project: ProjectConfig, pp: ProjectPlan, key: str) -> SyncDecision:
    """Create, update or leave the merge request of one change set."""
    forge = open_forge(settings, project)
    result = _publish(forge, settings, pp, {key})
    return next(d for d in result.decisions if d.key == key)


class _WritesRecorded:
    """A forge that reads through and records the writes the lifecycle would make, by branch,
    without making them: which change sets of a run need a sync task at all."""

    def __init__(self, forge: Any) -> None:
        self.forge = forge
        self.branches: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.forge, name)

    def commit_files(self, branch: str, files: Mapping[str, str], message: str, **_: Any) -> str:
        self.branches.add(branch)
        return "planned"

    def open_change(
        self,
        branch: str,
        title: str,
        description: str,
        labels: Sequence[str],
        reviewers: Sequence[str] = (),
    ) -> ChangeRequest:
        self.branches.add(branch)
        return ChangeRequest(0, branch, title, description, "opened", tuple(labels))

    def update_change(self, change: ChangeRequest, **_: Any) -> ChangeRequest:
        self.branches.add(change.branch)
        return change

    def close_change(self, change: ChangeRequest, comment: str) -> None:
        self.branches.add(change.branch)

    def comment(self, change: ChangeRequest, body: str) -> None:
        self.branches.add(change.branch)

    def delete_branch(self, branch: str) -> None:
        self.branches.add(branch)


class KeptListing:
    """A forge whose merge requests are listed once per run and kept current with the run's own
    writes (opened, updated, closed), so the dashboard after a run needs no second listing."""

    def __init__(self, forge: Any) -> None:
        self.forge = forge
        self._changes: list[ChangeRequest] | None = None
        self.failed_write = False
        """A write raised: what GitLab holds now is unknown, the next listing asks it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.forge, name)

    def find_changes(self) -> list[ChangeRequest]:
        if self._changes is None or self.failed_write:
            self._changes, self.failed_write = list(self.forge.find_changes()), False
        return list(self._changes)

    def _keep(self, change: ChangeRequest) -> ChangeRequest:
        if self._changes is not None:
            ids = [c.id for c in self._changes]
            if change.id in ids:
                self._changes[ids.index(change.id)] = change
            else:
                self._changes.append(change)
        return change

    def _write(self, write: Callable[[], Any]) -> Any:
        try:
            return write()
        except Exception:
            self.failed_write = True
            raise

    def open_change(self, *args: Any, **kwargs: Any) -> ChangeRequest:
        return self._keep(self._write(lambda: self.forge.open_change(*args, **kwargs)))

    def update_change(self, change: ChangeRequest, **kwargs: Any) -> ChangeRequest:
        return self._keep(self._write(lambda: self.forge.update_change(change, **kwargs)))

    def close_change(self, change: ChangeRequest, comment: str) -> None:
        self._write(lambda: self.forge.close_change(change, comment))
        self._keep(replace(change, state="closed"))


@dataclass(frozen=True)
class RunPlan:
    """One worker-path run, planned once: what the sync tasks need, and which of them to run."""

    pp: ProjectPlan
    inputs: dict[str, Any]
    """Plain JSON: the reads the plan made and what the forge learnt (`RecordedReads`,
    `GitLabForge.known`); a sync task re-plans from it with no request."""
    pending: tuple[tuple[str, str], ...]
    """(key, findings hash) of each change set whose MR needs a write; the hash is empty for an
    open MR whose change set is gone (to be closed)."""
    forge: GitLabForge

    @property
    def inputs_id(self) -> str:
        return inputs_id(self.inputs)


def inputs_id(inputs: Mapping[str, Any]) -> str:
    """Names a run's inputs: the default branch's commit and a digest of everything else."""
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return f"{(inputs.get('reads') or {}).get('head', '')}-{digest[:16]}"


_PLANS: Memo[tuple[str, str], ProjectPlan] = Memo(4)
"""Plans kept in this process: a worker's threads share the plan of their run."""
_PLANS_LOCK = threading.Lock()


def _remember(project: str, key: str, pp: ProjectPlan | None = None) -> ProjectPlan | None:
    """The plan this process made from the inputs named ``key`` (storing ``pp`` when given):
    planning is CPU-bound (seconds for hundreds of workloads), so a run plans once per
    process, not once per task."""
    with _PLANS_LOCK:
        if pp is not None:
            _PLANS.put((project, key), pp)
        return _PLANS.get((project, key))


def plan_run(settings: Settings, project: ProjectConfig) -> RunPlan:
    """Plan a project once for the workers (the reads of `remedy run`'s planning, no more)."""
    forge = open_forge(settings, project)
    reads = RecordedReads(forge)
    pp = plan_with(reads, settings, project)
    dry = _WritesRecorded(forge)
    result = _publish(dry, settings, pp, None)
    hashes = {cs.key: cs.findings_hash for cs in pp.plan.change_sets}
    pending = tuple(
        dict.fromkeys(
            (d.key, hashes.get(d.key, "")) for d in result.decisions if d.branch in dry.branches
        )
    )
    if any(h for _, h in pending):
        forge.list_files()  # once here, not once per commit of every sync task
    inputs = {"reads": reads.record, "forge": forge.known()}
    run = RunPlan(pp, inputs, pending, forge)
    if pending:
        _remember(project.id, run.inputs_id, pp)
    return run


def _replan(
    settings: Settings, project: ProjectConfig, inputs: Mapping[str, Any]
) -> tuple[GitLabForge, ProjectPlan]:
    forge = open_forge(settings, project)
    forge.prime(inputs.get("forge") or {})
    key = inputs_id(inputs)
    pp = _remember(project.id, key)
    if pp is None:
        pp = plan_with(RecordedReads(forge, inputs.get("reads")), settings, project)
        _remember(project.id, key, pp)
    return forge, pp


def sync_planned(
    settings: Settings, project: ProjectConfig, inputs: Mapping[str, Any], key: str, digest: str
) -> SyncDecision | None:
    """A sync task's body: re-plan from the run's ``inputs``, then create, update, leave or
    close the MR of ``key`` alone. None when the plan no longer agrees with the run task's
    (``digest``): a newer run owns that decision."""
    forge, pp = _replan(settings, project, inputs)
    current = {cs.key: cs.findings_hash for cs in pp.plan.change_sets}
    if current.get(key, "") != digest:
        return None
    result = _publish(forge, settings, pp, None, only=frozenset({key}))
    return next((d for d in result.decisions if d.key == key), None)


def refresh_planned(settings: Settings, project: ProjectConfig, inputs: Mapping[str, Any]) -> None:
    """The dashboard task's body: re-plan from the run's ``inputs`` and rewrite the dashboard."""
    forge, pp = _replan(settings, project, inputs)
    _write_dashboard(forge, settings, pp)


def finish_run(settings: Settings, run: RunPlan) -> None:
    """A run with nothing to sync: the dashboard, with the forge that planned it."""
    _write_dashboard(run.forge, settings, run.pp)


def _write_dashboard(forge: GitLabForge, settings: Settings, pp: ProjectPlan) -> None:
    forge.upsert_dashboard(
        DASHBOARD_TITLE,
        render_dashboard(pp, list(forge.find_changes()), branch_prefix=settings.branch_prefix),
    )


def render_dashboard(
    pp: ProjectPlan,
    changes: list,  # type: ignore[type-arg]
    result: SyncResult | None = None,
    branch_prefix: str = "remedy/",
) -> str:
    """The dashboard issue's Markdown."""
    by_key = bot_changes_by_key(changes, branch_prefix)
    open_, ignored, pending = [], [], []
    for cs in pp.plan.change_sets:
        mrs = by_key.get(cs.key, [])
        opened = [c for c in mrs if c.state == "opened"]
        # only a person's close is an ignore: the run labels those (the bot's own are not)
        closed = [
            c
            for c in mrs
            if c.state == "closed" and IGNORED_LABEL in c.labels and same_findings(c, cs)
        ]
        if opened:
            open_.append((cs, opened[0]))
        elif closed:
            ignored.append((cs, closed[-1]))
        else:
            pending.append(cs)
    planned = {cs.key for cs in pp.plan.change_sets}
    merged = [c for cs in by_key.values() for c in cs if c.state == "merged"]
    resolved = [
        c
        for key, cs in by_key.items()
        for c in cs
        if c.state == "closed" and key not in planned and IGNORED_LABEL not in c.labels
    ]
    # Every finding ends visible: fixed (above), waived or ignored, not fixed with why,
    # already compliant, and the scanner results that map to no control, by id.
    groups: dict[str, list] = {}  # type: ignore[type-arg]
    waived = []
    for u in pp.plan.unfixable:
        if u.category == "ignored" or u.reason.startswith(WAIVE_PREFIX):
            waived.append(u)
        else:
            groups.setdefault(u.category, []).append(u)
    template = environment().get_template("dashboard.md.j2")
    text = template.render(
        pp=pp,
        open=open_,
        ignored=ignored,
        pending=pending,
        unfixable=groups,
        not_fixed=sum(len(items) for items in groups.values()),
        waived=waived,
        compliant=pp.plan.already_compliant,
        unread=pp.report.skipped,
        fixed=len(pp.plan.fixed_findings),
        config_error=pp.config_error,
    )
    text += (
        environment()
        .get_template("dashboard_lifecycle.md.j2")
        .render(
            merged=sorted(merged, key=lambda c: -c.id)[:DASHBOARD_DONE],
            resolved=sorted(resolved, key=lambda c: -c.id)[:DASHBOARD_DONE],
            failed=result.failed if result else (),
            held=len(result.held_back) if result else 0,
            next_slot=result.next_slot.strftime("%Y-%m-%d %H:%M UTC")
            if result and result.next_slot
            else None,
            limits=pp.config.limits,
            # the bot's own wording, Markdown on purpose (code spans)
            settings={name: Md(text) for name, text in LIMIT_SETTINGS.items()},
        )
    )
    if pp.evidence:
        text += f"\n> Plans use {escape_markdown(pp.evidence)}\n"
    if pp.template_error:
        text += (
            "\n> **The merge-request template override was not used** (the built-in one was): "
            f"{escape_markdown(pp.template_error)}\n"
        )
    return text


def refresh_dashboard(settings: Settings, project: ProjectConfig, pp: ProjectPlan) -> None:
    _write_dashboard(open_forge(settings, project), settings, pp)


@dataclass(frozen=True)
class RunSummary:
    result: SyncResult
    unfixable: int
    dashboard: int | None
    dashboard_error: RemedyError | None = None

    @property
    def failed(self) -> bool:
        return bool(self.result.failed) or self.dashboard_error is not None

    @property
    def transient(self) -> bool:
        """Every failure of the run is transient: trying again later may succeed."""
        return self.result.transient_only and (
            self.dashboard_error is None or isinstance(self.dashboard_error, ForgeTransientError)
        )

    def lines(self) -> list[str]:
        out = [f"{d.action:16} {d.branch}: {d.reason}" for d in self.result.decisions]
        if self.dashboard_error is not None:
            out.append(f"the dashboard was not refreshed: {self.dashboard_error}")
        else:
            out.append(
                f"{self.unfixable} findings not fixable in git: see dashboard issue "
                f"#{self.dashboard}"
            )
        return out


def run_project_once(settings: Settings, project: ProjectConfig) -> RunSummary:
    """One whole run, in process: plan, sync every change set, refresh the dashboard.

    No Celery here, so python-gitlab does the retrying (``settings.max_retries``). A change
    set that fails is recorded and the others go on; the dashboard is refreshed in any case."""
    forge = KeptListing(open_forge(settings, project, retries=settings.max_retries))
    pp = plan_with(forge, settings, project)
    result = _publish(forge, settings, pp, None)
    try:
        iid: int | None = forge.upsert_dashboard(
            DASHBOARD_TITLE,
            render_dashboard(pp, forge.find_changes(), result, settings.branch_prefix),
        )
    except RemedyError as exc:
        return RunSummary(result, len(pp.plan.unfixable), None, exc)
    return RunSummary(result, len(pp.plan.unfixable), iid)
