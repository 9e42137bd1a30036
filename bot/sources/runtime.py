"""Runtime evidence: what workloads were observed doing, beside the findings of the reports.

Read from files exported with kubectl (JSON or YAML, one object or a ``List``; NDJSON for Falco)
or live from the cluster through the same kubernetes-client path as the operator's scans
(`bot.cluster`). Understood objects, all of kubescape/storage's aggregated API
``spdx.softwarecomposition.kubescape.io/v1beta1``:

- ``ApplicationProfile``: ``spec.{containers,initContainers,ephemeralContainers}[]`` with
  ``capabilities``, ``execs``, ``opens`` (``path``, ``flags``), ``syscalls``, ``endpoints``;
- ``ContainerProfile`` (one container), also in the stored Go shape (capitalised ``Spec`` with
  ``Capabilities``/``Opens``/``Syscalls``..., metadata flattened), its container named by the
  ``kubescape.io/workload-container-name`` label;
- ``NetworkNeighborhood``: ``spec.containers[].{ingress,egress}[]`` peers (``type``,
  ``ipAddress``, ``dnsNames``, ``podSelector``, ``namespaceSelector``, ``ports``);
- ``GeneratedNetworkPolicy`` (``spec`` is the NetworkPolicy) and ``KnownServer`` ranges.

Only profiles whose learning completed are used: annotation ``kubescape.io/status: completed``
and ``kubescape.io/completion: complete`` ("partial" means the node-agent started after the
container, so its start-up was not seen); the others are listed as skipped with the reason.
Objects are joined to workloads by the ``kubescape.io/workload-{kind,name,namespace}`` labels and
the ``kubescape.io/wlid`` annotation, and to containers by name.

Falco alerts (its JSON output, one per line, or a falcosidekick payload) are joined by the
``k8s.ns.name`` / ``k8s.pod.name`` output fields; only rule, priority, time and container are
kept, never the output text (it may quote secrets from command lines).

This module is no report source (it defines no ``FORMAT``): evidence never becomes findings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BeforeValidator, Field, PlainValidator, model_validator
from pydantic.fields import FieldInfo

from bot.cluster import (
    DEFAULT_PAGE_SIZE,
    ClusterAccess,
    CustomResource,
    ResourceNotServed,
    api_client,
    list_objects,
)
from bot.errors import ReportError
from bot.sources._payload import (
    ListOrEmpty,
    ObjectsOnly,
    OrEmpty,
    OrNone,
    Payload,
    Raw,
    Text,
    empty,
)
from bot.sources.base import KNOWN_KINDS, Skipped
from bot.sources.kubescape_operator import workload_id
from fixers.model import ResourceRef
from fixers.runtime_evidence import (
    Alert,
    ContainerRuntime,
    KnownServer,
    Peer,
    WorkloadRuntime,
)

GROUP = "spdx.softwarecomposition.kubescape.io"
VERSION = "v1beta1"
KINDS = {
    "applicationprofiles": "ApplicationProfile",
    "containerprofiles": "ContainerProfile",
    "networkneighborhoods": "NetworkNeighborhood",
    "generatednetworkpolicies": "GeneratedNetworkPolicy",
    "knownservers": "KnownServer",
}
RESOURCES = tuple(
    CustomResource(GROUP, VERSION, plural, namespaced=plural != "knownservers") for plural in KINDS
)
MAX_BYTES = 64 * 1024 * 1024
MAX_OBJECTS = 200_000
MAX_DEPTH = 40
WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT"})
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_TOKEN_DIRS = (TOKEN_DIR, TOKEN_DIR.removeprefix("/var"))
_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)")


# --------------------------------------------------------------------------- raw payload


class _Annotations(Payload):
    status: Raw = Field(None, alias="kubescape.io/status")
    completion: Raw = Field(None, alias="kubescape.io/completion")
    report_timestamp: Raw = Field(None, alias="kubescape.io/report-timestamp")
    container_type: Raw = Field(None, alias="kubescape.io/workload-container-type")


class _Labels(Payload):
    container_name: Raw = Field(None, alias="kubescape.io/workload-container-name")


class _Metadata(Payload):
    """``metadata`` as served, or the flattened fields of the stored shape (see `_meta`)."""

    name: Raw = None
    namespace: Raw = None
    creationTimestamp: Raw = None
    annotations: Annotated[_Annotations, OrEmpty] = empty(_Annotations)
    labels: Annotated[_Labels, OrEmpty] = empty(_Labels)


class _OutputFields(Payload):
    namespace: Raw = Field(None, alias="k8s.ns.name")
    pod: Raw = Field(None, alias="k8s.pod.name")
    container: Raw = Field(None, alias="k8s.container.name")
    container_name: Raw = Field(None, alias="container.name")


class _Alert(Payload):
    """A Falco alert (what `_is_alert` recognises); its ``output`` text is never read."""

    rule: Text = ""
    priority: Text = ""
    time: Text = ""
    output_fields: Annotated[_OutputFields, OrEmpty] = empty(_OutputFields)


class _Part(Payload):
    """A part of a Kubescape object as served (JSON names: ``spec``, ``ipAddress``) or as stored
    (the Go type's field names: ``Spec``, ``IPAddress``).

    A field is read from its JSON name, else from that name with its first letter capitalised,
    else (when that gives null) from its `_GoName`. A value that is no JSON object reads as the
    empty part, and a null as the field's default.
    """

    _spellings: ClassVar[tuple[tuple[str, tuple[tuple[str, str], ...]], ...]] = ()
    """Per field: its name and the (JSON name, that name capitalised) pairs to try, in order."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._spellings = tuple(
            (name, tuple((n, n[:1].upper() + n[1:]) for n in (name, *_go_names(info))))
            for name, info in cls.model_fields.items()
        )

    @model_validator(mode="before")
    @classmethod
    def _served_or_stored(cls, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            return {}
        found: dict[str, Any] = {}
        for name, spellings in cls._spellings:
            for served, stored in spellings:
                value = data[served] if served in data else data.get(stored)
                if value is not None:
                    found[name] = value
                    break
        return found


@dataclass(frozen=True)
class _GoName:
    """A field's Go name where it is not the JSON name capitalised (``IPAddress``)."""

    name: str


def _go_names(info: FieldInfo) -> list[str]:
    return [m.name for m in info.metadata if isinstance(m, _GoName)]


def _port_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _objects_or_none(value: Any) -> list[Any] | None:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else None


_Strings = Annotated[list[Annotated[str, PlainValidator(str)]], ListOrEmpty]
"""A list's items as text (``str(item)``); anything that is no list as an empty one."""
_Selector = Annotated[dict[Any, Any] | None, OrNone]


class _Port(_Part):
    port: Annotated[int | None, PlainValidator(_port_number)] = None
    """None unless an integer (a boolean is none)."""
    protocol: Text = ""


class _Peer(_Part):
    """A NetworkNeighborhood ingress or egress entry."""

    type: Text = ""
    ipAddress: Annotated[Text, _GoName("IPAddress")] = ""
    dnsNames: Annotated[_Strings, _GoName("DNSNames")] = []
    dns: Annotated[Text, _GoName("DNS")] = ""
    podSelector: _Selector = None
    namespaceSelector: _Selector = None
    ports: Annotated[list[_Port], ListOrEmpty] = []

    def peer(self) -> Peer:
        return Peer(
            type=self.type,
            ip=self.ipAddress,
            dns=tuple(self.dnsNames) or ((self.dns,) if self.dns else ()),
            pod_selector=self.podSelector,
            namespace_selector=self.namespaceSelector,
            ports=tuple((p.protocol or "TCP", p.port) for p in self.ports if p.port is not None),
        )


_Peers = Annotated[list[_Peer], ObjectsOnly]
"""The entries that are JSON objects; anything that is no list as an empty one."""
_PeersIfRecorded = Annotated[list[_Peer] | None, BeforeValidator(_objects_or_none)]
"""As `_Peers`, but None for anything that is no list: traffic not recorded."""


class _Open(_Part):
    path: Text = ""
    flags: _Strings = []


class _Container(_Part):
    """One container's profile: an ApplicationProfile's ``spec.containers[]`` item."""

    name: Text = ""
    capabilities: _Strings = []
    syscalls: _Strings = []
    opens: Annotated[list[_Open], ListOrEmpty] = []
    execs: Annotated[list[Any], ListOrEmpty] = []


class _ContainerProfileSpec(_Container):
    """A ContainerProfile's ``spec``: one container's profile, with its traffic when recorded."""

    ingress: _PeersIfRecorded = None
    egress: _PeersIfRecorded = None


class _NeighborhoodContainer(_Part):
    """A NetworkNeighborhood's ``spec.containers[]`` item."""

    ingress: _Peers = []
    egress: _Peers = []


class _PodSpec(_Part):
    """The ``spec`` of an ApplicationProfile or NetworkNeighborhood: an entry per container, of
    the subclass's entry type (a subclass each, not a generic model: parametrising one builds
    its validators on import)."""

    def entries(self) -> Iterator[tuple[str, Any]]:
        """Each entry with the list it is in (``containers``, ``initContainers`` or
        ``ephemeralContainers``)."""
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for entry in getattr(self, key):
                yield key, entry


class _ProfileSpec(_PodSpec):
    containers: Annotated[list[_Container], ListOrEmpty] = []
    initContainers: Annotated[list[_Container], ListOrEmpty] = []
    ephemeralContainers: Annotated[list[_Container], ListOrEmpty] = []


class _NeighborhoodSpec(_PodSpec):
    containers: Annotated[list[_NeighborhoodContainer], ListOrEmpty] = []
    initContainers: Annotated[list[_NeighborhoodContainer], ListOrEmpty] = []
    ephemeralContainers: Annotated[list[_NeighborhoodContainer], ListOrEmpty] = []


class _ApplicationProfile(_Part):
    spec: _ProfileSpec = empty(_ProfileSpec)


class _NetworkNeighborhood(_Part):
    spec: _NeighborhoodSpec = empty(_NeighborhoodSpec)


class _ContainerProfile(_Part):
    spec: _ContainerProfileSpec = empty(_ContainerProfileSpec)


class _GeneratedNetworkPolicy(_Part):
    spec: Annotated[dict[Any, Any] | None, OrNone] = None
    """The NetworkPolicy, kept as it is."""


class _KnownServerEntry(_Part):
    ipBlock: Text = ""
    name: Text = ""
    server: Text = ""


class _KnownServers(_Part):
    spec: Annotated[list[_KnownServerEntry], ListOrEmpty] = []


# --------------------------------------------------------------------------- shape helpers


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _meta(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """``metadata`` as served, ``ObjectMeta`` or the flattened fields of the stored shape."""
    for key in ("metadata", "ObjectMeta"):
        meta = item.get(key)
        if isinstance(meta, Mapping):
            return meta
    return item


def _kind(item: Mapping[str, Any]) -> str | None:
    kind = item.get("kind")
    if kind in KINDS.values():
        return str(kind)
    spec = item.get("Spec")
    if "kind" not in item and isinstance(spec, Mapping) and "Opens" in spec:
        return "ContainerProfile"  # the stored shape carries no kind
    return None


def _is_alert(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and isinstance(item.get("rule"), str)
        and "priority" in item
        and ("output" in item or "output_fields" in item)
    )


def _depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Is ``value`` nested no deeper than ``limit``? (iterative: no recursion to blow)."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def _when(text: Any) -> str:
    """An RFC 3339 time, or a Go ``time.String()`` cut to seconds."""
    text = str(text or "").strip()
    match = _GO_TIME.match(text)
    return f"{match[1]}T{match[2]}Z" if match else text


# --------------------------------------------------------------------------- collection


@dataclass
class _Workload:
    kind: str
    namespace: str
    name: str
    containers: dict[str, ContainerRuntime] = field(default_factory=dict)
    ingress: list[Peer] = field(default_factory=list)
    egress: list[Peer] = field(default_factory=list)
    network: bool = False
    generated: Mapping[str, Any] | None = None
    sources: list[str] = field(default_factory=list)
    start: list[str] = field(default_factory=list)
    end: list[str] = field(default_factory=list)


@dataclass
class RuntimeEvidence:
    """Evidence by workload, alerts by pod, and what was passed over and why."""

    workloads: dict[tuple[str, str, str], _Workload] = field(default_factory=dict)
    alerts: dict[tuple[str, str], list[Alert]] = field(default_factory=dict)
    unattributed_alerts: int = 0
    known_servers: list[KnownServer] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    objects: int = 0
    origins: list[str] = field(default_factory=list)
    pending_policies: list[tuple[tuple[str, str, str], str, Mapping[str, Any]]] = field(
        default_factory=list
    )

    # ------------------------------------------------------------------ reading

    def add(self, items: Iterable[Any], origin: str) -> None:
        """Read Kubescape objects and Falco alerts (a ``List`` is opened)."""
        self.origins.append(origin)
        self._items(items, origin)

    def _items(self, items: Iterable[Any], origin: str) -> None:
        for item in items:
            if self.objects >= MAX_OBJECTS:
                raise ReportError(f"{origin}: more than {MAX_OBJECTS} evidence objects")
            if isinstance(item, Mapping) and str(item.get("kind", "")).endswith("List"):
                self._items(_list(item.get("items")), origin)
                continue
            self.objects += 1
            if _is_alert(item):
                self._alert(item)
                continue
            if not isinstance(item, Mapping) or (kind := _kind(item)) is None:
                what = item.get("kind") if isinstance(item, Mapping) else type(item).__name__
                raise ReportError(
                    f"{origin}: item {self.objects} is no Kubescape runtime object or Falco "
                    f"alert ({what or 'no kind'})"
                )
            self._object(kind, item)

    def _object(self, kind: str, item: Mapping[str, Any]) -> None:
        raw_meta = _meta(item)
        meta = _Metadata.model_validate(raw_meta)
        label = f"{kind} {meta.namespace or '-'}/{meta.name or '?'}"
        if kind == "KnownServer":
            self.known_servers += [
                KnownServer(entry.ipBlock, entry.name, entry.server)
                for entry in _KnownServers.model_validate(item).spec
                if entry.ipBlock
            ]
            return
        ident = self._workload(raw_meta, meta)
        if ident is None:
            self.skipped.append(Skipped(label, "names no workload (no kubescape.io labels/wlid)"))
            return
        if kind == "GeneratedNetworkPolicy":
            policy = _GeneratedNetworkPolicy.model_validate(item).spec
            if policy is not None:
                self.pending_policies.append((ident, label, policy))
            return
        annotations = meta.annotations
        status, completion = annotations.status, annotations.completion
        if status != "completed" or completion != "complete":
            why = (
                f"learning not complete (kubescape.io/status: {status or 'none'}, "
                f"kubescape.io/completion: {completion or 'none'})"
            )
            self.skipped.append(Skipped(label, why))
            return
        workload = self.workloads.setdefault(ident, _Workload(*ident))
        workload.sources.append(f"Kubescape {kind} {meta.namespace or ident[1]}/{meta.name}")
        if created := _when(meta.creationTimestamp):
            workload.start.append(created)
        if reported := _when(annotations.report_timestamp):
            workload.end.append(reported)
        entries: list[tuple[str, str, _Container]]
        if kind == "NetworkNeighborhood":
            workload.network = True
            for _, entry in _NetworkNeighborhood.model_validate(item).spec.entries():
                _observe(workload, entry.ingress, entry.egress)
            return
        if kind == "ContainerProfile":
            spec = _ContainerProfile.model_validate(item).spec
            # The successor of both profiles carries the container's traffic too; null lists
            # mean "not recorded here", not "no traffic".
            if spec.ingress is not None or spec.egress is not None:
                workload.network = True
                _observe(workload, spec.ingress or [], spec.egress or [])
            kind_of = str(annotations.container_type or "containers")
            entries = [(str(meta.labels.container_name or ""), kind_of, spec)]
        else:
            profile = _ApplicationProfile.model_validate(item).spec
            entries = [(c.name, key, c) for key, c in profile.entries()]
        for cname, key, data in entries:
            observed = _container(cname, key == "initContainers", data)
            known = workload.containers.get(cname)
            workload.containers[cname] = _union(known, observed) if known else observed

    def _workload(self, raw: Mapping[str, Any], meta: _Metadata) -> tuple[str, str, str] | None:
        rid = workload_id({"metadata": raw})
        if rid is None:
            return None
        namespace, kind, name = rid.split("/")[-3:]
        namespace = namespace or str(meta.namespace or "")
        return (KNOWN_KINDS.get(kind.lower(), kind), namespace, name)

    def _alert(self, item: Mapping[str, Any]) -> None:
        raw = _Alert.model_validate(item)
        fields = raw.output_fields
        ns, pod = fields.namespace, fields.pod
        container = fields.container or fields.container_name or ""
        alert = Alert(raw.rule[:200], raw.priority[:20], raw.time[:40], str(container)[:100])
        if not ns or not pod:
            self.unattributed_alerts += 1
            return
        self.alerts.setdefault((str(ns), str(pod)), []).append(alert)

    # ------------------------------------------------------------------ lookup

    def finish(self) -> RuntimeEvidence:
        """Attach GeneratedNetworkPolicies to workloads whose NetworkNeighborhood completed."""
        for ident, label, policy in self.pending_policies:
            workload = self.workloads.get(ident)
            if workload is None or not workload.network:
                self.skipped.append(
                    Skipped(label, "no completed NetworkNeighborhood of its workload was read")
                )
                continue
            workload.generated = policy
            workload.sources.append(f"Kubescape {label}")
        self.pending_policies.clear()
        return self

    def for_resource(self, resource: ResourceRef) -> WorkloadRuntime | None:
        """The evidence about one workload of a finding, or None when there is none."""
        ident = (resource.kind, resource.namespace or "", resource.name)
        found = self.workloads.get(ident)
        if found is None and not resource.namespace:
            found = self.workloads.get((resource.kind, "default", resource.name))
        alerts = tuple(
            a
            for (ns, pod), items in sorted(self.alerts.items())
            if ns == (resource.namespace or "default") and pod_of(resource.kind, resource.name, pod)
            for a in items
        )
        if found is None and not alerts:
            return None
        if found is None:
            return WorkloadRuntime(
                kind=resource.kind,
                namespace=resource.namespace or "",
                name=resource.name,
                alerts=alerts,
            )
        return replace(_freeze(found, tuple(self.known_servers)), alerts=alerts)

    def describe(self) -> str:
        """One line: what was read and what was passed over."""
        profiled = sum(1 for w in self.workloads.values() if w.containers)
        networked = sum(1 for w in self.workloads.values() if w.network)
        alerts = sum(len(a) for a in self.alerts.values())
        text = (
            f"runtime evidence: {profiled} workload(s) with profiles, {networked} with network "
            f"neighbourhoods, {alerts} Falco alert(s) on {len(self.alerts)} pod(s)"
        )
        if self.unattributed_alerts:
            text += f", {self.unattributed_alerts} alert(s) naming no pod"
        if self.skipped:
            text += f"; {len(self.skipped)} object(s) not used (e.g. {self.skipped[0].what}: {self.skipped[0].reason})"
        return text


_POD_SUFFIX = {
    "Deployment": r"-[a-z0-9]{5,10}-[a-z0-9]{5}",
    "StatefulSet": r"-\d+",
    "DaemonSet": r"-[a-z0-9]{5}",
    "ReplicaSet": r"-[a-z0-9]{5}",
    "ReplicationController": r"-[a-z0-9]{5}",
    "Job": r"-[a-z0-9]{5}",
    "CronJob": r"-\d+-[a-z0-9]{5}",
}


def pod_of(kind: str, name: str, pod: str) -> bool:
    """Is ``pod`` one of the pods the controller ``kind``/``name`` creates (by its naming)?"""
    if kind == "Pod":
        return pod == name
    suffix = _POD_SUFFIX.get(kind)
    return bool(suffix and re.fullmatch(re.escape(name) + suffix, pod))


def _observe(workload: _Workload, ingress: list[_Peer], egress: list[_Peer]) -> None:
    """Add the peers not yet recorded for the workload (a peer repeated within one list is kept
    twice, as read)."""
    workload.ingress += [p for p in (e.peer() for e in ingress) if p not in workload.ingress]
    workload.egress += [p for p in (e.peer() for e in egress) if p not in workload.egress]


def _container(name: str, init: bool, data: _Container) -> ContainerRuntime:
    written: list[str] = []
    reads_token = False
    for entry in data.opens:
        if entry.path.startswith(_TOKEN_DIRS):
            reads_token = True
        if entry.path and WRITE_FLAGS.intersection(entry.flags) and entry.path not in written:
            written.append(entry.path)
    return ContainerRuntime(
        name=name,
        init=init,
        capabilities=tuple(sorted(set(data.capabilities))),
        syscalls=tuple(sorted(set(data.syscalls))),
        written=tuple(written),
        opens=len(data.opens),
        execs=len(data.execs),
        reads_token=reads_token,
    )


def _union(a: ContainerRuntime, b: ContainerRuntime) -> ContainerRuntime:
    """Two profiles of one container (e.g. of two ReplicaSets): everything either saw."""
    return ContainerRuntime(
        name=a.name,
        init=a.init,
        capabilities=tuple(sorted({*a.capabilities, *b.capabilities})),
        syscalls=tuple(sorted({*a.syscalls, *b.syscalls})),
        written=tuple(dict.fromkeys((*a.written, *b.written))),
        opens=a.opens + b.opens,
        execs=a.execs + b.execs,
        reads_token=a.reads_token or b.reads_token,
    )


def _freeze(w: _Workload, known: tuple[KnownServer, ...]) -> WorkloadRuntime:
    start = min(w.start) if w.start else ""
    end = max(w.end) if w.end else ""
    if start and end and end > start:
        window = f"learning completed (profile created {start}, last report {end})"
    elif start:
        window = f"learning completed (profile created {start})"
    else:
        window = "learning completed (observation times not recorded)"
    return WorkloadRuntime(
        kind=w.kind,
        namespace=w.namespace,
        name=w.name,
        containers=tuple(w.containers.values()),
        network_observed=w.network,
        ingress=tuple(w.ingress),
        egress=tuple(w.egress),
        generated_policy=w.generated,
        known_servers=known,
        sources=tuple(dict.fromkeys(w.sources)),
        window=window,
    )


# --------------------------------------------------------------------------- files and cluster


def _documents(text: str, origin: str, suffix: str) -> list[Any]:
    stripped = text.lstrip()
    if suffix in {".yaml", ".yml"} or not stripped.startswith(("{", "[")):
        try:
            return [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise ReportError(f"{origin}: not valid JSON or YAML: {exc}".splitlines()[0]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            return [json.loads(line) for line in lines]  # NDJSON: Falco's json_output
        except json.JSONDecodeError as exc:
            raise ReportError(
                f"{origin}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    except RecursionError:
        raise ReportError(f"{origin}: nested too deeply") from None
    return data if isinstance(data, list) else [data]


def load_evidence(
    paths: Iterable[Path], evidence: RuntimeEvidence | None = None
) -> RuntimeEvidence:
    """Read evidence files (JSON, YAML, NDJSON); problems are one-line `ReportError`s."""
    evidence = evidence or RuntimeEvidence()
    for path in paths:
        path = Path(path)
        origin = str(path)
        try:
            size = path.stat().st_size
            if path.is_dir():
                raise ReportError(f"evidence path is a directory, not a file: {origin}")
            if size > MAX_BYTES:
                raise ReportError(
                    f"{origin}: evidence file is {size / 1048576:.1f} MB, over the limit of "
                    f"{MAX_BYTES // 1048576} MB"
                )
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ReportError(f"evidence file not found: {origin}") from None
        except UnicodeDecodeError:
            raise ReportError(f"{origin}: not a text file (not UTF-8)") from None
        except OSError as exc:
            raise ReportError(f"cannot read evidence {origin}: {exc.strerror}") from None
        documents = _documents(text, origin, path.suffix.lower())
        if not all(_depth(d) for d in documents):
            raise ReportError(f"{origin}: nested deeper than {MAX_DEPTH} levels")
        evidence.add(documents, origin)
    return evidence.finish()


@dataclass(frozen=True)
class ClusterObjects:
    """One read of a cluster's Kubescape runtime objects, kept as plain JSON so that a run can
    record it and its tasks plan from the same objects without listing them again."""

    host: str
    served: tuple[tuple[str, tuple[Mapping[str, Any], ...]], ...]
    """(resource, objects) of each resource the cluster serves."""
    not_served: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "served": [[name, list(items)] for name, items in self.served],
            "not_served": list(self.not_served),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterObjects:
        return cls(
            str(data["host"]),
            tuple((str(name), tuple(items)) for name, items in data["served"]),
            tuple(str(name) for name in data["not_served"]),
        )


def read_cluster(
    access: ClusterAccess, namespace: str | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
) -> ClusterObjects:
    """The Kubescape runtime objects of a live cluster (one namespace or all), page by page."""
    api = api_client(access)
    served: list[tuple[str, tuple[Mapping[str, Any], ...]]] = []
    not_served: list[str] = []
    try:
        host = str(api.configuration.host)
        for resource in RESOURCES:
            if not resource.namespaced and namespace is not None:
                continue
            try:
                items = tuple(list_objects(api, resource, namespace, page_size=page_size))
            except ResourceNotServed:
                not_served.append(resource.full_name)
                continue
            served.append((resource.full_name, items))
    finally:
        api.close()
    if not served:
        raise ReportError(
            f"{host}: the cluster serves none of Kubescape's runtime objects "
            f"({', '.join(KINDS)} in {GROUP}): is the Kubescape operator installed with "
            "its node-agent (runtime observability) enabled?"
        )
    return ClusterObjects(host, tuple(served), tuple(not_served))


def add_cluster(
    objects: ClusterObjects, evidence: RuntimeEvidence | None = None
) -> RuntimeEvidence:
    """Evidence from a read of the cluster (`read_cluster`), added to ``evidence`` if given."""
    evidence = evidence or RuntimeEvidence()
    for name in objects.not_served:
        evidence.skipped.append(Skipped(name, "not served by this cluster's kubescape/storage"))
    for name, items in objects.served:
        evidence.add(items, f"{objects.host}: {name}")
    return evidence.finish()


def fetch_evidence(
    access: ClusterAccess,
    namespace: str | None = None,
    evidence: RuntimeEvidence | None = None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> RuntimeEvidence:
    """The Kubescape runtime objects of a live cluster (one namespace or all), page by page."""
    return add_cluster(read_cluster(access, namespace, page_size=page_size), evidence)
