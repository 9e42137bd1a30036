"""A uniform view of a pod spec and its containers, wherever the pod spec lives.

The same fixer serves a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, bare Pod
(`ManifestPodView`) and a Helm chart's values (a view built by the Helm locator, which maps
each logical field to the values key that feeds it). Fixers read values with ``get`` and write
edits at ``path``; a view that has no place for a field raises `FieldNotExposed`, which the
registry turns into a `NeedsHuman` answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fixers.model import AnyEdit, YamlPath

if TYPE_CHECKING:
    from fixers.model import Finding

_MISSING: Any = object()

POD_SPEC_PATHS: Mapping[str, YamlPath] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
"""Where each workload kind keeps its pod spec."""

WORKLOAD_KINDS = frozenset(POD_SPEC_PATHS)


class FieldNotExposed(Exception):
    """The location has no place to write this field (e.g. a chart with no values key)."""

    def __init__(self, field_path: str, detail: str = "") -> None:
        self.field_path = field_path
        self.detail = detail
        super().__init__(f"no place to set {field_path}" + (f": {detail}" if detail else ""))


def lookup(data: Any, path: Sequence[str | int], default: Any = None) -> Any:
    """Read ``path`` from nested mappings/sequences; ``default`` when any step is missing."""
    node = data
    for step in path:
        if type(node) is dict and type(step) is str:  # parsed data: no ABC check, one lookup
            node = node.get(step, _MISSING)
            if node is _MISSING:
                return default
        elif isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return default
            node = node[step]
        else:
            if not isinstance(node, Mapping) or step not in node:
                return default
            node = node[step]
    return node


_MISSING = object()


def leaves(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """The scalars under ``node`` by path (an empty mapping or list holds none: filling
    ``resources: {}`` changes the fields it gets, not ``resources`` itself)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from leaves(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*prefix, index))
    else:
        yield prefix, node


def dotted(path: Sequence[Any]) -> str:
    """A path as a person reads it: ``containers[0].securityContext.runAsUser``."""
    return ".".join(f"[{s}]" if isinstance(s, int) else str(s) for s in path).replace(".[", "[")


class ContainerView(Protocol):
    """One container (or init container) of a pod spec (read-only: views are frozen)."""

    @property
    def name(self) -> str: ...

    @property
    def init(self) -> bool: ...

    @property
    def ephemeral(self) -> bool: ...

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        """The current value under the container, e.g. ``get("securityContext", "privileged")``."""
        ...

    def path(self, *field_path: str | int) -> YamlPath:
        """Where to write ``field_path`` of this container in the edited document."""
        ...


class PodView(Protocol):
    """A pod spec: pod-level fields, containers, and what the workload around it looks like.
    Its attributes are read-only (views are frozen)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str | None: ...

    @property
    def containers(self) -> Sequence[ContainerView]: ...

    @property
    def labels(self) -> Mapping[str, str]:
        """The pod template's labels (what a NetworkPolicy selects on)."""
        ...

    @property
    def annotations(self) -> Mapping[str, str]:
        """The pod template's annotations (e.g. ``prometheus.io/port``)."""
        ...

    @property
    def selector(self) -> Mapping[str, Any] | None:
        """The workload's own ``spec.selector`` (a LabelSelector), None when it has none."""
        ...

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        """A pod-spec field, e.g. ``get("securityContext", "runAsNonRoot")``."""
        ...

    def path(self, *field_path: str | int) -> YamlPath:
        """Where to write a pod-spec field in the edited document."""
        ...

    def prerequisites(self, edits: Sequence[AnyEdit]) -> tuple[AnyEdit, ...]:
        """Extra edits a location needs for ``edits`` to take effect (e.g. a Bitnami
        ``containerSecurityContext.enabled: true`` switch). Manifests need none."""
        ...


@dataclass(frozen=True)
class ManifestContainer:
    """A container inside a manifest document."""

    name: str
    init: bool
    ephemeral: bool
    base: YamlPath
    data: Mapping[str, Any]

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        return lookup(self.data, field_path, default)

    def path(self, *field_path: str | int) -> YamlPath:
        return (*self.base, *field_path)


