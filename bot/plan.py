"""Turn a report's findings into verified change sets (one merge request each).

For each finding: is it fixable in git at all, is it wanted, where does it live (locate), what
does its fixer propose (plan), does the result verify (re-read, re-check)? Verified edits are
stacked per change-set group on a `FileOverlay`; nothing touches the repository here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

from bot import controls as catalog
from bot.errors import ChartError, RemedyError
from bot.evidence import workload_intent
from bot.heap import fewer_collections
from bot.kyverno_policies import policy_files
from bot.locate.base import FileOverlay, Target
from bot.locate.chart_sources import ChartCache, uncached_reason
from bot.locate.kustomize import KustomizeIndex, locate_kustomize, overlays_note
from bot.locate.kustomize_build import kustomization_dirs
from bot.locate.manifest import ManifestIndex, locate_manifest
from bot.model import ChangeSet, FileChange, PlannedFix, Unfixable
from bot.repo_config import IgnoreRule, RepoConfig, defaults
from bot.sources.base import Report
from bot.verify import verify_fix, workload_document
from bot.waivers import Waiver, waiver_change_set
from fixers.base import Fixer
from fixers.edits import EditError, load_documents
from fixers.intent import (
    TOKEN_CONTROLS,
    WAIVE_PREFIX,
    Comment,
    WorkloadIntent,
    decline,
    stale_comments,
)
from fixers.model import (
    AlreadyCompliant,
    AnyEdit,
    Finding,
    Fixed,
    NeedsHuman,
    ResourceRef,
    Risk,
    YamlPath,
)
from fixers.policy import FixContext
from fixers.registry import all_fixers, fixer_for, run_fixer
from fixers.runtime_evidence import WorkloadRuntime, alert_summary
from fixers.view import WORKLOAD_KINDS, Neighbourhood, PodView

Progress = Callable[[int, int], None]
"""Told (findings settled, findings in all) as a plan goes: a finding is settled when it is
triaged, found not to be in the repository, or once its batch is fixed and verified (the
long part), so the count never runs ahead of the work."""
Intent = tuple[WorkloadIntent, Mapping[YamlPath, Comment]]
RuntimeLookup = Callable[[ResourceRef], WorkloadRuntime | None]
"""Runtime evidence about a workload (`bot.sources.runtime.RuntimeEvidence.for_resource`)."""


@dataclass(frozen=True)
class Plan:
    """What a run would do: change sets, and every finding it will not fix, with why."""

    change_sets: tuple[ChangeSet, ...]
    unfixable: tuple[Unfixable, ...]
    already_compliant: tuple[Finding, ...] = ()
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def fixed_findings(self) -> tuple[Finding, ...]:
        return tuple(f for cs in self.change_sets for f in cs.fixed)


def _order(finding: Finding) -> tuple[str, str, str]:
    """How plans list findings: by resource, then control, then container."""
    return (finding.resource.key, finding.control_id, finding.container or "")


def _merged(first: Finding, other: Finding) -> Finding:
    ids = tuple(dict.fromkeys((*first.scanner_ids, *other.scanner_ids)))
    return dataclasses.replace(first, scanner_ids=ids, severity=max(first.severity, other.severity))


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per (control, resource, container) and source file; scanner ids of
    duplicates are merged.

    The same resource may be defined in several files (an overlay per cluster, say): findings
    that name different places (file, document, line) stay apart, and a finding naming no file
    (read from a cluster) is merged into those that do. Places that turn out to be one
    document (scans run from different directories, or one scanner giving a document index
    and another a line) are merged once located, by `build_plan`.
    """
    # Most identities have one finding: it stands alone until a second one comes.
    groups: dict[tuple[str, str, str], Finding | dict[_Where | None, Finding]] = {}
    keys = _ResourceKeys()
    for finding in findings:
        identity = (finding.control_id, keys[finding.resource], finding.container or "")
        first = groups.setdefault(identity, finding)
        if first is finding:
            continue
        by_file = {_where(first): first} if isinstance(first, Finding) else first
        groups[identity] = by_file
        where = _where(finding)
        by_file[where] = _merged(by_file[where], finding) if where in by_file else finding
    merged: list[Finding] = []
    for group in groups.values():
        if isinstance(group, Finding):
            merged.append(group)
            continue
        by_file = group
        pathless = by_file.pop(None, None)
        if pathless is None:
            merged.extend(by_file.values())
        elif not by_file:
            merged.append(pathless)
        else:
            merged.extend(_merged(f, pathless) for f in by_file.values())
    return sorted(merged, key=keys.order)


_Where = tuple[str, int | None, int | None]


def _where(finding: Finding) -> _Where | None:
    """The place a finding names (file, document, line), None when it names no file."""
    source = finding.source
    return (source.path, source.document_index, source.line) if source.path else None


class _ResourceKeys:
    """`ResourceRef.key` spelled once per resource (the property builds a new string on each
    call), for loops over every finding of a big report; a reader's findings of one resource
    share its `ResourceRef`."""

    def __init__(self) -> None:
        self._keys: dict[int, tuple[ResourceRef, str]] = {}  # the ref kept: its id stays its own

    def __getitem__(self, ref: ResourceRef) -> str:
        found = self._keys.get(id(ref))
        if found is None:
            found = self._keys[id(ref)] = (ref, ref.key)
        return found[1]

    def order(self, finding: Finding) -> tuple[str, str, str]:
        """`_order`, with the shared key."""
        return (self[finding.resource], finding.control_id, finding.container or "")


