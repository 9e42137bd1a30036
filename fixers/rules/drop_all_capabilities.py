"""Drop every Linux capability a container does not add back (C-9001, Checkov CKV_K8S_37,
Trivy KSV003).

Kubernetes field: ``containers[].securityContext.capabilities.drop``
(https://kubernetes.io/docs/tasks/configure-pod-container/security-context/#set-capabilities-for-a-container).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixers.base import ContainerFix, ContainerFixer
from fixers.intent import cite, intent_of, runs_as_root
from fixers.model import AnyEdit, AppendUnique, NeedsHuman, Risk
from fixers.rules._capabilities import RUNTIME_DEFAULT, drop_and_add, low_ports, normalise
from fixers.view import ContainerView, PodView

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


class DropAllCapabilities(ContainerFixer):
    """Add ``ALL`` to ``capabilities.drop`` of each container that does not drop it; where the
    container listens on a port below 1024, add back ``NET_BIND_SERVICE``; where it runs as
    root and the evidence says what for (``chown``, ``gosu``, a server on a low port), add back
    the runtime's default capabilities that needs. Capabilities the container adds on purpose
    are kept (they are added after the drop)."""

    controls = ("C-9001",)
    risk = Risk.HIGH  # an image that chowns or switches user at start-up needs CHOWN/SETUID
    family = "security-context"

    compliant = "every container drops ALL capabilities"
    caveat = (
        "images that start as root and change owner or user at start-up (chown, su, "
        "gosu) need CHOWN, SETUID or SETGID added back; check the pods start"
    )

    def fix_container(
        self, container: ContainerView, view: PodView, finding: Finding, ctx: FixContext
    ) -> ContainerFix | NeedsHuman | None:
        lists = drop_and_add(container, "ALL")
        if isinstance(lists, NeedsHuman):
            return lists
        drop, added = lists
        if any(normalise(c) == "ALL" for c in drop if c is not None):
            return None
        path = container.path("securityContext", "capabilities")
        edits: list[AnyEdit] = [AppendUnique((*path, "drop"), "ALL")]
        note = f"{container.name}: drops ALL capabilities"
        has = {normalise(c) for c in added}
        ports = low_ports(container)
        if ports and "NET_BIND_SERVICE" not in has:
            edits.append(AppendUnique((*path, "add"), "NET_BIND_SERVICE"))
            listed = ", ".join(str(p) for p in ports)
            note += f", adds back NET_BIND_SERVICE (it listens on port {listed}, below 1024)"
            has.add("NET_BIND_SERVICE")
        if runs_as_root(view, container):
            intent = intent_of(view, ctx.intent)
            used = [
                cap
                for cap in intent.capabilities(container.name)
                if cap in RUNTIME_DEFAULT and cap != "NET_RAW" and cap not in has
            ]
            if used:
                edits += [AppendUnique((*path, "add"), cap) for cap in used]
                why = cite(
                    [
                        e
                        for e in intent.evidence
                        if e.container in (None, container.name)
                        and any(f"capability:{cap}" in e.needs for cap in used)
                    ]
                )
                note += f", adds back {', '.join(used)}, which it uses as root: {why}"
        return ContainerFix(tuple(edits), notes=(note,))