@dataclass(frozen=True)
class ManifestPodView:
    """The pod spec of a workload manifest (one YAML document)."""

    kind: str
    name: str
    namespace: str | None
    base: YamlPath
    spec: Mapping[str, Any]
    labels: Mapping[str, str]
    document: Mapping[str, Any] = field(repr=False)
    containers: tuple[ManifestContainer, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    selector: Mapping[str, Any] | None = None

    @classmethod
    def from_document(cls, document: Any) -> ManifestPodView | None:
        """The view of a workload document, or None when it is not a workload with a pod spec."""
        if not isinstance(document, Mapping):
            return None
        kind = document.get("kind")
        if not isinstance(kind, str) or kind not in POD_SPEC_PATHS:
            return None
        base = POD_SPEC_PATHS[kind]
        spec = lookup(document, base)
        if not isinstance(spec, Mapping):
            return None
        metadata = document.get("metadata") or {}
        template = metadata if kind == "Pod" else lookup(document, (*base[:-1], "metadata"), {})
        template = template if isinstance(template, Mapping) else {}
        labels = template.get("labels") or {}
        annotations = template.get("annotations")
        annotations = annotations if isinstance(annotations, Mapping) else {}
        selector = None if kind == "Pod" else lookup(document, ("spec", "selector"))
        containers: list[ManifestContainer] = []
        for key, init, ephemeral in (
            ("initContainers", True, False),
            ("containers", False, False),
            ("ephemeralContainers", False, True),
        ):
            items = spec.get(key) or []
            if not isinstance(items, list):
                continue
            for index, item in enumerate(items):
                if isinstance(item, Mapping):
                    containers.append(
                        ManifestContainer(
                            name=str(item.get("name", f"{key}[{index}]")),
                            init=init,
                            ephemeral=ephemeral,
                            base=(*base, key, index),
                            data=item,
                        )
                    )
        return cls(
            kind=str(kind),
            name=str(metadata.get("name", "")),
            namespace=metadata.get("namespace"),
            base=base,
            spec=spec,
            labels={str(k): str(v) for k, v in dict(labels).items()},
            document=document,
            containers=tuple(containers),
            annotations={str(k): str(v) for k, v in annotations.items()},
            selector=selector if isinstance(selector, Mapping) else None,
        )

    def get(self, *field_path: str | int, default: Any = None) -> Any:
        return lookup(self.spec, field_path, default)

    def path(self, *field_path: str | int) -> YamlPath:
        return (*self.base, *field_path)

    def prerequisites(self, edits: Sequence[AnyEdit]) -> tuple[AnyEdit, ...]:
        return ()


def target_containers(view: PodView, finding: Finding) -> Iterator[ContainerView]:
    """The containers a per-container control is about.

    The finding's container name wins; else a container index in the scanner's hints
    (``containers[2]``); else every regular and init container (ephemeral ones are never edited:
    they are not part of the declared spec).
    """
    candidates = [c for c in view.containers if not c.ephemeral]
    if finding.container:
        named = [c for c in candidates if c.name == finding.container]
        if named:
            yield from named
            return
    indexed = _containers_from_hints(view, finding)
    if indexed:
        yield from indexed
        return
    yield from candidates


def _containers_from_hints(view: PodView, finding: Finding) -> list[ContainerView]:
    import re

    chosen: list[ContainerView] = []
    pattern = re.compile(r"(initContainers|containers)\[(\d+)\]")
    regular = [c for c in view.containers if not c.init and not c.ephemeral]
    init = [c for c in view.containers if c.init]
    for hint in finding.hints:
        match = pattern.search(hint.path)
        if not match:
            continue
        pool = init if match.group(1) == "initContainers" else regular
        index = int(match.group(2))
        if index < len(pool) and pool[index] not in chosen:
            chosen.append(pool[index])
    return chosen


def label_selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Does a Kubernetes LabelSelector (matchLabels + matchExpressions) select ``labels``?
    An empty selector selects everything, as in a NetworkPolicy's ``podSelector: {}``."""
    if not isinstance(selector, Mapping):
        return selector is None or selector == {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, Mapping):
            return False
        key, op = str(expr.get("key")), expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class Pods:
    """The pods one workload runs, as a NetworkPolicy's podSelector sees them."""

    kind: str
    name: str
    namespace: str | None
    labels: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, document: Mapping[str, Any], namespace: str | None = None) -> Pods | None:
        """The pods of a workload ``document`` (None for another kind); ``namespace``: where
        it is deployed when the document names none."""
        kind = document.get("kind")
        if not isinstance(kind, str) or kind not in POD_SPEC_PATHS:
            return None
        path = POD_SPEC_PATHS[kind]
        meta = document.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        labels = lookup(document, (*path[:-1], "metadata", "labels"), {})
        labels = labels if isinstance(labels, Mapping) else {}
        return cls(
            kind,
            str(meta.get("name", "")),
            str(meta["namespace"]) if meta.get("namespace") else namespace,
            frozenset((str(k), str(v)) for k, v in labels.items()),
        )


