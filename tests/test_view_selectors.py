from __future__ import annotations

import pytest

from fixers.view import label_selector_matches, policies_selecting, reselected

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
