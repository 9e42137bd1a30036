"""Runtime evidence: what a workload was observed doing, and the fix decisions that follow.

The records (`WorkloadRuntime` and its parts) are filled by ``bot.sources.runtime`` from
Kubescape's ApplicationProfiles / ContainerProfiles / NetworkNeighborhoods /
GeneratedNetworkPolicies (only those whose learning completed) and Falco alerts, and reach the
fixers through ``FixContext.runtime``. The decisions below are pure: a fixer asks them what the
evidence allows and words its notes from the answer. Notes give counts and names, never raw
dumps (no file contents, no environment, no alert output text).

Shape shared with ``fixers.intent`` (branch trust-intent): `WorkloadRuntime.intent_evidence`
yields the fields of its ``Evidence`` record (source, detail, needs, container, paths).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import yaml

from fixers.model import (
    AlreadyCompliant,
    AnyEdit,
    AppendUnique,
    Fixed,
    NeedsHuman,
    Remove,
    Result,
    Set,
)
from fixers.view import ContainerView, PodView, target_containers

if TYPE_CHECKING:
    from fixers.model import Finding

# Shipped data, trusted: the C parser when PyYAML has it (start-up time of every command).
_DATA_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SOURCE_AP = "Kubescape ApplicationProfile"
SOURCE_NN = "Kubescape NetworkNeighborhood"
SOURCE_FALCO = "Falco"
_PROCESS_KINDS = ("ApplicationProfile", "ContainerProfile")
_NETWORK_KINDS = ("NetworkNeighborhood", "GeneratedNetworkPolicy")

# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Peer:
    """One observed network neighbour of a pod (a NetworkNeighborhood ingress/egress entry)."""

    type: str = ""
    """'internal' (a pod or service in the cluster) or 'external'."""
    ip: str = ""
    dns: tuple[str, ...] = ()
    pod_selector: Mapping[str, Any] | None = None
    namespace_selector: Mapping[str, Any] | None = None
    ports: tuple[tuple[str, int], ...] = ()
    """(protocol, port) pairs."""


@dataclass(frozen=True)
class ContainerRuntime:
    """What one container did while the profile learned."""

    name: str
    init: bool = False
    capabilities: tuple[str, ...] = ()
    syscalls: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    """Paths opened with O_WRONLY, O_RDWR or O_CREAT."""
    opens: int = 0
    execs: int = 0
    reads_token: bool = False
    """It opened the mounted service-account token."""


@dataclass(frozen=True)
class Alert:
    """One Falco alert, reduced to what a summary may show (never its output text)."""

    rule: str
    priority: str
    time: str = ""
    container: str = ""


@dataclass(frozen=True)
class KnownServer:
    """A Kubescape KnownServer entry: an IP range with a name."""

    cidr: str
    name: str = ""
    server: str = ""


@dataclass(frozen=True)
class WorkloadRuntime:
    """Everything observed for one workload (kind, namespace, name)."""

    kind: str
    namespace: str
    name: str
    containers: tuple[ContainerRuntime, ...] = ()
    network_observed: bool = False
    """A NetworkNeighborhood whose learning completed covers this workload."""
    ingress: tuple[Peer, ...] = ()
    egress: tuple[Peer, ...] = ()
    generated_policy: Mapping[str, Any] | None = None
    """The NetworkPolicy of Kubescape's GeneratedNetworkPolicy for this workload, if read."""
    known_servers: tuple[KnownServer, ...] = ()
    sources: tuple[str, ...] = ()
    """The objects the evidence comes from, e.g. 'ApplicationProfile ns/name'."""
    window: str = ""
    """Which observation window the evidence covers, in words."""
    alerts: tuple[Alert, ...] = ()

    def container(self, name: str, regular_containers: int = 0) -> ContainerRuntime | None:
        """The observations of container ``name``. A profile entry without a name (some
        exports lack it) counts only for a pod with exactly one regular container."""
        for item in self.containers:
            if item.name == name:
                return item
        unnamed = [c for c in self.containers if not c.name and not c.init]
        if len(unnamed) == 1 and len(self.containers) == 1 and regular_containers == 1:
            return unnamed[0]
        return None

    @property
    def profiled(self) -> bool:
        return bool(self.containers)

    def cite(self, network: bool = False) -> str:
        """'Kubescape ApplicationProfile ns/x; learning completed, observed from ...' for the
        MR notes: the objects behind the process (or, with ``network``, the traffic) evidence
        and the observation window."""
        kinds = _NETWORK_KINDS if network else _PROCESS_KINDS
        names = [s for s in self.sources if s.split(" ")[1:2] and s.split(" ")[1] in kinds]
        where = ", ".join(names) if names else (SOURCE_NN if network else SOURCE_AP)
        return f"{where}{f'; {self.window}' if self.window else ''}"

    def intent_evidence(self) -> Iterator[dict[str, Any]]:
        """The observations as ``fixers.intent.Evidence`` fields (trust-intent's record)."""
        for c in self.containers:
            outside = tuple(p for p in c.written if not _scratch_root(p) and not _pseudo(p))
            needs = [f"capability:{cap}" for cap in c.capabilities]
            if outside:
                needs.append("writableRoot")
            if c.reads_token:
                needs.append("apiServer")
            if needs:
                yield {
                    "source": SOURCE_AP,
                    "detail": f"{c.name} was observed using {', '.join(needs)}",
                    "needs": tuple(needs),
                    "container": c.name or None,
                    "paths": outside,
                }
        if self.talks_to_api_server():
            yield {
                "source": SOURCE_NN,
                "detail": "the pod was observed calling the Kubernetes API server",
                "needs": ("apiServer",),
                "container": None,
                "paths": (),
            }

    def talks_to_api_server(self) -> bool:
        return any(_is_api_server(p) for p in self.egress)