@dataclass(frozen=True)
class ServicePorts:
    """A Service as an egress rule reaches it: the pods it selects, and the protocol and pod
    port each of its ports forwards to (``(port, protocol, targetPort)``)."""

    name: str
    namespace: str | None
    selector: tuple[tuple[str, str], ...]
    ports: tuple[tuple[int, str, int | str], ...]
    headless: bool = False
    """``clusterIP: None``: each selected pod gets a DNS name of its own (a StatefulSet's
    members address each other by it)."""
    outside: str = ""
    """How clients that are not pods reach the selected pods through it (``type
    LoadBalancer``, ``type NodePort``, ``externalIPs``); empty when only pods do."""

    @classmethod
    def of(cls, document: Mapping[str, Any], namespace: str | None = None) -> ServicePorts | None:
        """A Service ``document`` that selects pods (None otherwise); ``namespace``: where it
        is deployed when the document names none."""
        if document.get("kind") != "Service":
            return None
        meta = document.get("metadata")
        spec = document.get("spec")
        if not isinstance(meta, Mapping) or not isinstance(spec, Mapping):
            return None
        selector = spec.get("selector")
        if not isinstance(selector, Mapping) or not selector or not meta.get("name"):
            return None
        ports = []
        for entry in list_items(spec.get("ports")):
            port = entry.get("port") if isinstance(entry, Mapping) else None
            if isinstance(port, int) and not isinstance(port, bool):
                target = entry.get("targetPort", port)
                target = target if isinstance(target, int | str) else port
                ports.append((port, str(entry.get("protocol") or "TCP"), target))
        return cls(
            str(meta["name"]),
            str(meta["namespace"]) if meta.get("namespace") else namespace,
            tuple(sorted((str(k), str(v)) for k, v in selector.items())),
            tuple(ports),
            spec.get("clusterIP") == "None",
            _reached_from_outside(spec),
        )

    def selects(self, labels: Mapping[str, str], namespace: str | None) -> bool:
        """Whether the Service sends its traffic to pods labelled ``labels`` in ``namespace``."""
        return (self.namespace or "default") == (namespace or "default") and all(
            labels.get(k) == v for k, v in self.selector
        )

    def target(self, port: int) -> tuple[str, int | str] | None:
        """(protocol, pod port) the Service's ``port`` forwards to; None when it has none."""
        for own, protocol, target in self.ports:
            if own == port:
                return protocol, target
        return None


def _reached_from_outside(spec: Mapping[str, Any]) -> str:
    """How a Service ``spec`` lets clients that are not pods in (see `ServicePorts.outside`)."""
    kind = spec.get("type")
    if kind in ("LoadBalancer", "NodePort"):
        return f"type {kind}"
    if list_items(spec.get("externalIPs")):
        return "externalIPs"
    return ""


WEBHOOK_KINDS = frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"})