@lru_cache(maxsize=8192)
def _slug(text: str) -> str:
    # memoised: every finding's change-set key is made several times while it is planned
    text = re.sub(r"\.(ya?ml)$", "", text.lower())
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:80] or "root"


BREAKING_FIXERS = frozenset({"resource_limits"})
"""Medium-risk fixers whose change can still stop a workload (a memory limit kills it); every
high-risk fixer counts too. See `travels_alone`."""


def travels_alone(fixer: Fixer) -> bool:
    """Whether ``fixer``'s change can break a workload (non-root user, read-only root, host
    namespaces, limits, ...): such a change is never hidden in a change set of harmless ones."""
    return fixer.risk >= Risk.HIGH or fixer.name in BREAKING_FIXERS


@cache
def _mixed_families() -> frozenset[str]:
    """Families holding both fixers that travel alone and harmless ones: only there does a
    risky fix need a change set of its own (a family of risky fixers is already apart)."""
    risky: dict[str, set[bool]] = defaultdict(set)
    for fixer in all_fixers():
        risky[fixer.family].add(travels_alone(fixer))
    return frozenset(family for family, kinds in risky.items() if len(kinds) > 1)


def group_key(
    config: RepoConfig, fixer: Fixer, target: Target, finding: Finding, split_risky: bool = True
) -> str:
    """The change-set key (branch name suffix) a fix belongs to, per the grouping setting.

    A fix that can break a workload (`travels_alone`) gets its own key where it would otherwise
    share one with harmless fixes: the grouping key with ``--<fixer>`` appended (``--`` never
    occurs in a slug, and a suffix rather than a new path level keeps branch names from
    nesting under each other)."""
    family = fixer.family
    where = target.location.chart or target.location.path
    if config.grouping == "file":
        key = f"fix/{_slug(where)}"
    elif config.grouping == "family":
        key = f"{family}/all"
    elif config.grouping == "resource":
        res = finding.resource
        ident = "-".join((res.kind, res.namespace or "", res.name))
        key = f"{family}/{_slug(ident)}"
    else:
        key = f"{family}/{_slug(where)}"
    if split_risky and (config.grouping == "file" or family in _mixed_families()):
        return f"{key}--{_slug(fixer.name)}" if travels_alone(fixer) else key
    return key


def _title(family: str, fixes: list[PlannedFix]) -> str:
    resources = sorted({str(f.finding.resource) for f in fixes})
    controls = sorted({f.finding.control_id for f in fixes})
    where = fixes[0].location.chart or fixes[0].location.path
    subject = resources[0] if len(resources) == 1 else f"{len(resources)} workloads"
    return f"kube-remedy: {family} fixes for {subject} in {where} ({', '.join(controls)})"


class Locator:
    """Finds targets for findings: plain manifests first, then Helm charts when present
    (charts the deployments pull from chart repositories are looked up in ``charts``)."""

    def __init__(
        self, root: Path, default_namespace: str = "default", charts: ChartCache | None = None
    ) -> None:
        self.root = root
        self.charts = charts
        self.kustomize = KustomizeIndex.build(root) if kustomization_dirs(root) else None
        # A kustomize patch file is a fragment of an object, never a manifest of its own.
        patches = self.kustomize.patches if self.kustomize is not None else {}
        self.manifests = ManifestIndex.build(
            root, default_namespace=default_namespace, skip=frozenset(patches)
        )
        self._helm: Callable[[Finding], Target | str] | Literal[False] | None = None
        self._index: Any = None  # the HelmIndex, once built

    def locate(self, finding: Finding) -> Target | str:
        if self.kustomize is not None:  # an overlay's resource: never a same-named base file
            rendered = locate_kustomize(finding, self.kustomize)
            if rendered is not None:
                return rendered
        try:
            found: Target | str = locate_manifest(finding, self.manifests)
        except RemedyError as exc:  # a scanner path is a hint: a chart may still render it
            found = str(exc)
        if not isinstance(found, str):
            return found
        helm = self._helm_locator()
        if helm is None:
            return found
        located = helm(finding)
        if not isinstance(located, str):
            return located
        # A remote chart no cache holds is the likely home: say so first, never only
        # "not in this repository".
        uncached = uncached_reason(finding, self._index.missing)
        return f"{uncached}; {found}; {located}" if uncached else f"{found}; {located}"

    def compliant_as_deployed(self, finding: Finding) -> bool:
        """Whether the finding only exists in a render without its deployment's namespace."""
        from bot.locate import helm

        if finding.control_id not in helm.NAMESPACE_ONLY or self._helm_locator() is None:
            return False
        return helm.compliant_as_deployed(finding, self.root, self._index)

    def never_deployed(self, finding: Finding) -> str | None:
        """Why the finding's resource never reaches the cluster (a chart's test hook its
        deployments do not run), or None."""
        from bot.locate import helm

        if finding.resource.kind not in helm.HOOK_KINDS or self._helm_locator() is None:
            return None
        return helm.never_deployed(finding, self.root, self._index)

    def _helm_locator(self) -> Callable[[Finding], Target | str] | None:
        if self._helm is None:
            from bot.locate import helm

            index = helm.HelmIndex.build(
                self.root, kustomize=self.kustomize, chart_cache=self.charts
            )
            if not index.charts and not index.missing:
                self._helm = False
            else:
                self._index = index
                located: dict[tuple[Any, ...], Target | str] = {}

                def locate_helm(finding: Finding) -> Target | str:
                    # Findings of one resource (container, scanner hints) share one target.
                    key = (finding.resource, finding.source, finding.container)
                    if key not in located:
                        located[key] = helm.locate_helm(finding, self.root, index)
                    return located[key]

                self._helm = locate_helm
        return self._helm or None


