"""Create a NetworkPolicy for a pod no policy selects (C-0260, C-0030; Checkov CKV2_K8S_6 maps
to C-0260). Ingress is allowed to the ports the pod serves (its containerPorts, the ports
the repository's Services forward to it and the port its ``prometheus.io/port`` annotation
has Prometheus scrape) and, when its pods talk to each other
(`fixers.rules._peers`), among them on any port.

Egress is restricted only where evidence says what the pod calls: a Kubescape
NetworkNeighborhood whose learning completed, or its GeneratedNetworkPolicy, gives exactly the
observed peers and ports (`fixers.runtime_evidence.observed_policy`); environment values that
address only the repository's Services give DNS plus those Services (`fixers.rules._egress`).
Without such evidence the policy has ``policyTypes: [Ingress]`` and egress stays open: a
DNS-only guess cuts the workload off from its databases and peers, which is worse than no
fix. Kubescape (C-0260, C-0030: a policy of either type selecting the pod) and Checkov
(CKV2_K8S_6: a policy selecting the pod) count either as fixed. Declined where the policy
would select another workload's pods.

Kubernetes object: ``networking.k8s.io/v1`` NetworkPolicy
(https://kubernetes.io/docs/concepts/services-networking/network-policies/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, CreateManifest, Fixed, NeedsHuman, Result, Risk
from fixers.rules._egress import named_egress, unnamed_addresses
from fixers.rules._peers import peers_why
from fixers.runtime_evidence import ObservedPolicy, observed_policy
from fixers.view import (
    SCRAPE_PORT,
    PodView,
    calls_the_api,
    other_pods_selected,
    policies_selecting,
    policy_selector,
    scrape_port,
    served_ports,
)

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext

_DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def _policy(
    view: PodView,
    selector: dict[str, str],
    name: str,
    ingress: list[Any],
    egress: list[Any] | None,
) -> dict[str, Any]:
    """The policy selecting the pod by ``selector`` (`policy_selector`); ``egress`` None:
    egress not restricted."""
    metadata: dict[str, Any] = {"name": name}
    if view.namespace:
        metadata["namespace"] = view.namespace
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": selector},
        "policyTypes": ["Ingress"] if egress is None else ["Ingress", "Egress"],
        "ingress": ingress,
    }
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": spec,
    }


def _from_evidence(view: PodView, selector: dict[str, str], observed: ObservedPolicy) -> Fixed:
    """The policy of the observed traffic, selecting the pod by its labels in the repository."""
    name = f"{view.name}-networkpolicy"
    document = _policy(
        view,
        selector,
        name,
        [dict(r) for r in observed.ingress],
        [dict(r) for r in observed.egress],
    )
    selects = ", ".join(f"{k}={v}" for k, v in selector.items())
    return Fixed(
        (
            CreateManifest(
                name=name,
                document=document,
                comment=(
                    f"Proposed by kube-remedy for {view.kind} {view.name} from the traffic "
                    "Kubescape observed while it learned.\nTraffic that did not happen then "
                    "(monthly jobs, fail-over) is denied: add it before merging."
                ),
            ),
        ),
        notes=(
            f"new NetworkPolicy {name} selects pods labelled {selects}",
            *observed.notes,
            "traffic not seen while Kubescape learned (rare jobs, fail-over paths) is denied",
            "the policy is enforced only when the cluster's CNI supports NetworkPolicy",
        ),
        values_used=observed.values_used,
    )


def _egress_open_why(view: PodView, ctx: FixContext, named: list[Any]) -> str | None:
    """Why the pod's egress cannot be restricted from what the repository says (None: its
    environment names every place it calls, all Services of the repository)."""
    if not named:
        return (
            "nothing in the repository says what it calls (no Kubescape NetworkNeighborhood "
            "evidence, no environment value addressing a Service of the repository)"
        )
    unnamed = unnamed_addresses(view, ctx.services)
    if unnamed:
        return (
            f"its environment also addresses {', '.join(unnamed[:5])}, which no Service of "
            "the repository serves"
        )
    account = calls_the_api(view, ctx.api_accounts)
    if account is not None:
        return (
            f"service account {account} is bound to RBAC roles, so it calls the Kubernetes "
            "API, whose addresses the repository does not hold"
        )
    return None


class NetworkPolicy(Fixer):
    """A policy selecting the pod by its stable labels: ingress to the ports it serves (and
    among its own pods when they talk to each other); egress restricted only from evidence."""

    controls = ("C-0260", "C-0030")
    risk = Risk.HIGH
    family = "network-policy"
    reads_network_policies = True

    def plan(self, view: PodView, finding: Finding, ctx: FixContext) -> Result:
        existing = policies_selecting(ctx.network_policies, view.labels, view.namespace)
        if existing:
            return AlreadyCompliant(f"NetworkPolicy {', '.join(existing)} selects this pod")
        if not view.labels:
            return NeedsHuman(
                "the pod template has no labels, so no NetworkPolicy can select it; "
                "add labels first"
            )
        if view.get("hostNetwork") is True:
            return NeedsHuman(
                "the pod uses hostNetwork, which NetworkPolicies do not apply to; fix C-0041 first"
            )
        selector = policy_selector(view, ctx.workloads)
        others = other_pods_selected(selector, view.namespace, ctx.workloads, view.kind, view.name)
        if others:
            return NeedsHuman(
                f"a NetworkPolicy selecting this pod's stable labels would also select the pods of "
                f"{', '.join(others)} and cut their traffic too; give this pod a label of its "
                "own first"
            )
        observed = observed_policy(ctx.runtime) if ctx.runtime is not None else None
        if observed is not None:
            return _from_evidence(view, selector, observed)
        return _from_repository(view, selector, ctx)


def _from_repository(view: PodView, selector: dict[str, str], ctx: FixContext) -> Fixed:
    """The policy of what the repository says: served ports, peers, named Services."""
    name = f"{view.name}-networkpolicy"
    own = {"podSelector": {"matchLabels": selector}}
    ports = served_ports(view, ctx.services)
    peers = peers_why(view, ctx.services)
    ingress: list[dict[str, Any]] = [{"ports": ports}] if ports else []
    notes = [
        f"new NetworkPolicy {name} selects pods labelled "
        + ", ".join(f"{k}={v}" for k, v in selector.items()),
        (
            "ingress allowed from any pod or address to the ports it serves "
            + ", ".join(f"{p['port']}/{p['protocol']}" for p in ports)
            if ports
            else "it declares no containerPort and no Service forwards to it: ingress from "
            "other pods is denied"
        ),
    ]
    scraped = scrape_port(view)
    if scraped is not None:
        notes.append(
            f"port {scraped}/TCP is open because the pod template's {SCRAPE_PORT} annotation "
            "has Prometheus scrape it there"
        )
    if peers:
        ingress.append({"from": [own]})
        notes.append(f"its own pods may reach each other on any port: {peers}")
    named, named_notes = named_egress(view, ctx.services)
    open_why = _egress_open_why(view, ctx, named)
    egress = None if open_why else [_DNS_RULE, *named, *([{"to": [own]}] if peers else [])]
    if open_why:
        notes.append(
            f"egress is not restricted (policyTypes: Ingress only): {open_why}; a guess "
            "would cut the workload off from its databases and peers. Restrict it once its "
            "traffic is known (Kubescape's NetworkNeighborhood gives it)"
        )
        said = "egress is left open: the repository does not say all it calls"
    else:
        notes += named_notes
        notes.append(
            "egress allowed otherwise only to kube-dns (UDP/TCP 53)"
            + (" and its own pods" if peers else "")
            + ": add rules for what it calls that its environment does not name, or it loses "
            "them"
        )
        said = "egress only to DNS and the Services its environment names"
    notes.append("the policy is enforced only when the cluster's CNI supports NetworkPolicy")
    comment = (
        f"Proposed by kube-remedy for {view.kind} {view.name}: "
        + ("ingress only to the ports it serves" if ports else "no ingress (it serves no port)")
        + (", and among its own pods" if peers else "")
        + f"; {said}."
    )
    return Fixed(
        (
            CreateManifest(
                name=name, document=_policy(view, selector, name, ingress, egress), comment=comment
            ),
        ),
        notes=tuple(notes),
        values_used=(
            ()
            if open_why
            else ("DNS peer: k8s-app=kube-dns in kube-system (the kubeadm/EKS/GKE label)",)
        ),
    )
