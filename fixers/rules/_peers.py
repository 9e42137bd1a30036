"""Whether a workload's pods talk to each other (a Cassandra ring, a ZooKeeper ensemble, a
Redis cluster), and how the repository says so: a headless Service selecting them (each pod
gets a DNS name its peers address), a value naming its own pods (``CASSANDRA_SEEDS:
cassandra-0.cassandra``, ``--join=db-0.db:26257``) or its own Service with a port, or a
declared port named for member traffic (``intra-node``, ``gossip``, ``peer``).

A NetworkPolicy for such pods must let them reach each other on any port: members often
talk on ports the containers do not declare.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from fixers.view import PodView, ServicePorts

_PEER_PORT_NAMES = (
    "peer",
    "gossip",
    "intra",
    "internode",
    "cluster",
    "raft",
    "repl",
    "election",
    "quorum",
    "member",
)
_HOST = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:[^@/\s]+@)?([A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?"
    r"(?:[/?#]|$)"
)
_CLUSTER_SUFFIX = ("svc", "cluster", "local")


def _values(view: PodView) -> Iterator[tuple[str, str]]:
    """(where, text) of every environment value, command and argument of the regular and
    init containers."""
    for container in view.containers:
        if container.ephemeral:
            continue
        env = container.get("env")
        for variable in env if isinstance(env, list) else []:
            if isinstance(variable, Mapping) and isinstance(variable.get("value"), str):
                yield f"{variable.get('name')} of {container.name}", variable["value"]
        for field in ("command", "args"):
            items = container.get(field)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, str):
                    yield f"the {field} of {container.name}", item


def _in_namespace(rest: Sequence[str], namespace: str) -> bool:
    """Whether the labels after a Service's name (``ns``, ``ns.svc.cluster.local``, none)
    stay in ``namespace``."""
    if not rest:
        return True
    return rest[0] == namespace and tuple(rest[1:]) == _CLUSTER_SUFFIX[: len(rest) - 1]


def _names_own(host: str, port: str | None, own: Sequence[ServicePorts], view: PodView) -> bool:
    """Whether ``host`` names one of the pods of ``own`` (``pod.service...``) or of the
    StatefulSet itself (``name-0.anything``), or, with a port, one of ``own`` itself."""
    namespace = view.namespace or "default"
    labels = host.lower().rstrip(".").split(".")
    if (
        view.kind == "StatefulSet"
        and len(labels) > 1
        and re.fullmatch(rf"{re.escape(view.name.lower())}-\d+", labels[0])
    ):
        return True
    for service in own:
        if len(labels) > 1 and labels[1] == service.name and _in_namespace(labels[2:], namespace):
            return True
        if port and labels[0] == service.name and _in_namespace(labels[1:], namespace):
            return True
    return False


def peers_why(view: PodView, services: Sequence[ServicePorts]) -> str | None:
    """Why the pods of ``view`` talk to each other, in a few words; None when the repository
    does not say they do."""
    own = [s for s in services if s.selects(view.labels, view.namespace)]
    for service in own:
        if service.headless:
            return (
                f"headless Service {service.name} selects them, giving each pod a DNS name "
                "its peers address"
            )
    for where, text in _values(view):
        for part in re.split(r"[,\s;=]+", text.strip()):
            match = _HOST.match(part)
            if match and _names_own(match.group(1), match.group(2), own, view):
                return f"{where} names its own pods ({part[:80]})"
    for container in view.containers:
        if container.init or container.ephemeral:
            continue
        for port in container.get("ports", default=[]) or []:
            name = str(port.get("name", "")).lower() if isinstance(port, Mapping) else ""
            if any(word in name for word in _PEER_PORT_NAMES):
                return f"port {name} of {container.name} is named for traffic between members"
    return None
