"""The base classes of the fixers: `Fixer`, `ContainerFixer` for per-container decisions and
`PodFixer` for decisions about the whole pod spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from fixers.intent import declined
from fixers.model import AlreadyCompliant, AnyEdit, Fixed, NeedsHuman, Result, Risk
from fixers.view import ContainerView, PodView, target_containers

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class Fixer:
    """One family member: handles ``controls``, carries ``risk``, decides with ``plan``.

    Subclasses set the class attributes and implement ``plan``, which must be pure: no I/O,
    no mutation of its inputs. The registry discovers subclasses by walking the package.
    """

    controls: ClassVar[tuple[str, ...]] = ()
    risk: ClassVar[Risk] = Risk.LOW
    family: ClassVar[str] = ""
    """Grouping key for change sets (e.g. 'security-context', 'resources')."""
    scope: ClassVar[str] = "workload"
    """'workload' (needs a pod view). Other scopes are reserved for non-workload fixers."""
    honours_intent: ClassVar[bool] = False
    """Decline first when the workload's purpose needs what the control forbids (checked by
    `ContainerFixer` and `PodFixer` before they decide)."""
    reads_network_policies: ClassVar[bool] = False
    """Whether `plan` reads ``ctx.network_policies`` (gathering them renders a chart whole, so
    the planner does it only for fixers that read them)."""

    @property
    def name(self) -> str:
        """snake_case name shared by module, explanation template and test-case folder."""
        return type(self).__module__.rsplit(".", 1)[-1]

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        raise NotImplementedError

    def declined_by_intent(
        self, view: PodView, finding: Finding, ctx: FixContext
    ) -> NeedsHuman | None:
        """The waiver answer when the fixer honours intent and the workload needs what the
        control forbids, else None."""
        return declined(view, finding, ctx.intent) if self.honours_intent else None


class PodFixer(Fixer):
    """A fixer that decides about the whole pod spec (host namespaces, volumes, mounts across
    containers).

    Subclasses implement ``fix_pod``, the decision; the intent check (``honours_intent``)
    comes first, here, as in `ContainerFixer`.
    """

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if (no := self.declined_by_intent(view, finding, ctx)) is not None:
            return no
        return self.fix_pod(view, finding, ctx)

    def fix_pod(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        raise NotImplementedError


@dataclass(frozen=True)
class ContainerFix:
    """What a `ContainerFixer` changes in one container."""

    edits: tuple[AnyEdit, ...]
    notes: tuple[str, ...] = ()
    """Said about this container, in order (``"web: privileged set to false"``)."""
    values_used: tuple[str, ...] = ()
    """Where each chosen value comes from (policy, existing values)."""
    label: str = ""
    """How `ContainerFixer.summary` names this container; its name when empty."""


class ContainerFixer(Fixer):
    """A fixer that decides container by container (like Checkov's base container check).

    Subclasses implement ``fix_container`` (the decision for one container: a `ContainerFix`,
    None when it complies, or `NeedsHuman` for the whole workload) and set ``compliant``. The
    loop over the finding's containers, the notes and the `AlreadyCompliant` ending live here.
    Notes come in this order: ``summary`` (formatted with the changed containers' labels),
    each container's notes, then `closing_notes` (``caveat`` by default).
    """

    compliant: ClassVar[str] = ""
    """The `AlreadyCompliant` reason when no container needs a change."""
    summary: ClassVar[str] = ""
    """First note, e.g. ``"NET_RAW dropped on {changed}"``; none when empty."""
    caveat: ClassVar[str] = ""
    """Last note: what the change may break; none when empty."""

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        if (no := self.declined_by_intent(view, finding, ctx)) is not None:
            return no
        early = self.before(view, finding, ctx)
        if early is not None:
            return early
        fixes: list[tuple[ContainerView, ContainerFix]] = []
        for container in target_containers(view, finding):
            decision = self.fix_container(container, view, finding, ctx)
            if isinstance(decision, NeedsHuman):
                return decision
            if decision is not None and decision.edits:
                fixes.append((container, decision))
        if not fixes:
            return AlreadyCompliant(self.compliant_reason(finding))
        closing = self.closing_notes(view, finding, ctx)
        if isinstance(closing, NeedsHuman):
            return closing
        notes: list[str] = []
        if self.summary:
            labels = ", ".join(fix.label or container.name for container, fix in fixes)
            notes.append(self.summary.format(changed=labels))
        notes += [note for _, fix in fixes for note in fix.notes]
        return Fixed(
            tuple(edit for _, fix in fixes for edit in fix.edits),
            notes=(*notes, *closing),
            values_used=tuple(value for _, fix in fixes for value in fix.values_used),
        )

    def before(self, view: PodView, finding: Finding, ctx: FixContext) -> Result | None:
        """An answer for the whole workload before any container is looked at, or None."""
        return None

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        raise NotImplementedError

    def compliant_reason(self, finding: Finding) -> str:
        return self.compliant

    def closing_notes(
        self, view: PodView, finding: Finding, ctx: FixContext
    ) -> tuple[str, ...] | NeedsHuman:
        """The notes after the containers' (``caveat``), or NeedsHuman to decline after all."""
        return (self.caveat,) if self.caveat else ()
