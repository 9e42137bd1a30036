"""Turn a report's findings into verified change sets (one merge request each).

For each finding: is it fixable in git at all, is it wanted, where does it live (locate), what
does its fixer propose (plan), does the result verify (re-read, re-check)? Verified edits are
stacked per change-set group on a `FileOverlay`; nothing touches the repository here.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from bot import controls as catalog
from bot.errors import ChartError, RemedyError
from bot.evidence import workload_intent
from bot.kyverno_policies import policy_files
from bot.locate.base import FileOverlay, Target
from bot.locate.kustomize import KustomizeIndex, locate_kustomize, overlays_note
from bot.locate.kustomize_build import kustomization_dirs
from bot.locate.manifest import ManifestIndex, locate_manifest
from bot.model import ChangeSet, FileChange, PlannedFix, Unfixable
from bot.repo_config import RepoConfig
from bot.sources.base import Report
from bot.verify import verify_fix
from bot.waivers import Waiver, waiver_change_set
from fixers.base import Fixer
from fixers.edits import EditError, load_documents
from fixers.intent import WAIVE_PREFIX, Comment, WorkloadIntent, decline, stale_comments
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
from fixers.view import WORKLOAD_KINDS, PodView

Progress = Callable[[int, int], None]
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
        return tuple(f for cs in self.change_sets for f in cs.findings)


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
    groups: dict[tuple[str, str, str], dict[tuple[str, int | None, int | None] | None, Finding]]
    groups = {}
    for finding in findings:
        by_file = groups.setdefault(finding.identity, {})
        source = finding.source
        where = (source.path, source.document_index, source.line) if source.path else None
        by_file[where] = _merged(by_file[where], finding) if where in by_file else finding
    merged: list[Finding] = []
    for by_file in groups.values():
        pathless = by_file.pop(None, None)
        if pathless is None:
            merged.extend(by_file.values())
        elif not by_file:
            merged.append(pathless)
        else:
            merged.extend(_merged(f, pathless) for f in by_file.values())
    return sorted(merged, key=_order)


def _slug(text: str) -> str:
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
    """Finds targets for findings: plain manifests first, then Helm charts when present."""

    def __init__(self, root: Path, default_namespace: str = "default") -> None:
        self.root = root
        self.manifests = ManifestIndex.build(root, default_namespace=default_namespace)
        self._helm: Callable[[Finding], Target | str] | Literal[False] | None = None
        self._index: Any = None  # the HelmIndex, once built
        self.kustomize = KustomizeIndex.build(root) if kustomization_dirs(root) else None

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
        return located if not isinstance(located, str) else f"{found}; {located}"

    def compliant_as_deployed(self, finding: Finding) -> bool:
        """Whether the finding only exists in a render without its deployment's namespace."""
        from bot.locate import helm

        if finding.control_id not in helm.NAMESPACE_ONLY or self._helm_locator() is None:
            return False
        return helm.compliant_as_deployed(finding, self.root, self._index)

    def _helm_locator(self) -> Callable[[Finding], Target | str] | None:
        if self._helm is None:
            from bot.locate import helm

            index = helm.HelmIndex.build(self.root)
            if not index.charts:
                self._helm = False
            else:
                self._index = index
                self._helm = lambda f: helm.locate_helm(f, self.root, index)
        return self._helm or None


def planned_fix(
    finding: Finding, target: Target, fixer: Fixer, result: Fixed, edits: tuple[AnyEdit, ...]
) -> PlannedFix:
    return PlannedFix(
        finding,
        target.location,
        fixer.name,
        fixer.family,
        fixer.risk,
        edits,
        result.notes,
        result.values_used,
    )


