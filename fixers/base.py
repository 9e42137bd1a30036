"""The base class every fixer derives from."""

from __future__ import annotations

from typing import ClassVar

from fixers.model import Finding, Result, Risk
from fixers.policy import FixContext
from fixers.view import PodView


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

    @property
    def name(self) -> str:
        """snake_case name shared by module, explanation template and test-case folder."""
        return type(self).__module__.rsplit(".", 1)[-1]

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        raise NotImplementedError