class Shared:
    """One copy of each value that repeats across the fixes of a plan: a fixer proposes the
    same edits with the same notes on every workload of one shape, and a big report's plan
    holds hundreds of thousands of fixes until its end.

    Edits are told apart by type and ``repr``, never by ``==`` alone (``Set(p, True) ==
    Set(p, 1)``, yet one writes ``true`` and the other ``1``)."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._notes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._edits: dict[tuple[type, str], AnyEdit] = {}
        self._edit_lists: dict[tuple[int, ...], tuple[AnyEdit, ...]] = {}

    def text(self, value: str) -> str:
        return self._texts.setdefault(value, value)

    def texts(self, values: tuple[str, ...]) -> tuple[str, ...]:
        return self._notes.setdefault(values, values)

    def edits(self, edits: tuple[AnyEdit, ...]) -> tuple[AnyEdit, ...]:
        each = tuple(self._edits.setdefault((type(e), repr(e)), e) for e in edits)
        # the edits are the pool's own by now: their ids name them while the pool lives
        return self._edit_lists.setdefault(tuple(map(id, each)), each)


def planned_fix(
    finding: Finding,
    target: Target,
    fixer: Fixer,
    result: Fixed,
    edits: tuple[AnyEdit, ...],
    shared: Shared | None = None,
) -> PlannedFix:
    """The fix of ``finding``; with ``shared``, holding the values other fixes hold already."""
    shared = shared or Shared()
    as_written = getattr(target, "as_written", None)  # a chart's switch for a new manifest
    if callable(as_written):
        result = as_written(result)
    return PlannedFix(
        finding,
        target.location,
        shared.text(fixer.name),
        shared.text(fixer.family),
        fixer.risk,
        shared.edits(edits),
        shared.texts(result.notes),
        shared.texts(result.values_used),
    )


_RefusedAs = Literal["needs-human", "not-in-repo", "verify-failed", "chart", "ignored"]
"""Why the planner itself (rather than triage) leaves a finding unfixed."""


@dataclass
class _PlanState:
    """What one planning run has decided so far, in the order it decided it.

    Orders matter: `Plan.already_compliant` keeps the order findings were found compliant,
    waivers are proposed in the order they were found, and unfixable findings of one resource,
    control and container keep theirs through the final (stable) sort.
    """

    unfixable: list[Unfixable] = field(default_factory=list)
    compliant: list[Finding] = field(default_factory=list)
    waived: list[Waiver] = field(default_factory=list)
    deferred: list[tuple[Finding, Target]] = field(default_factory=list)
    """Findings a fixer declined on the first pass, tried once more after all the others."""
    overlays: dict[str, FileOverlay] = field(default_factory=dict)
    """Each change set's files so far (by change-set key), every verified edit stacked on."""
    originals: dict[str, str | None] = field(default_factory=dict)
    """The checkout's texts, read once for all of the overlays (`FileOverlay.originals`)."""
    links: dict[str, bool] = field(default_factory=dict)
    """Which paths of the checkout lie through a symlink (`FileOverlay.links`)."""
    fixes: dict[str, list[PlannedFix]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)
    """What the plan says beside its change sets (why a finding needs no fix, say)."""
    shared: Shared = field(default_factory=Shared)
    """The values the fixes share (`planned_fix`)."""

    def refuse(self, finding: Finding, reason: str, category: _RefusedAs) -> None:
        self.unfixable.append(Unfixable(finding, reason, category))


_Proposal = tuple[Finding, Fixer, Fixed, tuple[AnyEdit, ...]]
"""A fix a fixer proposed: the finding, its fixer, the result and every edit it needs."""


