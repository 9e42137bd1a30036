from __future__ import annotations

import pytest

from fixers.view import (
    ManifestPodView,
    Pods,
    label_selector_matches,
    policies_selecting,
    policy_selector,
    reselected,
)

LABELS = {"app": "web", "tier": "front"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        (None, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "api"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "x", "operator": "Exists"}],
            },
            False,
        ),
    ],
)
def test_label_selector(selector: object, expected: bool) -> None:
    assert label_selector_matches(selector, LABELS) is expected


def test_policies_selecting_respects_namespace() -> None:
    policy = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "shop"},
        "spec": {"podSelector": {}},
    }
    assert policies_selecting([policy], LABELS, "shop") == ["deny"]
    assert policies_selecting([policy], LABELS, "payments") == []
    assert policies_selecting([{"kind": "Service", "metadata": {}}], LABELS, "shop") == []


def test_reselected_moves_the_rules_naming_the_pods_own_pods() -> None:
    """A policy written for the template's labels, moved to the controller's selector: the
    peers that were its own pods follow; other peers stay."""
    own = {"matchLabels": {"app": "ring", "helm.sh/chart": "ring-1.0.0"}}
    other = {"podSelector": {"matchLabels": {"app": "client"}}}
    spec = {
        "podSelector": own,
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"ports": [{"port": 9042}]}, {"from": [{"podSelector": own}, other]}],
        "egress": [{"to": [{"podSelector": own}]}, {"to": [{"podSelector": own, "x": 1}]}],
    }
    selector = {"matchLabels": {"app": "ring"}}
    moved = reselected(spec, selector)
    assert moved["podSelector"] == selector
    assert moved["ingress"] == [
        {"ports": [{"port": 9042}]},
        {"from": [{"podSelector": selector}, other]},
    ]
    assert moved["egress"][0] == {"to": [{"podSelector": selector}]}
    assert moved["egress"][1] == {"to": [{"podSelector": own, "x": 1}]}
    assert spec["podSelector"] == own, "the spec given is not changed"


TEMPLATE = {
    "app.kubernetes.io/name": "etcd",
    "app.kubernetes.io/version": "3.5.16",
    "helm.sh/chart": "etcd-12.0.20",
    "pipeline.tekton.dev/release": "devel",
}


def _workload(kind: str, selector: object) -> ManifestPodView:
    spec: dict[str, object] = {"template": {"metadata": {"labels": TEMPLATE}, "spec": {}}}
    if selector is not None:
        spec["selector"] = selector
    view = ManifestPodView.from_document({"kind": kind, "metadata": {"name": "x"}, "spec": spec})
    assert view is not None
    return view


@pytest.mark.parametrize(
    ("kind", "selector", "expected"),
    [
        # the controller's selector, which Kubernetes forbids changing
        (
            "StatefulSet",
            {"matchLabels": {"app.kubernetes.io/name": "etcd"}},
            {"app.kubernetes.io/name": "etcd"},
        ),
        # a selector entry the template does not carry: not trusted
        (
            "Deployment",
            {"matchLabels": {"app": "etcd"}},
            {"app.kubernetes.io/name": "etcd"},
        ),
        # matchExpressions cannot be copied into matchLabels
        (
            "Deployment",
            {
                "matchLabels": {"app.kubernetes.io/name": "etcd"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            },
            {"app.kubernetes.io/name": "etcd"},
        ),
        # a Job's selector is generated per run: version-like labels are dropped instead
        (
            "Job",
            {"matchLabels": {"helm.sh/chart": "etcd-12.0.20"}},
            {"app.kubernetes.io/name": "etcd"},
        ),
    ],
)
def test_policy_selector_prefers_stable_labels(
    kind: str, selector: object, expected: dict[str, str]
) -> None:
    assert policy_selector(_workload(kind, selector)) == expected


def test_policy_selector_keeps_every_label_rather_than_none() -> None:
    view = ManifestPodView.from_document(
        {"kind": "Pod", "metadata": {"name": "p", "labels": {"version": "v2"}}, "spec": {}}
    )
    assert view is not None
    assert policy_selector(view) == {"version": "v2"}


def test_policy_selector_passes_over_a_selector_another_workload_shares() -> None:
    """A canary Deployment sharing ``web``'s selector: the template's own labels tell it apart."""
    view = ManifestPodView.from_document(
        {
            "kind": "Deployment",
            "metadata": {"name": "web-canary", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "track": "canary"}},
                    "spec": {},
                },
            },
        }
    )
    assert view is not None
    web = Pods("Deployment", "web", "shop", frozenset({("app", "web")}))
    assert policy_selector(view) == {"app": "web"}
    assert policy_selector(view, [web]) == {"app": "web", "track": "canary"}