# --------------------------------------------------------------------------- network policy

DNS_PEER: Mapping[str, Any] = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
VOLATILE_LABELS = frozenset(
    {
        "controller-uid",
        "batch.kubernetes.io/controller-uid",
        "job-name",
        "batch.kubernetes.io/job-name",
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
    }
)
"""Labels that change with every Job run or rollout: a peer selected by them is lost on the
next one, so they are left out of selectors."""
_API_SERVER_LABELS = {"component": "apiserver", "provider": "kubernetes"}


def _is_api_server(peer: Peer) -> bool:
    labels = (peer.pod_selector or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in _API_SERVER_LABELS.items())


def _clean_selector(selector: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """The selector without volatile labels, and the labels left out."""
    if not isinstance(selector, Mapping):
        return None, []
    labels = dict(selector.get("matchLabels") or {})
    dropped = sorted(k for k in labels if k in VOLATILE_LABELS)
    kept = {str(k): str(v) for k, v in labels.items() if k not in VOLATILE_LABELS}
    out: dict[str, Any] = {}
    if kept:
        out["matchLabels"] = dict(sorted(kept.items()))
    if selector.get("matchExpressions"):
        out["matchExpressions"] = [
            e
            for e in selector["matchExpressions"]
            if not (isinstance(e, Mapping) and e.get("key") in VOLATILE_LABELS)
        ]
    return out, dropped


def _cidr(ip: str, known: Sequence[KnownServer]) -> str:
    """The KnownServer range holding ``ip`` (as Kubescape writes it), else ``ip/32``."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    for server in known:
        try:
            if address in ipaddress.ip_network(server.cidr, strict=False):
                return server.cidr
        except ValueError:
            continue
    return f"{ip}/{address.max_prefixlen}"


@dataclass
class _Tally:
    by_labels: int = 0
    by_ip: int = 0
    dns_only: list[str] = field(default_factory=list)
    dropped_labels: set[str] = field(default_factory=set)


def _rules(
    peers: Iterable[Peer], known: Sequence[KnownServer], tally: _Tally
) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for peer in peers:
        ports = [{"port": p, "protocol": proto} for proto, p in peer.ports]
        targets: list[dict[str, Any]] = []
        pod, dropped_pod = _clean_selector(peer.pod_selector)
        ns, dropped_ns = _clean_selector(peer.namespace_selector)
        tally.dropped_labels.update(dropped_pod + dropped_ns)
        if (pod and pod.get("matchLabels")) or (ns and ns.get("matchLabels")):
            entry: dict[str, Any] = {}
            if ns is not None:
                entry["namespaceSelector"] = ns
            if pod is not None:
                entry["podSelector"] = pod
            targets.append(entry)
            tally.by_labels += 1
            # The API server is no pod: its selector matches nothing, its address does.
            if peer.ip and _is_api_server(peer):
                targets.append({"ipBlock": {"cidr": _cidr(peer.ip, ())}})
        elif peer.ip and (cidr := _cidr(peer.ip, known)):
            targets.append({"ipBlock": {"cidr": cidr}})
            tally.by_ip += 1
        else:
            tally.dns_only.append(", ".join(peer.dns) or peer.type or "unnamed peer")
            continue
        rules.append({"ports": ports, "peers": targets})
    merged: list[dict[str, Any]] = []
    for rule in rules:
        ip_only = all(set(t) == {"ipBlock"} for t in rule["peers"])
        twin = next(
            (
                m
                for m in merged
                if ip_only
                and m["ports"] == rule["ports"]
                and all(set(t) == {"ipBlock"} for t in m["peers"])
            ),
            None,
        )
        if twin is None:
            merged.append({"ports": rule["ports"], "peers": list(rule["peers"])})
        else:
            twin["peers"] += [t for t in rule["peers"] if t not in twin["peers"]]
            twin["peers"].sort(key=lambda t: t["ipBlock"]["cidr"])
    return merged


def _sorted(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rules, key=lambda r: json.dumps(r, sort_keys=True))


def _has_dns(egress: Sequence[Mapping[str, Any]]) -> bool:
    for rule in egress:
        if any(p.get("port") == 53 for p in rule.get("ports") or []):
            return True
        for peer in rule.get("to") or []:
            labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
            if labels.get("k8s-app") == "kube-dns":
                return True
    return False


@dataclass(frozen=True)
class ObservedPolicy:
    """The ingress and egress rules evidence allows, and what the MR should say about them."""

    ingress: tuple[Mapping[str, Any], ...]
    egress: tuple[Mapping[str, Any], ...]
    notes: tuple[str, ...]
    values_used: tuple[str, ...]


def observed_policy(evidence: WorkloadRuntime) -> ObservedPolicy | None:
    """NetworkPolicy rules from the GeneratedNetworkPolicy (preferred: Kubescape applied the
    cluster's KnownServers) or from the observed peers; None without network evidence."""
    if not evidence.network_observed:
        return None
    tally = _Tally()
    if evidence.generated_policy is not None:
        spec = evidence.generated_policy.get("spec") or {}
        ingress = [_strip_rule(r, "from", tally) for r in spec.get("ingress") or []]
        egress = [_strip_rule(r, "to", tally) for r in spec.get("egress") or []]
        basis = evidence.cite(network=True)
    else:
        known = evidence.known_servers
        ingress = [
            {"from": r["peers"], "ports": r["ports"]}
            for r in _rules(evidence.ingress, known, tally)
        ]
        egress = [
            {"to": r["peers"], "ports": r["ports"]} for r in _rules(evidence.egress, known, tally)
        ]
        basis = evidence.cite(network=True)
    notes = [
        f"ingress: {len(ingress)} rule(s) and egress: {len(egress)} rule(s), from the traffic "
        f"observed ({len(evidence.ingress)} inbound and {len(evidence.egress)} outbound peers)"
    ]
    if tally.by_labels or tally.by_ip:
        notes.append(
            f"{tally.by_labels} peer(s) named by labels; {tally.by_ip} named only by IP address "
            "(ipBlock): check those, pod and service addresses change"
        )
    if tally.dns_only:
        notes.append(
            f"{len(tally.dns_only)} peer(s) observed by DNS name only cannot be expressed in a "
            f"NetworkPolicy and are not allowed: {', '.join(sorted(set(tally.dns_only)))}"
        )
    if tally.dropped_labels:
        notes.append(
            "labels that change with every run or rollout are left out of peer selectors: "
            + ", ".join(sorted(tally.dropped_labels))
        )
    if not _has_dns(egress):
        egress.append(
            {
                "to": [dict(DNS_PEER)],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        )
        notes.append("DNS egress to kube-dns (UDP/TCP 53) kept although none was observed")
    else:
        notes.append("DNS egress kept as observed")
    return ObservedPolicy(
        tuple(_sorted(ingress)),
        tuple(_sorted(egress)),
        tuple(notes),
        (f"peers and ports: {basis}",),
    )


def _strip_rule(rule: Mapping[str, Any], key: str, tally: _Tally) -> dict[str, Any]:
    peers = []
    for peer in rule.get(key) or []:
        if not isinstance(peer, Mapping):
            continue
        out: dict[str, Any] = {}
        for selector in ("namespaceSelector", "podSelector"):
            if selector in peer:
                cleaned, dropped = _clean_selector(peer[selector])
                tally.dropped_labels.update(dropped)
                out[selector] = cleaned or {}
        if "ipBlock" in peer:
            out["ipBlock"] = dict(peer["ipBlock"])
            tally.by_ip += 1
        else:
            tally.by_labels += 1
        peers.append(out)
    return {key: peers, "ports": [dict(p) for p in rule.get("ports") or []]}


# --------------------------------------------------------------------------- capabilities


def capabilities_to_keep(
    observed: ContainerRuntime, insecure: frozenset[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(capabilities to add back after drop ALL, insecure ones the container was seen using)."""
    caps = tuple(sorted({c.upper().removeprefix("CAP_") for c in observed.capabilities}))
    return caps, tuple(c for c in caps if c in insecure)


# --------------------------------------------------------------------------- seccomp


@cache
def _seccomp_data() -> tuple[dict[str, tuple[str, ...]], frozenset[str], str]:
    raw = yaml.load(
        files("fixers").joinpath("data", "runtime_default_seccomp.yaml").read_text("utf-8"),
        Loader=_DATA_LOADER,
    )
    blocked = {str(k): tuple(v or ()) for k, v in raw["blocked"].items()}
    return blocked, frozenset(raw["runtime_setup"]), str(raw["source"])


def seccomp_misfits(
    observed: ContainerRuntime, capabilities: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(observed calls RuntimeDefault blocks for a container holding ``capabilities``, calls
    ignored because the container runtime makes them before the profile applies, the data
    source)."""
    blocked, setup, source = _seccomp_data()
    held = {str(c).upper().removeprefix("CAP_") for c in capabilities}
    misfit: list[str] = []
    ignored: list[str] = []
    for call in sorted(set(observed.syscalls)):
        unless = blocked.get(call)
        if unless is None or held & set(unless):
            continue
        (ignored if call in setup else misfit).append(call)
    return tuple(misfit), tuple(ignored), source


# --------------------------------------------------------------------------- writes

SCRATCH_ROOTS = ("/tmp", "/var/tmp", "/run", "/var/run", "/var/cache", "/var/log")
"""Directories programs use for scratch files: an emptyDir there hides nothing the image needs."""
PSEUDO_ROOTS = ("/dev", "/proc", "/sys")
MAX_MOUNTS = 4


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _pseudo(path: str) -> bool:
    return any(_under(path, r) for r in PSEUDO_ROOTS)


def _scratch_root(path: str) -> str | None:
    """Where an emptyDir for a file at ``path`` goes, when it is a scratch location."""
    for root in SCRATCH_ROOTS:
        if _under(path, root) and path != root:
            if root in ("/var/cache", "/var/log"):
                rest = path[len(root) + 1 :].split("/")
                return f"{root}/{rest[0]}" if len(rest) > 1 else root
            return root
    return None


@dataclass(frozen=True)
class WritePlan:
    """Where a container writes outside its volumes, and what that means for C-0017."""

    mounts: tuple[str, ...]
    """emptyDir mount paths that cover the observed scratch writes."""
    outside: tuple[str, ...]
    """Writes into the image's own directories: an emptyDir there would hide its files."""
    covered: int
    """Writes that existing volumes already take."""


def plan_writes(observed: ContainerRuntime, volume_mounts: Sequence[str]) -> WritePlan:
    mounts: list[str] = []
    outside: list[str] = []
    covered = 0
    for path in sorted(set(observed.written)):
        if _pseudo(path):
            continue
        if any(_under(path, m) for m in volume_mounts):
            covered += 1
            continue
        root = _scratch_root(path)
        if root is None:
            outside.append(path)
        elif root not in mounts:
            mounts.append(root)
    return WritePlan(tuple(mounts), tuple(outside), covered)


def examples(items: Sequence[str], limit: int = 5) -> str:
    """A few items and how many more, never a dump."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def mount_name(path: str) -> str:
    """A volume name for an emptyDir at ``path`` (``/var/cache/nginx`` -> ``var-cache-nginx``)."""
    return "-".join(p for p in path.strip("/").replace("_", "-").lower().split("/") if p)[:63]


# --------------------------------------------------------------------------- alerts

PRIORITIES = (
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
)


def alert_summary(alerts: Sequence[Alert]) -> str:
    """'5 Falco alerts (Error: 'Write below binary dir' x3; ...) from T1 to T2'."""
    if not alerts:
        return ""
    rules: dict[str, list[Alert]] = {}
    for alert in alerts:
        rules.setdefault(alert.rule, []).append(alert)

    def rank(p: str) -> int:
        return PRIORITIES.index(p) if p in PRIORITIES else len(PRIORITIES)

    parts = []
    for rule, found in sorted(
        rules.items(), key=lambda kv: (min(rank(a.priority) for a in kv[1]), kv[0])
    ):
        top = min((a.priority for a in found), key=rank)
        parts.append(f"{top}: {rule!r} x{len(found)}")
    times = sorted(a.time for a in alerts if a.time)
    when = f" from {times[0]} to {times[-1]}" if times else ""
    return f"{len(alerts)} Falco alert(s) ({'; '.join(parts[:5])}){when}"


# --------------------------------------------------------------------------- fixer hooks
# Each returns None when the evidence says nothing about the containers at hand: the fixer then
# makes its static fix.


def _observed(
    view: PodView, finding: Finding, evidence: WorkloadRuntime
) -> list[tuple[ContainerView, ContainerRuntime]] | None:
    """The target containers with their observations; None unless every one was profiled."""
    regular = sum(1 for c in view.containers if not c.init and not c.ephemeral)
    pairs = []
    for container in target_containers(view, finding):
        observed = evidence.container(container.name, regular)
        if observed is None:
            return None
        pairs.append((container, observed))
    return pairs or None


def _contradicted(what: str, evidence: WorkloadRuntime) -> NeedsHuman:
    return NeedsHuman(f"runtime evidence contradicts this fix: {what} ({evidence.cite()})")


def capabilities_fix(
    view: PodView, finding: Finding, evidence: WorkloadRuntime, insecure: frozenset[str]
) -> Result | None:
    """C-0046 with evidence: drop ALL and add back exactly the capabilities observed; declined
    when the container was seen using one of the insecure capabilities."""
    pairs = _observed(view, finding, evidence)
    if pairs is None:
        return None
    edits: list[AnyEdit] = []
    notes: list[str] = []
    for container, observed in pairs:
        keep, used = capabilities_to_keep(observed, insecure)
        if used:
            return _contradicted(f"{container.name} was observed using {', '.join(used)}", evidence)
        drop = container.get("securityContext", "capabilities", "drop", default=None)
        add = container.get("securityContext", "capabilities", "add", default=None)
        if drop == ["ALL"] and (add or []) == list(keep):
            continue
        base = ("securityContext", "capabilities")
        edits.append(Set(container.path(*base, "drop"), ["ALL"]))
        if keep:
            edits.append(Set(container.path(*base, "add"), list(keep)))
        elif add is not None:
            edits.append(Remove(container.path(*base, "add")))
        notes.append(
            f"{container.name}: drops ALL capabilities and adds back the "
            f"{len(keep)} observed: {', '.join(keep) or 'none'}"
        )
    if not edits:
        return AlreadyCompliant("every container drops ALL and adds only what it was seen using")
    notes.append(
        "capabilities the workload did not use while Kubescape learned are gone; a code path "
        "not exercised then (e.g. a rare admin task) may need one back"
    )
    return Fixed(
        tuple(edits), notes=tuple(notes), values_used=(f"capabilities: {evidence.cite()}",)
    )


def read_only_fix(view: PodView, finding: Finding, evidence: WorkloadRuntime) -> Result | None:
    """C-0017 with evidence: emptyDir mounts exactly where the containers were seen writing;
    declined when they write into the image's own directories or in too many places."""
    pairs = _observed(view, finding, evidence)
    if pairs is None:
        return None
    volumes = {
        str(v.get("name")): v
        for v in view.get("volumes", default=[]) or []
        if isinstance(v, Mapping)
    }
    edits: list[AnyEdit] = []
    notes: list[str] = []
    new_volumes: list[str] = []
    for container, observed in pairs:
        if container.get("securityContext", "readOnlyRootFilesystem") is True:
            continue
        mounted = [
            str(m.get("mountPath"))
            for m in container.get("volumeMounts", default=[]) or []
            if isinstance(m, Mapping) and m.get("mountPath")
        ]
        writes = plan_writes(observed, mounted)
        if writes.outside:
            return _contradicted(
                f"{container.name} writes to its root filesystem at {len(writes.outside)} "
                f"path(s) outside scratch directories: {examples(writes.outside)}; an emptyDir "
                "there would hide the image's own files",
                evidence,
            )
        if len(writes.mounts) > MAX_MOUNTS:
            return NeedsHuman(
                f"{container.name} writes in {len(writes.mounts)} places "
                f"({examples(writes.mounts)}), too many to cover with emptyDir mounts; "
                f"choose where it may write ({evidence.cite()})"
            )
        edits.append(Set(container.path("securityContext", "readOnlyRootFilesystem"), True))
        for path in writes.mounts:
            name = mount_name(path)
            existing = volumes.get(name)
            if existing is not None and "emptyDir" not in existing:
                return NeedsHuman(
                    f"the pod already has a volume named {name!r} that is not an emptyDir; "
                    f"choose where {container.name} may write {path}"
                )
            edits.append(
                AppendUnique(
                    container.path("volumeMounts"), {"name": name, "mountPath": path}, key="name"
                )
            )
            if name not in new_volumes:
                new_volumes.append(name)
        notes.append(
            f"{container.name}: readOnlyRootFilesystem true; observed writing "
            f"{len(observed.written)} path(s): "
            + (
                f"emptyDir mounted at {', '.join(writes.mounts)}"
                if writes.mounts
                else "all of them on volumes or device files, so no mount is added"
            )
        )
    if not edits:
        return AlreadyCompliant("every container sets readOnlyRootFilesystem: true")
    for name in new_volumes:
        edits.append(
            AppendUnique(
                view.path("volumes"),
                {"name": name, "emptyDir": {}},
                key="name",
                comment="writable: the workload was observed writing here",
            )
        )
    notes.append("writes not seen while Kubescape learned will fail with 'read-only file system'")
    return Fixed(tuple(edits), notes=tuple(notes), values_used=(f"write paths: {evidence.cite()}",))


def seccomp_check(
    view: PodView, finding: Finding, evidence: WorkloadRuntime
) -> NeedsHuman | tuple[str, ...] | None:
    """C-0055/C-0210 with evidence: a decline naming the observed system calls RuntimeDefault
    blocks, else the notes saying the calls fit."""
    pairs = _observed(view, finding, evidence)
    if pairs is None:
        return None
    notes: list[str] = []
    for container, observed in pairs:
        added = container.get("securityContext", "capabilities", "add", default=[]) or []
        misfit, ignored, source = seccomp_misfits(
            observed, added if isinstance(added, list) else []
        )
        if misfit:
            return NeedsHuman(
                f"RuntimeDefault would block {len(misfit)} system call(s) {container.name} was "
                f"observed making: {examples(misfit)} ({evidence.cite()}; blocked list from "
                f"{source}); write a Localhost profile that allows them, or record an exception"
            )
        note = (
            f"{container.name}: all {len(observed.syscalls)} observed system calls are allowed "
            "by RuntimeDefault"
        )
        if ignored:
            note += (
                f" (not counted: {', '.join(ignored)}, which the container runtime makes "
                "before the profile applies)"
            )
        notes.append(note)
    notes.append(f"system calls: {evidence.cite()}")
    return tuple(notes)


def automount_check(evidence: WorkloadRuntime) -> NeedsHuman | str | None:
    """C-0034 with evidence: declined when the pod was seen calling the API server or reading
    its token, else a note that it was not."""
    readers = [c.name for c in evidence.containers if c.reads_token]
    api = evidence.talks_to_api_server()
    if readers or api:
        seen = []
        if api:
            seen.append("calling the Kubernetes API server")
        if readers:
            seen.append(f"reading the service-account token ({', '.join(readers)})")
        return _contradicted(f"the pod was observed {' and '.join(seen)}", evidence)
    if evidence.network_observed or evidence.profiled:
        return f"no API server traffic and no token read was observed ({evidence.cite(network=evidence.network_observed)})"
    return None