def build_plan(
    report: Report,
    repo_root: Path,
    config: RepoConfig | None = None,
    *,
    locator: Locator | None = None,
    progress: Progress | None = None,
    runtime: RuntimeLookup | None = None,
    split_risky: bool = True,
) -> Plan:
    """Plan every finding of ``report`` against the repository at ``repo_root``.

    Findings a fixer declines are tried once more after the others: a decline often depends on
    another fix of the same change set (e.g. allowPrivilegeEscalation waits for privileged).
    """
    config = _repo_relative(config or RepoConfig(), repo_root)
    locator = locator or Locator(repo_root, config.default_namespace)
    findings = dedupe(report.findings)
    unfixable: list[Unfixable] = []
    compliant: list[Finding] = []
    overlays: dict[str, FileOverlay] = {}
    fixes: dict[str, list[PlannedFix]] = defaultdict(list)
    targets: dict[tuple[str, int, str, str], Target] = {}
    deferred: list[tuple[Finding, Target]] = []
    waived: list[Waiver] = []

    def declined(finding: Finding, view: PodView, intent: Intent) -> bool:
        """Intent before rule: a workload whose purpose needs what the control forbids gets a
        waiver proposal, never a fix."""
        found = decline(intent[0], view, finding)
        if found is not None:
            unfixable.append(Unfixable(finding, WAIVE_PREFIX + found.reason, "needs-human"))
            waived.append(Waiver(finding, found.reason, found.evidence))
        return found is not None

    def falsifies(finding: Finding, edits: tuple[AnyEdit, ...], intent: Intent) -> bool:
        """A fix never leaves a comment behind that it made false."""
        stale = next(stale_comments(edits, intent[1]), None)
        if stale is not None:
            where = ".".join(map(str, stale[0]))
            unfixable.append(
                Unfixable(
                    finding,
                    f"the fix would change {where}, whose comment ({stale[1]!r}) says why it is "
                    "set this way; decide by hand",
                    "needs-human",
                )
            )
        return stale is not None

    def attempt(finding: Finding, target: Target, last_try: bool) -> None:
        fixer = fixer_for(finding.control_id)
        assert fixer is not None  # _triage checked
        key = group_key(config, fixer, target, finding, split_risky)
        overlay = overlays.setdefault(key, FileOverlay(repo_root))
        view = target.reread(overlay)
        if isinstance(view, str):
            unfixable.append(Unfixable(finding, view, "verify-failed"))
            return
        observed = runtime(finding.resource) if runtime else None
        intent = workload_intent(target, overlay, view, observed)
        if declined(finding, view, intent):
            return
        ctx = _context(config, target, overlay, locator, intent[0], observed)
        result = run_fixer(fixer, view, finding, ctx)
        if isinstance(result, AlreadyCompliant):
            compliant.append(finding)
            return
        if isinstance(result, NeedsHuman):
            if last_try:
                unfixable.append(Unfixable(finding, result.reason, "needs-human"))
            else:
                deferred.append((finding, target))
            return
        assert isinstance(result, Fixed)
        edits = (*view.prerequisites(result.edits), *result.edits)
        if falsifies(finding, edits, intent):
            return
        trial = overlay.fork()
        try:
            target.write(edits, trial)
        except ChartError as exc:
            unfixable.append(Unfixable(finding, str(exc), "chart"))
            return
        except RemedyError as exc:
            unfixable.append(Unfixable(finding, str(exc), "verify-failed"))
            return
        problem = verify_fix(
            target,
            trial,
            fixer,
            finding,
            _context(config, target, trial, locator, runtime=observed),
        )
        if problem:
            unfixable.append(Unfixable(finding, problem, "verify-failed"))
            return
        overlay.adopt(trial)
        fixes[key].append(planned_fix(finding, target, fixer, result, edits))

    def attempt_batch(batch: list[Finding], target: Target, key: str) -> None:
        """All findings of one resource and change set at once: plan each on the same view,
        write the edits together, verify each. Any surprise falls back to one at a time."""
        overlay = overlays.setdefault(key, FileOverlay(repo_root))
        view = target.reread(overlay)
        if isinstance(view, str) or len(batch) == 1:
            for finding in batch:
                attempt(finding, target, last_try=False)
            return
        observed = runtime(batch[0].resource) if runtime else None  # one resource per target
        intent = workload_intent(target, overlay, view, observed)
        ctx = _context(config, target, overlay, locator, intent[0], observed)
        planned: list[tuple[Finding, Fixer, Fixed, tuple[AnyEdit, ...]]] = []
        for finding in batch:
            fixer = fixer_for(finding.control_id)
            assert fixer is not None
            if declined(finding, view, intent):
                continue
            result = run_fixer(fixer, view, finding, ctx)
            if isinstance(result, AlreadyCompliant):
                compliant.append(finding)
            elif isinstance(result, NeedsHuman):
                deferred.append((finding, target))
            else:
                assert isinstance(result, Fixed)
                edits = (*view.prerequisites(result.edits), *result.edits)
                if not falsifies(finding, edits, intent):
                    planned.append((finding, fixer, result, edits))
        if not planned:
            return
        trial = overlay.fork()
        try:
            target.write([e for *_, edits in planned for e in edits], trial)
            trial_ctx = _context(config, target, trial, locator, runtime=observed)
            verified = all(
                verify_fix(target, trial, fixer, finding, trial_ctx) is None
                for finding, fixer, _, _ in planned
            )
        except RemedyError:
            verified = False
        if not verified:
            for finding, *_ in planned:
                attempt(finding, target, last_try=False)
            return
        overlay.adopt(trial)
        for finding, fixer, result, edits in planned:
            fixes[key].append(planned_fix(finding, target, fixer, result, edits))

    def intent_waives(finding: Finding) -> bool:
        """Intent decides first for a control the catalog calls unfixable in git: a workload
        whose purpose needs it (a node agent's hostPath) gets a waiver proposal, not "needs a
        person"."""
        try:
            found = locator.locate(finding)
        except RemedyError:
            return False
        if isinstance(found, str):
            return False
        overlay = FileOverlay(repo_root)
        view = found.reread(overlay)
        if isinstance(view, str):
            return False
        observed = runtime(finding.resource) if runtime else None
        return declined(finding, view, workload_intent(found, overlay, view, observed))

    located: dict[tuple[str | int, ...], tuple[Finding, Target]] = {}
    kept: list[Finding] = []
    for n, finding in enumerate(findings, 1):
        if progress:
            progress(n, len(findings))
        reason = _triage(finding, config)
        if reason is not None and locator.compliant_as_deployed(finding):
            compliant.append(finding)
            kept.append(finding)
            continue
        if reason is not None:
            if not (_catalog_unfixable(finding, reason) and intent_waives(finding)):
                unfixable.append(reason)
            kept.append(finding)
            continue
        try:
            found = locator.locate(finding)
        except RemedyError as exc:
            found = str(exc)
        if isinstance(found, str):
            unfixable.append(Unfixable(finding, found, "not-in-repo"))
            kept.append(finding)
            continue
        # One file deployed twice is two targets: a Kustomize base built by two overlays, or a
        # Helm template deployed by two Applications (`why` names the deployment; it is empty
        # for plain manifests).
        place = (
            found.location.path,
            found.location.document_index,
            getattr(found, "overlay", ""),
            found.location.why,
        )
        target = targets.setdefault(place, found)
        # Two spellings of one file (scans run from different directories) meet here.
        where = (*finding.identity, *place)
        if where in located:
            finding = _merged(located[where][0], finding)
        located[where] = (finding, target)

    buckets: dict[tuple[int, str], list[Finding]] = {}
    bucket_targets: dict[tuple[int, str], Target] = {}
    for finding, target in located.values():
        fixer = fixer_for(finding.control_id)
        assert fixer is not None
        bucket = (id(target), group_key(config, fixer, target, finding, split_risky))
        buckets.setdefault(bucket, []).append(finding)
        bucket_targets[bucket] = target
    findings = sorted((*kept, *(f for f, _ in located.values())), key=_order)
    for (_, key), batch in buckets.items():
        attempt_batch(batch, bucket_targets[(_, key)], key)
    for finding, target in list(deferred):
        attempt(finding, target, last_try=True)
    unfixable.sort(key=lambda u: _order(u.finding))

    siblings = _fixing_change_sets(fixes)
    waived_on = {(w.finding.control_id, w.finding.resource.key) for w in waived}
    unfixable = [_point_to_sibling(u, siblings, waived_on) for u in unfixable]
    # Unfixable findings by resource, so each change set finds its own without a scan of all.
    unfixable_of: dict[str, list[int]] = {}
    for n, item in enumerate(unfixable):
        unfixable_of.setdefault(item.finding.resource.key, []).append(n)
    change_sets = []
    for key in sorted(fixes):
        group = fixes[key]
        files = overlays[key].changes()
        if not files:
            continue
        # Opt-in extra files of the change set (Kyverno policies guarding the fixed controls).
        files = _with_extra_files(files, policy_files(config, group, overlays[key]))
        resources = {f.finding.resource.key for f in group}
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
                ),
                meta=overlays_note(locator.kustomize, overlays[key]),
            )
        )
    if runtime is not None:
        change_sets = _with_runtime(change_sets, runtime)
    notes: list[str] = []
    waiver = waiver_change_set(repo_root, waived)
    if isinstance(waiver, ChangeSet):
        change_sets.append(waiver)
    elif waiver:
        notes.append(waiver)
    return Plan(
        tuple(change_sets), tuple(unfixable), tuple(compliant), tuple(findings), tuple(notes)
    )


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


def _context(
    config: RepoConfig,
    target: Target,
    overlay: FileOverlay,
    locator: Locator,
    intent: WorkloadIntent | None = None,
    runtime: WorkloadRuntime | None = None,
) -> FixContext:
    """What the fixer may know beyond the view: policy values, NetworkPolicies in the repo
    (including those this change set adds)."""
    policies = list(locator.manifests.network_policies)
    for change in overlay.changes():
        if change.is_new:
            try:
                docs = load_documents(change.after)
            except EditError:
                continue
            policies += [
                d for d in docs if isinstance(d, dict) and d.get("kind") == "NetworkPolicy"
            ]
    rendered = getattr(target, "network_policies", None)  # a chart's own NetworkPolicies
    if callable(rendered):
        policies += rendered(overlay)
    return FixContext(
        policy=config.policy,
        location_kind=target.location.kind,
        network_policies=tuple(policies),
        location_path=target.location.path,
        intent=intent,
        runtime=runtime,
    )


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