def api_server_calls(document: Mapping[str, Any]) -> list[tuple[str | None, str, int, str]]:
    """(namespace, Service name, Service port, who) of every Service the Kubernetes API server
    itself calls as ``document`` configures it: an admission webhook, an aggregated APIService,
    a CustomResourceDefinition's conversion webhook. The API server is not a pod: a
    NetworkPolicy admitting only pods (pod or namespace selectors) shuts it out."""
    kind, meta = document.get("kind"), document.get("metadata")
    name = meta.get("name", "") if isinstance(meta, Mapping) else ""
    configs: list[Any] = []
    if kind in WEBHOOK_KINDS:
        configs = [
            w.get("clientConfig")
            for w in list_items(document.get("webhooks"))
            if isinstance(w, Mapping)
        ]
    elif kind == "APIService":
        spec = document.get("spec")
        configs = [spec] if isinstance(spec, Mapping) else []
    elif kind == "CustomResourceDefinition":
        configs = [lookup(document, ("spec", "conversion", "webhook", "clientConfig"))]
    found = []
    for config in configs:
        service = config.get("service") if isinstance(config, Mapping) else None
        if not isinstance(service, Mapping) or not service.get("name"):
            continue
        port = service.get("port", 443)
        found.append(
            (
                str(service["namespace"]) if service.get("namespace") else None,
                str(service["name"]),
                port if isinstance(port, int) and not isinstance(port, bool) else 443,
                f"{kind} {name}",
            )
        )
    return found


def other_pods_selected(
    selector: Mapping[str, str],
    namespace: str | None,
    pods: Sequence[Pods],
    kind: str,
    name: str,
    *,
    expressions: Sequence[Any] = (),
) -> list[str]:
    """The workloads other than ``kind``/``name`` in ``namespace`` (unset: ``default``) whose
    pods a podSelector of ``selector`` (matchLabels) and ``expressions`` (its
    matchExpressions, if any) selects, as ``Kind/name``."""
    wanted = frozenset((str(k), str(v)) for k, v in selector.items())
    namespace = namespace or "default"
    matched = {"matchExpressions": list(expressions)}
    return sorted(
        {
            f"{p.kind}/{p.name}"
            for p in pods
            if (p.namespace or "default") == namespace
            and wanted <= p.labels
            and (p.kind, p.name) != (kind, name)
            and (not expressions or label_selector_matches(matched, dict(p.labels)))
        }
    )


def list_items(value: Any) -> list[Any]:
    """``value`` when it is a list (what a malformed document holds instead is no list)."""
    return value if isinstance(value, list) else []


def persistent_mounts(view: PodView, container: ContainerView) -> list[str]:
    """Where ``container`` mounts persistent storage: a PersistentVolumeClaim volume or, in a
    StatefulSet, a volumeClaimTemplate (a mount no pod volume names). Its files outlive the
    pod, owned by the user that wrote them."""
    volumes = {v.get("name"): v for v in list_items(view.get("volumes")) if isinstance(v, Mapping)}
    out = []
    for mount in list_items(container.get("volumeMounts")):
        if not isinstance(mount, Mapping):
            continue
        volume = volumes.get(mount.get("name"))
        if (volume is None and view.kind == "StatefulSet") or (
            isinstance(volume, Mapping) and "persistentVolumeClaim" in volume
        ):
            out.append(str(mount.get("mountPath")))
    return out


BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})


def bound_service_accounts(document: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """(namespace, name) of every ServiceAccount a RoleBinding or ClusterRoleBinding
    ``document`` grants API access to (a subject's namespace defaults to the binding's)."""
    if document.get("kind") not in BINDING_KINDS:
        return []
    meta = document.get("metadata")
    own = meta.get("namespace") if isinstance(meta, Mapping) else None
    subjects = document.get("subjects")
    return [
        (str(s.get("namespace") or own) if (s.get("namespace") or own) else None, str(s["name"]))
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, Mapping) and s.get("kind") == "ServiceAccount" and s.get("name")
    ]


