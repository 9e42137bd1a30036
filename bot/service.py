"""The service the Celery tasks and ``remedy run`` call: plan a project, sync one change set,
refresh the dashboard. Each function re-reads GitLab (the source of truth) and is safe to run
twice; only the snapshot of cd-config and the report are cached on disk, keyed by the commit id
and the report's content, so repeated calls within a run do not re-download anything.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.cluster import ClusterAccess
from bot.codeowners import CodeOwners, load_codeowners, reviewers_for
from bot.errors import ConfigError, ForgeTransientError, RemedyError, ReportError
from bot.forge.gitlab import GitLabForge
from bot.lifecycle import (
    IGNORE_CONTROL_PREFIX,
    IGNORED_LABEL,
    LIMIT_SETTINGS,
    SyncDecision,
    SyncResult,
    marker_for,
    parse_marker,
    same_findings,
)
from bot.markdown import Md
from bot.markdown import escape as escape_markdown
from bot.plan import Plan, build_plan
from bot.publish import publish_plan
from bot.render import MR_TEMPLATE, check_template, describe_change_set, environment
from bot.repo_config import CONFIG_FILE, IgnoreRule, RepoConfig, parse_repo_config
from bot.settings import ProjectConfig, Settings
from bot.sources import decode_report, fetch_from_cluster, load_report
from bot.sources.base import Report
from bot.sources.merge import merge_reports
from bot.template_sandbox import TemplateRefused

DASHBOARD_TITLE = "kube-remedy dashboard"
DASHBOARD_DONE = 20
"""How many merged and resolved merge requests the dashboard lists (newest first)."""
TEMPLATE_OVERRIDE = f".remedy/templates/{MR_TEMPLATE}"
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
    overrides: dict[str, str] = field(default_factory=dict)
    """Templates cd-config overrides (only ones that rendered), by name."""
    template_error: str | None = None

    @property
    def change_sets(self):  # type: ignore[no-untyped-def]
        return self.plan.change_sets

    @property
    def unfixable(self):  # type: ignore[no-untyped-def]
        return self.plan.unfixable


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
    )


def _cache_dir(settings: Settings, project: ProjectConfig) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "__", project.id)
    path = Path(settings.data_dir) / "projects" / slug
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshot(settings: Settings, project: ProjectConfig, forge: GitLabForge) -> Path:
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


def fetch_report(settings: Settings, project: ProjectConfig, forge: GitLabForge) -> Report:
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


def requested_keys(dashboard: str | None) -> frozenset[str]:
    """Change sets a person ticked on the dashboard (propose despite limits or an ignore)."""
    return frozenset(_TICKED.findall(dashboard or ""))


def plan_project(settings: Settings, project: ProjectConfig) -> ProjectPlan:
    forge = open_forge(settings, project)
    return plan_with(forge, settings, project)


def plan_with(forge: GitLabForge, settings: Settings, project: ProjectConfig) -> ProjectPlan:
    config_error = None
    try:
        config = parse_repo_config(forge.read_file(CONFIG_FILE), CONFIG_FILE)
    except ConfigError as exc:
        config, config_error = RepoConfig(enabled=False), str(exc)
    report = fetch_report(settings, project, forge)
    repo = snapshot(settings, project, forge)
    plan = build_plan(report, repo, config) if config.enabled else Plan((), ())
    extra = reviewer_ignores(forge, plan)
    if extra:
        config = config.model_copy(update={"ignore": [*config.ignore, *extra]})
        plan = build_plan(report, repo, config)
    dashboard = forge.dashboard_text() if hasattr(forge, "dashboard_text") else None
    overrides, template_error = template_overrides(forge, plan, settings.bot_username)
    return ProjectPlan(
        project.id,
        plan,
        report,
        config,
        config_error,
        requested_keys(dashboard),
        codeowners=load_codeowners(forge.read_file),
        overrides=overrides,
        template_error=template_error,
    )


def template_overrides(
    forge: GitLabForge, plan: Plan, bot_username: str
) -> tuple[dict[str, str], str | None]:
    """cd-config's merge-request template, if it has one and it renders in the sandbox for this
    plan's first change set (or, with none, compiles); otherwise the built-in one and why the
    override was dropped (shown on the dashboard)."""
    text = forge.read_file(TEMPLATE_OVERRIDE)
    if text is None:
        return {}, None
    overrides = {MR_TEMPLATE: text}
    try:
        if not plan.change_sets:
            check_template(text, MR_TEMPLATE)
        for cs in plan.change_sets[:1]:
            mark = marker_for(cs)
            text = describe_change_set(
                cs, marker=mark, bot_username=bot_username, overrides=overrides
            )
            if mark not in text:
                # without the marker the bot would lose track of its merge requests
                return {}, f"{TEMPLATE_OVERRIDE}: must output {{{{ marker }}}}"
    except TemplateRefused as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return {}, f"{TEMPLATE_OVERRIDE}{where}: {exc}".replace("\n", " ")
    except Exception as exc:  # a repository's template must never fail the run
        return {}, f"{TEMPLATE_OVERRIDE}: {exc}".replace("\n", " ")
    return overrides, None


def reviewer_ignores(forge: GitLabForge, plan: Plan) -> list[IgnoreRule]:
    """Ignore rules from ``kube-remedy-ignore:C-NNNN`` labels reviewers put on open bot MRs
    (the ``ignore CONTROL`` command): that control is left out of that MR's resources."""
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
    return [
        IgnoreRule(
            control=finding.control_id,
            resource=finding.resource.key,
            reason=f"a reviewer asked to leave {finding.control_id} out of this merge request",
        )
        for cs in plan.change_sets
        if cs.key in wanted
        for finding in cs.findings
        if finding.control_id in wanted[cs.key]
    ]