class Planner:
    """Plans a report against one repository, step by step.

    `plan` runs the steps in order: `triage` (is the finding for a fixer at all?), `locate`
    (where does it live?), `batches` (which findings share a view and a change set), `fix_batch`
    and `fix_one` (ask the fixer), `write` (on a trial copy) and `verify` (re-read, re-check),
    then `group_change_sets` groups the verified fixes into one change set per key.
    ``config`` names its policy file relative to the repository (`build_plan` sees to it).
    """

    def __init__(
        self,
        repo_root: Path,
        config: RepoConfig,
        locator: Locator,
        *,
        runtime: RuntimeLookup | None = None,
        split_risky: bool = True,
        left_out: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.repo_root = repo_root
        self.config = config
        self.locator = locator
        self.runtime = runtime
        self.split_risky = split_risky
        self.left_out = left_out or {}
        """Controls reviewers asked to leave out, by change-set key (``ignore`` command)."""
        self.state = _PlanState()

    def plan(self, report: Report, progress: Progress | None = None) -> Plan:
        """Every finding of ``report`` planned: fixed in a change set, compliant or unfixable.

        Findings a fixer declines are tried once more after the others: a decline often
        depends on another fix of the same change set (allowPrivilegeEscalation waits for
        privileged, say).
        """
        self.state = _PlanState()
        kept, located = self.triage_and_locate(dedupe(report.findings), progress)
        findings = sorted((*kept, *(f for f, _ in located)), key=_order)
        batches = self.batches(located)
        del located  # the batches hold them now
        pending = sum(len(batch) for batch, _ in batches.values())
        # Each batch is let go once planned (what it planned holds its findings): a big
        # report's batches are not all kept until the plan's end.
        for key in list(batches):
            batch, target = batches.pop(key)
            self.fix_batch(batch, target, key[1])
            pending -= len(batch)
            if progress:
                progress(len(findings) - pending, len(findings))
        for finding, target in list(self.state.deferred):
            self.fix_one(finding, target, last_try=True)
        return self.group_change_sets(findings)

    def triage_and_locate(
        self, findings: list[Finding], progress: Progress | None
    ) -> tuple[list[Finding], list[tuple[Finding, Target]]]:
        """The findings settled without a fixer (triaged out, not in the repository, or a
        chart's test no deployment runs), and the others with their targets.

        Findings that turn out to name one document in two spellings (scans run from
        different directories) are merged here, and findings of one document share a target.
        """
        kept: list[Finding] = []
        targets: dict[tuple[str, int, str], Target] = {}
        placed: list[tuple[Finding, Target, tuple[str, int, str]]] = []

        def settled(finding: Finding) -> None:
            kept.append(finding)
            if progress:
                progress(len(kept), len(findings))

        for finding in findings:
            if self.triage(finding):
                settled(finding)
                continue
            found = self.locate(finding)
            if isinstance(found, str):
                self.state.refuse(finding, found, "not-in-repo")
                settled(finding)
                continue
            helm_target = found.location.kind.startswith("helm-")
            unused = self.locator.never_deployed(finding) if helm_target else None
            if unused is not None:
                self.state.compliant.append(finding)
                self.state.notes.append(unused)
                settled(finding)
                continue
            # One file deployed twice is two targets: a Kustomize base built by two overlays,
            # or a Helm template deployed by two Applications (`why` names the overlay or the
            # deployment; it is empty for plain manifests).
            place = (found.location.path, found.location.document_index, found.location.why)
            placed.append((finding, targets.setdefault(place, found), place))
        # A scanner that cannot tell "default" from unset (Trivy) names no namespace where
        # another (Checkov) names one: located in the same document, the resource takes the
        # one namespace the others name, and their findings of a control are one. A waiver
        # naming the namespace the document itself names covers the finding that names none.
        spellings: dict[tuple[str | int, ...], set[str]] = {}
        for finding, _, place in placed:
            ref = finding.resource
            if ref.namespace is not None:
                spellings.setdefault((ref.kind, ref.name, *place), set()).add(ref.namespace)
        located: dict[tuple[str | int, ...], tuple[Finding, Target]] = {}
        for finding, target, place in placed:
            ref = finding.resource
            if ref.namespace is None:
                others = spellings.get((ref.kind, ref.name, *place), set())
                other = next(iter(others)) if len(others) == 1 else None
                rule = self._waived_in(finding, target, other)
                if rule is not None:
                    reason = f"ignored by .remedy.yaml: {rule.reason}"
                    self.state.unfixable.append(Unfixable(finding, reason, "ignored"))
                    settled(finding)
                    continue
                if other is not None:
                    named = dataclasses.replace(ref, namespace=other)
                    finding = dataclasses.replace(finding, resource=named)
            where = (*finding.identity, *place)
            if where in located:
                finding = _merged(located[where][0], finding)
            located[where] = (finding, target)
        return kept, list(located.values())

    def _waived_in(self, finding: Finding, target: Target, other: str | None) -> IgnoreRule | None:
        """The `.remedy.yaml` rule that ignores ``finding`` (which names no namespace) as if it
        named the namespace its document names, or ``other`` (the one another scanner names
        for it); the document is read only when a rule names the finding's control."""
        if not any(fnmatch.fnmatchcase(finding.control_id, r.control) for r in self.config.ignore):
            return None
        for namespace in (_document_namespace(target, finding.resource), other):
            if namespace is not None:
                named = dataclasses.replace(finding.resource, namespace=namespace)
                rule = self.config.ignored(dataclasses.replace(finding, resource=named))
                if rule is not None:
                    return rule
        return None

    def triage(self, finding: Finding) -> bool:
        """Whether ``finding`` is settled before any fixer runs (recorded as compliant,
        unfixable or a waiver proposal); see `_triage` for why a finding is not for a fixer.

        A finding compliant as deployed (only a render without its namespace fails) is
        compliant; for a control the catalog calls unfixable in git, workload intent decides
        first (a node agent's hostPath gets a waiver proposal, not "needs a person").
        """
        reason = _triage(finding, self.config)
        if reason is None:
            return False
        if self.locator.compliant_as_deployed(finding):
            self.state.compliant.append(finding)
        elif not (_catalog_unfixable(finding, reason) and self._intent_waives(finding)):
            self.state.unfixable.append(reason)
        return True

    def locate(self, finding: Finding) -> Target | str:
        """Where ``finding`` lives in the repository, or why it is not there."""
        try:
            return self.locator.locate(finding)
        except RemedyError as exc:
            return str(exc)

    def batches(
        self, located: list[tuple[Finding, Target]]
    ) -> dict[tuple[int, str], tuple[list[Finding], Target]]:
        """Located findings by target and change-set key, in the order first met: each batch
        is planned on one view of its resource."""
        batches: dict[tuple[int, str], tuple[list[Finding], Target]] = {}
        for finding, target in located:
            key = (id(target), self._group_key(finding, target))
            if finding.control_id in self.left_out.get(key[1], ()):
                self.state.refuse(
                    finding,
                    f"a reviewer asked to leave {finding.control_id} out of merge request {key[1]}",
                    "ignored",
                )
                continue
            batches.setdefault(key, ([], target))[0].append(finding)
        return batches

    def fix_batch(self, batch: list[Finding], target: Target, key: str) -> None:
        """All findings of one resource and change set at once: plan each on the same view,
        write the edits together, verify each. Any surprise falls back to one at a time."""
        overlay = self._overlay(key)
        view = target.reread(overlay)
        if isinstance(view, str) or len(batch) == 1:
            for finding in batch:
                self.fix_one(finding, target, last_try=False)
            return
        observed = self._observed(batch[0].resource)  # one resource per target
        accounts = self._api_accounts(target, overlay, batch)
        intent = workload_intent(target, overlay, view, observed, accounts)
        ctx = _context(
            self.config, target, overlay, self.locator, intent[0], observed, _reads_policies(batch)
        )
        planned: list[_Proposal] = []
        for finding in batch:
            fixer = _fixer(finding)
            if self._declined(finding, view, intent):
                continue
            result = run_fixer(fixer, view, finding, ctx)
            if isinstance(result, AlreadyCompliant):
                self._passes(finding, target, key, fixer)
            elif isinstance(result, NeedsHuman):
                self.state.deferred.append((finding, target))
            else:
                assert isinstance(result, Fixed)
                edits = (*view.prerequisites(result.edits), *result.edits)
                if not self._falsifies(finding, edits, intent):
                    planned.append((finding, fixer, result, edits))
        if not planned:
            return
        try:
            trial = self.write(target, [e for *_, edits in planned for e in edits], overlay)
            verified = self.verify_all(target, trial, planned, observed, workload_document(view))
        except RemedyError:
            verified = False
        if not verified:
            for finding, *_ in planned:
                self.fix_one(finding, target, last_try=False)
            return
        overlay.adopt(trial)
        for finding, fixer, result, edits in planned:
            self.state.fixes[key].append(
                planned_fix(finding, target, fixer, result, edits, self.state.shared)
            )

    def fix_one(self, finding: Finding, target: Target, last_try: bool) -> None:
        """Plan, write and verify one finding on its change set's files so far. A fixer's
        decline is deferred for one more try, unless this is ``last_try``."""
        fixer = _fixer(finding)
        key = self._group_key(finding, target)
        overlay = self._overlay(key)
        view = target.reread(overlay)
        if isinstance(view, str):
            self.state.refuse(finding, view, "verify-failed")
            return
        observed = self._observed(finding.resource)
        accounts = self._api_accounts(target, overlay, [finding])
        intent = workload_intent(target, overlay, view, observed, accounts)
        if self._declined(finding, view, intent):
            return
        ctx = _context(
            self.config,
            target,
            overlay,
            self.locator,
            intent[0],
            observed,
            _reads_policies([finding]),
        )
        result = run_fixer(fixer, view, finding, ctx)
        if isinstance(result, AlreadyCompliant):
            self._passes(finding, target, key, fixer)
            return
        if isinstance(result, NeedsHuman):
            if last_try:
                self.state.refuse(finding, result.reason, "needs-human")
            else:
                self.state.deferred.append((finding, target))
            return
        assert isinstance(result, Fixed)
        edits = (*view.prerequisites(result.edits), *result.edits)
        if self._falsifies(finding, edits, intent):
            return
        try:
            trial = self.write(target, edits, overlay)
        except ChartError as exc:
            self.state.refuse(finding, str(exc), "chart")
            return
        except RemedyError as exc:
            self.state.refuse(finding, str(exc), "verify-failed")
            return
        problem = self.verify(target, trial, fixer, finding, observed, workload_document(view))
        if problem:
            self.state.refuse(finding, problem, "verify-failed")
            return
        overlay.adopt(trial)
        self.state.fixes[key].append(
            planned_fix(finding, target, fixer, result, edits, self.state.shared)
        )

    def _passes(self, finding: Finding, target: Target, key: str, fixer: Fixer) -> None:
        """Record a finding its change set's files pass: fixed by that change set when an
        earlier fix of it by the same fixer made it pass (the same field of a base that two
        overlays build, say) and the repository as it is fails it; else already compliant."""
        prior = [fix for fix in self.state.fixes.get(key, ()) if fix.fixer == fixer.name]
        if prior:
            unedited = self._checkout()
            view = target.reread(unedited)
            if not isinstance(view, str):
                ctx = _context(
                    self.config, target, unedited, self.locator, policies=_reads_policies([finding])
                )
                if not isinstance(run_fixer(fixer, view, finding, ctx), AlreadyCompliant):
                    self.state.fixes[key].append(dataclasses.replace(prior[0], finding=finding))
                    return
        self.state.compliant.append(finding)

    def write(self, target: Target, edits: Sequence[AnyEdit], overlay: FileOverlay) -> FileOverlay:
        """A trial copy of ``overlay`` with ``edits`` written; the caller adopts it once it
        verifies. Raises `RemedyError` (`ChartError` for a chart) when the edits do not apply."""
        trial = overlay.fork()
        target.write(edits, trial)
        return trial

    def verify(
        self,
        target: Target,
        trial: FileOverlay,
        fixer: Fixer,
        finding: Finding,
        observed: WorkloadRuntime | None,
        before: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Why ``finding`` is not fixed on ``trial`` (re-read, re-checked), or None;
        ``before``: the workload document the edits were written on (see `verify_fix`)."""
        ctx = self._verify_context(target, trial, observed, [finding])
        return verify_fix(target, trial, fixer, finding, ctx, before)

    def _verify_context(
        self,
        target: Target,
        trial: FileOverlay,
        observed: WorkloadRuntime | None,
        findings: Sequence[Finding],
    ) -> FixContext:
        """What the fixers of ``findings`` know when their fixes are re-checked on ``trial``."""
        return _context(
            self.config,
            target,
            trial,
            self.locator,
            runtime=observed,
            policies=_reads_policies(findings),
        )

    def verify_all(
        self,
        target: Target,
        trial: FileOverlay,
        planned: list[_Proposal],
        observed: WorkloadRuntime | None,
        before: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether every proposal of a batch is fixed on ``trial`` (stops at the first not)."""
        ctx = self._verify_context(target, trial, observed, [f for f, *_ in planned])
        return all(
            verify_fix(target, trial, fixer, finding, ctx, before) is None
            for finding, fixer, _, _ in planned
        )

    def group_change_sets(self, findings: list[Finding]) -> Plan:
        """The plan: one change set per key with verified fixes and changed files (plus the
        waiver proposal), each listing the unfixable findings of its resources."""
        state = self.state
        state.unfixable.sort(key=lambda u: _order(u.finding))
        siblings = _fixing_change_sets(state.fixes)
        waived_on = {(w.finding.control_id, w.finding.resource.key) for w in state.waived}
        unfixable = [_point_to_sibling(u, siblings, waived_on) for u in state.unfixable]
        # Unfixable findings by resource, so each change set finds its own without a scan of all.
        unfixable_of: dict[str, list[int]] = {}
        for n, item in enumerate(unfixable):
            unfixable_of.setdefault(item.finding.resource.key, []).append(n)
        change_sets = []
        for key in sorted(state.fixes):
            # A change set takes its fixes and files out of the state: a big plan never holds
            # both the overlays and the change sets made of them.
            group, overlay = state.fixes.pop(key), state.overlays.pop(key)
            files = overlay.changes()
            if not files:
                continue
            # Opt-in extra files of the change set (Kyverno policies guarding the fixed controls).
            files = _with_extra_files(files, policy_files(self.config, group, overlay))
            resources = {f.finding.resource.key for f in group}
            own = {c.path for c in files} | {f.location.path for f in group}
            change_sets.append(
                ChangeSet(
                    key=key,
                    title=_title(group[0].family, group),
                    family=group[0].family,
                    risk=max((f.risk for f in group), default=Risk.LOW),
                    fixes=tuple(group),
                    files=files,
                    unresolved=tuple(
                        unfixable[n]
                        for n in sorted(n for r in resources for n in unfixable_of.get(r, ()))
                        if _about(unfixable[n].finding, own)
                    ),
                    meta=overlays_note(self.locator.kustomize, overlay),
                )
            )
        if self.runtime is not None:
            change_sets = _with_runtime(change_sets, self.runtime)
        notes = list(dict.fromkeys(state.notes))
        waiver = waiver_change_set(self.repo_root, state.waived)
        if isinstance(waiver, ChangeSet):
            change_sets.append(waiver)
        elif waiver:
            notes.append(waiver)
        return Plan(
            tuple(change_sets),
            tuple(unfixable),
            tuple(state.compliant),
            tuple(findings),
            tuple(notes),
        )

    def _group_key(self, finding: Finding, target: Target) -> str:
        return group_key(self.config, _fixer(finding), target, finding, self.split_risky)

    def _overlay(self, key: str) -> FileOverlay:
        overlay = self.state.overlays.get(key)
        if overlay is None:
            overlay = self.state.overlays[key] = self._checkout()
        return overlay

    def _checkout(self) -> FileOverlay:
        """The repository without edits, reading through the plan's shared texts and links."""
        return FileOverlay(self.repo_root, originals=self.state.originals, links=self.state.links)

    def _api_accounts(
        self, target: Target, overlay: FileOverlay, findings: Sequence[Finding]
    ) -> tuple[tuple[str | None, str], ...]:
        """The ServiceAccounts RBAC bindings grant API access where ``target`` is deployed (the
        repository's, its kustomize overlay's or its chart's), when a finding would turn the
        token off (gathering them may build or render)."""
        if not any(f.control_id in TOKEN_CONTROLS for f in findings):
            return ()
        found = list(self.locator.manifests.neighbourhood.api_accounts)
        rendered = getattr(target, "api_accounts", None)  # a chart's own bindings
        deployed = getattr(target, "neighbours", None)  # a kustomize overlay's, as built
        if callable(rendered):
            found += rendered(overlay)
        elif callable(deployed):
            built = Neighbourhood()
            for document in deployed(overlay):
                built.add(document)
            found += built.api_accounts
        return _deployed_accounts(target, overlay, self.locator, found)

    def _observed(self, resource: ResourceRef) -> WorkloadRuntime | None:
        return self.runtime(resource) if self.runtime else None

    def _declined(self, finding: Finding, view: PodView, intent: Intent) -> bool:
        """Intent before rule: a workload whose purpose needs what the control forbids gets a
        waiver proposal, never a fix."""
        found = decline(intent[0], view, finding)
        if found is not None:
            self.state.refuse(finding, WAIVE_PREFIX + found.reason, "needs-human")
            self.state.waived.append(Waiver(finding, found.reason, found.evidence))
        return found is not None

    def _falsifies(self, finding: Finding, edits: tuple[AnyEdit, ...], intent: Intent) -> bool:
        """A fix never leaves a comment behind that it made false."""
        stale = next(stale_comments(edits, intent[1]), None)
        if stale is not None:
            where = ".".join(map(str, stale[0]))
            self.state.refuse(
                finding,
                f"the fix would change {where}, whose comment ({stale[1]!r}) says why it is "
                "set this way; decide by hand",
                "needs-human",
            )
        return stale is not None

    def _intent_waives(self, finding: Finding) -> bool:
        """Whether workload intent explains ``finding`` (recording the waiver proposal)."""
        try:
            found = self.locator.locate(finding)
        except RemedyError:
            return False
        if isinstance(found, str):
            return False
        overlay = self._checkout()
        view = found.reread(overlay)
        if isinstance(view, str):
            return False
        observed = self._observed(finding.resource)
        accounts = self._api_accounts(found, overlay, [finding])
        intent = workload_intent(found, overlay, view, observed, accounts)
        return self._declined(finding, view, intent)


def _about(finding: Finding, paths: set[str]) -> bool:
    """Whether an unfixable finding on a change set's resource is about the files it changes:
    one a scanner read from another YAML file (a same-named object elsewhere, a kustomize
    patch fragment) belongs on the dashboard, not in that merge request."""
    hint = (finding.source.path or "").replace("\\", "/").lstrip("./")
    if not hint.endswith((".yaml", ".yml")):
        return True  # an overlay folder, a chart, a cluster object: the resource as deployed
    return any(hint == p or hint.endswith("/" + p) for p in paths)


def build_plan(
    report: Report,
    repo_root: Path,
    config: RepoConfig | None = None,
    *,
    locator: Locator | None = None,
    progress: Progress | None = None,
    runtime: RuntimeLookup | None = None,
    split_risky: bool = True,
    left_out: Mapping[str, Collection[str]] | None = None,
    charts: ChartCache | None = None,
) -> Plan:
    """Plan every finding of ``report`` against the repository at ``repo_root`` (see
    `Planner`); ``left_out``: controls reviewers left out of a change set, by its key;
    ``charts``: where remote charts are found (default: Helm's own cache, if any)."""
    config = _repo_relative(config or defaults(), repo_root)
    with fewer_collections():
        locator = locator or Locator(
            repo_root, config.default_namespace, charts or ChartCache.configured()
        )
        planner = Planner(
            repo_root, config, locator, runtime=runtime, split_risky=split_risky, left_out=left_out
        )
        return planner.plan(report, progress)


def _fixer(finding: Finding) -> Fixer:
    fixer = fixer_for(finding.control_id)
    assert fixer is not None  # _triage checked
    return fixer


def _repo_relative(config: RepoConfig, repo_root: Path) -> RepoConfig:
    """``config`` with its policy's source named relative to the repository: MR text names
    repository files, never a path on the machine that read them."""
    source = Path(config.policy.source)
    if not source.is_absolute():
        return config
    try:
        relative = source.resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        relative = source.name
    policy = config.policy.model_copy(update={"source": relative})
    return config.model_copy(update={"policy": policy})


_FIX_FIRST = re.compile(r"fix (C-\d{4}) first")


def _fixing_change_sets(fixes: Mapping[str, list[PlannedFix]]) -> dict[tuple[str, str], str]:
    """(control, resource key) -> the first change set, by key, that fixes it: built once per
    plan, so pointing every unfixed finding to its sibling stays linear in the findings."""
    index: dict[tuple[str, str], str] = {}
    for key in sorted(fixes):
        for fix in fixes[key]:
            index.setdefault((fix.finding.control_id, fix.finding.resource.key), key)
    return index


def _point_to_sibling(
    u: Unfixable,
    siblings: Mapping[tuple[str, str], str],
    waived_on: set[tuple[str, str]],
) -> Unfixable:
    """A reason saying "fix C-0041 first" names what happens to C-0041 instead when the plan
    knows: the sibling change set that fixes it (`_fixing_change_sets`), or the waiver
    proposed for it (``waived_on``: control and resource key of each waiver)."""
    found = _FIX_FIRST.search(u.reason)
    if found is None:
        return u
    control, resource = found.group(1), u.finding.resource.key
    sibling = siblings.get((control, resource))
    if sibling is not None:
        instead = f"merge the change set {sibling} first, which fixes {control}"
    elif (control, resource) in waived_on:
        instead = f"{control} is proposed for a waiver on this workload, so this stays as it is"
    else:
        return u
    reason = u.reason[: found.start()] + instead + u.reason[found.end() :]
    return dataclasses.replace(u, reason=reason)


def _with_runtime(change_sets: list[ChangeSet], runtime: RuntimeLookup) -> list[ChangeSet]:
    """Each change set with the observation window and Falco alerts of its workloads (notes,
    ``meta['falco-alerts']``); those with alerts first."""
    out = []
    for cs in change_sets:
        notes: list[str] = []
        alerts = 0
        for ref in sorted({f.resource for f in cs.findings}, key=lambda r: r.key):
            seen = runtime(ref)
            if seen is None:
                continue
            if seen.window and (seen.profiled or seen.network_observed):
                notes.append(f"{ref}: Kubescape evidence, {seen.window}")
            if seen.alerts:
                alerts += len(seen.alerts)
                notes.append(f"{ref}: {alert_summary(seen.alerts)}")
        meta = {**cs.meta, "falco-alerts": str(alerts)} if alerts else cs.meta
        out.append(dataclasses.replace(cs, notes=(*cs.notes, *notes), meta=meta))
    return sorted(out, key=lambda c: "falco-alerts" not in c.meta)


def _with_extra_files(
    files: tuple[FileChange, ...], extra: tuple[FileChange, ...]
) -> tuple[FileChange, ...]:
    """The change set's files plus extra new files it does not already touch, sorted by path."""
    taken = {f.path for f in files}
    return tuple(sorted((*files, *(e for e in extra if e.path not in taken)), key=lambda f: f.path))


def _reads_policies(findings: Sequence[Finding]) -> bool:
    """Whether a fixer of ``findings`` reads the NetworkPolicies (`_context`)."""
    return any(_fixer(f).reads_network_policies for f in findings)


def _context(
    config: RepoConfig,
    target: Target,
    overlay: FileOverlay,
    locator: Locator,
    intent: WorkloadIntent | None = None,
    runtime: WorkloadRuntime | None = None,
    policies: bool = True,
) -> FixContext:
    """What the fixer may know beyond the view: policy values, NetworkPolicies in the repo
    (including those this change set adds; gathered only when ``policies``: see
    `Fixer.reads_network_policies`)."""
    return FixContext(
        policy=config.policy,
        location_kind=target.location.kind,
        network_policies=_network_policies(target, overlay, locator) if policies else (),
        **(_neighbourhood(target, overlay, locator) if policies else {}),
        location_path=target.location.path,
        intent=intent,
        runtime=runtime,
    )


def _network_policies(
    target: Target, overlay: FileOverlay, locator: Locator
) -> tuple[Mapping[str, Any], ...]:
    """The repository's NetworkPolicies, those the change set adds and those the target's
    chart renders."""
    found = list(locator.manifests.network_policies)
    for change in overlay.changes():
        if change.is_new:
            try:
                docs = load_documents(change.after)
            except EditError:
                continue
            found += [d for d in docs if isinstance(d, dict) and d.get("kind") == "NetworkPolicy"]
    rendered = getattr(target, "network_policies", None)  # a chart's own NetworkPolicies
    if callable(rendered):
        found += rendered(overlay)
    return tuple(found)


def _neighbourhood(target: Target, overlay: FileOverlay, locator: Locator) -> dict[str, Any]:
    """What a NetworkPolicy written as a fixer proposes meets besides its workload (the
    `FixContext` fields ``workloads``, ``api_accounts`` and ``services``): the repository's
    `Neighbourhood`, and that of the target's kustomize overlay as built. Nothing for a
    chart, which gets its policy its own way (its switch, or a template `HelmTarget` checks
    against the chart's own render)."""
    if target.location.kind.startswith("helm"):
        return {}
    found = locator.manifests.neighbourhood.copy()
    deployed = getattr(target, "neighbours", None)
    for document in deployed(overlay) if callable(deployed) else ():
        found.add(document)
    return {
        "workloads": tuple(found.workloads),
        "api_accounts": _deployed_accounts(target, overlay, locator, found.api_accounts),
        "services": tuple(found.services),
    }


def _deployed_accounts(
    target: Target,
    overlay: FileOverlay,
    locator: Locator,
    accounts: Sequence[tuple[str | None, str]],
) -> tuple[tuple[str | None, str], ...]:
    """``accounts``, with those bound where a plain manifest's deployment (Argo CD, Flux,
    kustomize) puts its workload counted in the namespace the document writes (its view's)."""
    if target.location.kind != "manifest":
        return tuple(dict.fromkeys(accounts))
    view = target.reread(overlay)
    if isinstance(view, str):
        return tuple(dict.fromkeys(accounts))
    return locator.manifests.deployed_accounts(target.location.path, view.namespace, accounts)


def _catalog_unfixable(finding: Finding, reason: Unfixable) -> bool:
    """Whether ``reason`` is the catalog's "not fixable in git" for a workload's finding (not
    an ignore or a disabled control), which workload intent may still explain."""
    control = catalog.get(finding.control_id)
    return (
        reason.category != "ignored"
        and control is not None
        and control.unfixable_reason is not None
        and finding.resource.kind in WORKLOAD_KINDS
    )


def _document_namespace(target: Target, ref: ResourceRef) -> str | None:
    """The namespace the document ``target`` located for ``ref`` names itself (a chart's
    rendered document, not its release's namespace), or None."""
    try:
        view = target.view
    except RemedyError:
        return None
    document = getattr(view, "rendered", view)
    if (document.kind, document.name) != (ref.kind, ref.name):
        return None
    namespace = document.namespace
    return namespace if isinstance(namespace, str) and namespace else None


def _triage(finding: Finding, config: RepoConfig) -> Unfixable | None:
    """Why a finding is not for a fixer at all, or None when it is. The fixer registry decides
    what is fixable; the catalog only says why a control no fixer handles is not."""
    rule = config.ignored(finding)
    if rule is not None:
        return Unfixable(finding, f"ignored by .remedy.yaml: {rule.reason}", "ignored")
    if not config.wants(finding.control_id):
        return Unfixable(finding, "control not enabled in .remedy.yaml", "ignored")
    if fixer_for(finding.control_id) is not None:
        return None
    control = catalog.get(finding.control_id)
    if control is None:
        return Unfixable(
            finding,
            f"unknown control {finding.control_id}: not in kube-remedy's catalog",
            "unknown-control",
        )
    if control.unfixable_reason is not None:
        why = control.unfixable_reason
        return Unfixable(finding, f"{control.name}: {why.action}", why.category)
    return Unfixable(finding, f"no fixer for {finding.control_id} ({control.name}) yet", "no-fixer")
