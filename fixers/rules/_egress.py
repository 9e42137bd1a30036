"""Egress a pod's own configuration names: an environment value that addresses a Service of
the repository (``CART_SERVICE_ADDR: cartservice:7070``, ``REDIS_URL: redis://redis-cart:6379``)
becomes an egress rule to the pods that Service selects, on the port it forwards to.

A value that names no Service of the repository (an external database) has no rule to become:
`unnamed_addresses` lists them, and the policy then leaves egress open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fixers.view import PodView, ServicePorts

_URL = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/\s]+@)?([A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:[/?#]|$)"
)
_HOST_PORT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$")
_CLUSTER_SUFFIX = ("svc", "cluster", "local")


def _addresses(value: str) -> Iterator[tuple[str, int]]:
    """(host, port) of every ``host:port`` or URL with a port in ``value`` (a list separated
    by commas or spaces, as broker lists are)."""
    for part in re.split(r"[,\s]+", value.strip()):
        match = _URL.match(part) or _HOST_PORT.match(part)
        if match and match.group(2):
            yield match.group(1).lower(), int(match.group(2))


def _service_of(host: str, namespace: str, services: Sequence[ServicePorts]) -> ServicePorts | None:
    """The Service ``host`` names from ``namespace``: ``name``, ``name.ns``, ``name.ns.svc``
    or ``name.ns.svc.cluster.local``."""
    labels = host.rstrip(".").split(".")
    name, rest = labels[0], labels[1:]
    target_ns = namespace
    if rest:
        target_ns, suffix = rest[0], tuple(rest[1:])
        if suffix != _CLUSTER_SUFFIX[: len(suffix)]:
            return None
    for service in services:
        if service.name == name and (service.namespace or "default") == target_ns:
            return service
    return None


def _addressed(
    view: PodView, services: Sequence[ServicePorts]
) -> Iterator[tuple[str, str, int, ServicePorts | None]]:
    """(where, host, port, the Service it names or None) of every address in the pod's
    environment values; ``where`` is ``VARIABLE of container``."""
    namespace = view.namespace or "default"
    for container in view.containers:
        if container.ephemeral:
            continue
        env = container.get("env")
        for variable in env if isinstance(env, list) else []:
            if not isinstance(variable, Mapping) or not isinstance(variable.get("value"), str):
                continue
            for host, port in _addresses(variable["value"]):
                where = f"{variable.get('name')} of {container.name}"
                yield where, host, port, _service_of(host, namespace, services)


def unnamed_addresses(view: PodView, services: Sequence[ServicePorts]) -> list[str]:
    """The addresses in the pod's environment values that reach no pod of a repository
    Service (an external database, an ExternalName Service), as ``VARIABLE of container
    (host:port)``: egress the repository cannot name a rule for."""
    return [
        f"{where} ({host}:{port})"
        for where, host, port, service in _addressed(view, services)
        if service is None or service.target(port) is None
    ]


def named_egress(
    view: PodView, services: Sequence[ServicePorts]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Egress rules to the repository's Services the pod's environment values address, one
    per Service, and a note for each."""
    namespace = view.namespace or "default"
    wanted: dict[ServicePorts, dict[tuple[str, int | str], list[str]]] = {}
    for where, _, port, service in _addressed(view, services):
        target = service.target(port) if service is not None else None
        if service is None or target is None:
            continue
        wanted.setdefault(service, {}).setdefault(target, []).append(where)
    rules: list[dict[str, Any]] = []
    notes: list[str] = []
    for service, targets in wanted.items():
        peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(service.selector)}}
        if (service.namespace or "default") != namespace:
            peer["namespaceSelector"] = {
                "matchLabels": {"kubernetes.io/metadata.name": service.namespace or "default"}
            }
        ports = [{"protocol": protocol, "port": port} for protocol, port in targets]
        rules.append({"to": [peer], "ports": ports})
        said = ", ".join(sorted({w for names in targets.values() for w in names}))
        opened = ", ".join(f"{p['port']}/{p['protocol']}" for p in ports)
        notes.append(f"egress allowed to Service {service.name} ({opened}), named by {said}")
    return rules, notes
