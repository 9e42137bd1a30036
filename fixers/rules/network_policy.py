"""Create a NetworkPolicy that denies all traffic the pod does not declare (C-0260, C-0030;
Checkov CKV2_K8S_6 maps to C-0260): ingress to its containerPorts, egress to DNS and to the
repository's Services its environment values address (`fixers.rules._egress`). With runtime
evidence (a Kubescape NetworkNeighborhood whose learning completed, or its
GeneratedNetworkPolicy) the policy allows exactly the observed peers and ports instead
(`fixers.runtime_evidence.observed_policy`). Declined where the policy would select another
workload's pods, or cut a pod that calls the Kubernetes API off from it.

Kubernetes object: ``networking.k8s.io/v1`` NetworkPolicy
(https://kubernetes.io/docs/concepts/services-networking/network-policies/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fixers.base import Fixer
from fixers.model import AlreadyCompliant, CreateManifest, Fixed, NeedsHuman, Result, Risk
from fixers.rules._egress import named_egress
from fixers.runtime_evidence import ObservedPolicy, observed_policy
from fixers.view import PodView, calls_the_api, other_pods_selected, policies_selecting

if TYPE_CHECKING:
    from fixers.model import Finding
    from fixers.policy import FixContext


def _declared_ports(view: PodView) -> list[dict[str, Any]]:
    """The regular containers' containerPorts, de-duplicated, in declaration order."""
    seen: list[dict[str, Any]] = []
    for container in view.containers:
        if container.init or container.ephemeral:
            continue
        for port in container.get("ports", default=[]) or []:
            if not isinstance(port, Mapping) or port.get("containerPort") is None:
                continue
            entry = {"protocol": str(port.get("protocol", "TCP")), "port": port["containerPort"]}
            if entry not in seen:
                seen.append(entry)
    return seen


def _policy(view: PodView, name: str, ingress: list[Any], egress: list[Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if view.namespace:
        metadata["namespace"] = view.namespace
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": dict(sorted(view.labels.items()))},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def _from_evidence(view: PodView, observed: ObservedPolicy) -> Fixed:
    """The policy of the observed traffic, selecting the pod by its labels in the repository."""
    name = f"{view.name}-networkpolicy"
    document = _policy(
        view, name, [dict(r) for r in observed.ingress], [dict(r) for r in observed.egress]
    )
    selects = ", ".join(f"{k}={v}" for k, v in sorted(view.labels.items()))
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


class NetworkPolicy(Fixer):
    """A policy selecting the pod by its template labels, with both policy types: ingress only
    to declared containerPorts, egress only to cluster DNS."""

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
        others = other_pods_selected(
            view.labels, view.namespace, ctx.workloads, view.kind, view.name
        )
        if others:
            return NeedsHuman(
                f"a NetworkPolicy selecting this pod's labels would also select the pods of "
                f"{', '.join(others)} and cut their traffic too; give this pod a label of its "
                "own first"
            )
        observed = observed_policy(ctx.runtime) if ctx.runtime is not None else None
        if observed is not None:
            return _from_evidence(view, observed)
        account = calls_the_api(view, ctx.api_accounts)
        if account is not None:
            return NeedsHuman(
                f"service account {account} is bound to RBAC roles, so the pod calls the "
                "Kubernetes API: a policy that allows only DNS would cut it off from the API "
                "server, whose addresses (an ipBlock egress rule) the repository does not "
                "hold; write the policy with that rule by hand"
            )
        ports = _declared_ports(view)
        ingress: list[dict[str, Any]] = [{"ports": ports}] if ports else []
        dns_peer = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
        named, named_notes = named_egress(view, ctx.services)
        egress = [
            {
                "to": [dns_peer],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            },
            *named,
        ]
        name = f"{view.name}-networkpolicy"
        document = _policy(view, name, ingress, egress)
        if ports:
            opened = ", ".join(f"{p['port']}/{p['protocol']}" for p in ports)
            ingress_note = f"ingress allowed from anywhere to the declared ports {opened}"
        else:
            ingress_note = "no containerPort is declared, so all ingress is denied"
        return Fixed(
            (
                CreateManifest(
                    name=name,
                    document=document,
                    comment=(
                        f"Proposed by kube-remedy for {view.kind} {view.name}: it denies all "
                        "traffic except the declared ports"
                        + (", DNS and the Services its environment names" if named else " and DNS")
                        + ".\nAdd the egress this workload needs (databases, APIs) before "
                        "merging."
                    ),
                ),
            ),
            notes=(
                f"new NetworkPolicy {name} selects pods labelled "
                + ", ".join(f"{k}={v}" for k, v in sorted(view.labels.items())),
                ingress_note,
                *named_notes,
                (
                    "egress allowed otherwise only to kube-dns (UDP/TCP 53); add rules for the "
                    "databases, APIs and external services this workload calls that its "
                    "environment does not name, or it loses them"
                    if named
                    else "egress allowed only to kube-dns (UDP/TCP 53); add rules for the "
                    "databases, APIs and external services this workload calls, or it loses "
                    "them"
                ),
                "the policy is enforced only when the cluster's CNI supports NetworkPolicy",
                *(
                    (
                        "through a chart, a NetworkPolicy switch the chart already has is "
                        "turned on instead when it selects this pod: the chart's own policy "
                        "then decides the traffic, and the file list says what it allows",
                    )
                    if ctx.location_kind.startswith("helm")
                    else ()
                ),
            ),
            values_used=("DNS peer: k8s-app=kube-dns in kube-system (the kubeadm/EKS/GKE label)",),
        )