@dataclass
class Neighbourhood:
    """What a new NetworkPolicy meets besides its own workload, gathered document by
    document: the pods of the workloads (which its selector may match too), the
    ServiceAccounts RBAC bindings grant API access to (pods that must reach the API server)
    and the Services that select pods (egress its environment may name)."""

    workloads: list[Pods] = field(default_factory=list)
    api_accounts: list[tuple[str | None, str]] = field(default_factory=list)
    services: list[ServicePorts] = field(default_factory=list)
    api_server_calls: list[tuple[str | None, str, int, str]] = field(default_factory=list)
    """(namespace, Service, port, who) the API server calls (`api_server_calls`)."""

    def add(self, document: Mapping[str, Any], namespace: str | None = None) -> None:
        """Take in one document; ``namespace``: where it is deployed when it names none."""
        pods = Pods.of(document, namespace)
        if pods is not None:
            self.workloads.append(pods)
        self.api_accounts += [
            (ns or namespace, name) for ns, name in bound_service_accounts(document)
        ]
        service = ServicePorts.of(document, namespace)
        if service is not None:
            self.services.append(service)
        self.api_server_calls += [
            (ns or namespace, name, port, who) for ns, name, port, who in api_server_calls(document)
        ]

    def copy(self) -> Neighbourhood:
        return Neighbourhood(
            list(self.workloads),
            list(self.api_accounts),
            list(self.services),
            list(self.api_server_calls),
        )

    def outside_callers(self, view: PodView) -> list[tuple[str, int | str]]:
        """(who, pod port) of each caller that is not a pod and reaches ``view``'s pods
        through a Service selecting them: the Service's own external exposure (`ServicePorts.
        outside`) and the API server calling it (`api_server_calls`)."""
        found: list[tuple[str, int | str]] = []
        for service in self.services:
            if not service.selects(view.labels, view.namespace):
                continue
            if service.outside:
                who = f"clients outside the cluster through Service {service.name}"
                found += [(f"{who} ({service.outside})", t) for _, _, t in service.ports]
            for ns, name, port, who in self.api_server_calls:
                if name != service.name or (ns or "default") != (service.namespace or "default"):
                    continue
                target = service.target(port)
                if target is not None:
                    found.append(
                        (f"the Kubernetes API server through Service {name} ({who})", target[1])
                    )
        return found


def calls_the_api(view: PodView, bound: Collection[tuple[str | None, str]]) -> str | None:
    """The pod's service account when a binding of ``bound`` gives it API access and its
    token is mounted (the pod talks to the API server), else None."""
    if view.get("automountServiceAccountToken") is False:
        return None
    account = view.get("serviceAccountName") or view.get("serviceAccount") or "default"
    namespace = view.namespace or "default"
    for ns, name in bound:
        if name == account and (ns or "default") == namespace:
            return str(account)
    return None


SCRAPE_PORT = "prometheus.io/port"


def scrape_port(view: PodView) -> int | None:
    """The port the pod template's ``prometheus.io/port`` annotation tells Prometheus to
    scrape (the convention of the common ``kubernetes-pods`` job; Istio's sidecar sets 15020),
    or None. With ``prometheus.io/scrape`` alone, Prometheus scrapes the declared ports."""
    value = str(view.annotations.get(SCRAPE_PORT, "")).strip()
    if not value.isdigit() or not 0 < int(value) < 65536:
        return None
    return int(value)


def served_ports(view: PodView, services: Sequence[ServicePorts]) -> list[dict[str, Any]]:
    """The regular containers' containerPorts, then the pod ports the repository's Services
    selecting the pod forward to that no containerPort declares, then the annotated scrape
    port (`scrape_port`), de-duplicated, in order."""
    seen: list[dict[str, Any]] = []
    names: set[str] = set()
    for container in view.containers:
        if container.init or container.ephemeral:
            continue
        for port in container.get("ports", default=[]) or []:
            if not isinstance(port, Mapping) or port.get("containerPort") is None:
                continue
            entry = {"protocol": str(port.get("protocol", "TCP")), "port": port["containerPort"]}
            names.add(str(port.get("name", "")))
            if entry not in seen:
                seen.append(entry)
    for service in services:
        if not service.selects(view.labels, view.namespace):
            continue
        for _, protocol, target in service.ports:
            entry = {"protocol": protocol, "port": target}
            if entry not in seen and not (isinstance(target, str) and target in names):
                seen.append(entry)
    scraped = scrape_port(view)
    if scraped is not None and {"protocol": "TCP", "port": scraped} not in seen:
        seen.append({"protocol": "TCP", "port": scraped})
    return seen