def _publish(
    forge: GitLabForge, settings: Settings, pp: ProjectPlan, keys: set[str] | None
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
        overrides=pp.overrides,
    )


def sync_one(settings: Settings, project: ProjectConfig, pp: ProjectPlan, key: str) -> SyncDecision:
    """Create, update or leave the merge request of one change set."""
    forge = open_forge(settings, project)
    result = _publish(forge, settings, pp, {key})
    return next(d for d in result.decisions if d.key == key)


def render_dashboard(
    pp: ProjectPlan,
    changes: list,  # type: ignore[type-arg]
    result: SyncResult | None = None,
    branch_prefix: str = "remedy/",
) -> str:
    """The dashboard issue's Markdown."""
    by_key: dict[str, list] = {}  # type: ignore[type-arg]
    for change in changes:
        parsed = parse_marker(change.description)
        if parsed and change.author_is_bot and change.branch.startswith(branch_prefix):
            by_key.setdefault(parsed[0], []).append(change)
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
    groups: dict[str, list] = {}  # type: ignore[type-arg]
    for u in pp.plan.unfixable:
        groups.setdefault(u.category, []).append(u)
    template = environment().get_template("dashboard.md.j2")
    text = template.render(
        pp=pp,
        open=open_,
        ignored=ignored,
        pending=pending,
        unfixable=groups,
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
    if pp.template_error:
        text += (
            "\n> **The merge-request template override was not used** (the built-in one was): "
            f"{escape_markdown(pp.template_error)}\n"
        )
    return text


def refresh_dashboard(settings: Settings, project: ProjectConfig, pp: ProjectPlan) -> None:
    forge = open_forge(settings, project)
    forge.upsert_dashboard(
        DASHBOARD_TITLE,
        render_dashboard(pp, list(forge.find_changes()), branch_prefix=settings.branch_prefix),
    )


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
    forge = open_forge(settings, project, retries=settings.max_retries)
    pp = plan_with(forge, settings, project)
    result = _publish(forge, settings, pp, None)
    try:
        iid: int | None = forge.upsert_dashboard(
            DASHBOARD_TITLE,
            render_dashboard(pp, list(forge.find_changes()), result, settings.branch_prefix),
        )
    except RemedyError as exc:
        return RunSummary(result, len(pp.plan.unfixable), None, exc)
    return RunSummary(result, len(pp.plan.unfixable), iid)