def reselected(spec: Mapping[str, Any], selector: Mapping[str, Any]) -> dict[str, Any]:
    """A NetworkPolicy ``spec`` selecting ``selector`` instead, in its podSelector and in each
    rule's peer that named its own pods (the old podSelector, with no namespaceSelector)."""
    own, moved = {"podSelector": spec.get("podSelector")}, {"podSelector": dict(selector)}
    out = {**spec, "podSelector": dict(selector)}
    for direction, side in (("ingress", "from"), ("egress", "to")):
        rules = out.get(direction)
        if not isinstance(rules, list):
            continue
        out[direction] = [
            {**rule, side: [moved if peer == own else peer for peer in rule[side]]}
            if isinstance(rule, Mapping) and isinstance(rule.get(side), list)
            else rule
            for rule in rules
        ]
    return out


SELECTOR_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
"""Kinds whose ``spec.selector`` is a LabelSelector Kubernetes forbids changing (a Job's is
generated per run, a ReplicationController's is a plain map)."""

VOLATILE_LABELS = frozenset(
    {
        "app.kubernetes.io/version",
        "helm.sh/chart",
        "chart",
        "version",
        "pod-template-hash",
        "controller-uid",
        "batch.kubernetes.io/controller-uid",
        "job-name",
        "batch.kubernetes.io/job-name",
    }
)
"""Pod-template label keys an upgrade (or each run of a Job) changes the value of."""

VOLATILE_SUFFIXES = ("/version", "/release")
"""Prefixed label keys naming a version too (``pipeline.tekton.dev/release: devel``)."""


def _volatile(key: str) -> bool:
    return key in VOLATILE_LABELS or key.endswith(VOLATILE_SUFFIXES)


def policy_selector(view: PodView, others: Sequence[Pods] = ()) -> dict[str, str]:
    """The labels a new NetworkPolicy selects the pod by, stable across upgrades: the
    workload's ``spec.selector.matchLabels`` (Deployment, StatefulSet, DaemonSet, ReplicaSet:
    Kubernetes forbids changing it) when it has no matchExpressions and its template carries
    every entry; else the template labels without version, chart and hash-like keys
    (`VOLATILE_LABELS`, `VOLATILE_SUFFIXES`); all of them when that leaves none. Where a
    choice would also select the pods of another workload of ``others`` (two Deployments
    sharing a selector, told apart by a ``track`` label), the next that does not; the first
    when all do. Empty only for a pod without labels."""
    labels = {str(k): str(v) for k, v in view.labels.items()}
    candidates: list[dict[str, str]] = []
    selector = view.selector
    if view.kind in SELECTOR_KINDS and isinstance(selector, Mapping):
        match = selector.get("matchLabels")
        if (
            isinstance(match, Mapping)
            and match
            and not selector.get("matchExpressions")
            and all(labels.get(str(k)) == str(v) for k, v in match.items())
        ):
            candidates.append(dict(sorted((str(k), str(v)) for k, v in match.items())))
    kept = {k: v for k, v in labels.items() if not _volatile(k)}
    candidates += [dict(sorted(kept.items())), dict(sorted(labels.items()))]
    candidates = [c for c in candidates if c] or [{}]
    for candidate in candidates:
        if not other_pods_selected(candidate, view.namespace, others, view.kind, view.name):
            return candidate
    return candidates[0]


def policies_selecting(
    policies: Sequence[Mapping[str, Any]], labels: Mapping[str, str], namespace: str | None
) -> list[str]:
    """Names of the NetworkPolicies (same namespace) whose podSelector selects ``labels``."""
    names = []
    for doc in policies:
        if not isinstance(doc, Mapping) or doc.get("kind") != "NetworkPolicy":
            continue
        meta = doc.get("metadata") or {}
        if (meta.get("namespace") or None) != (namespace or None):
            continue
        if label_selector_matches(lookup(doc, ("spec", "podSelector"), {}), labels):
            names.append(str(meta.get("name", "?")))
    return names
