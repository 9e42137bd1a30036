from __future__ import annotations

import pytest

from fixers.view import label_selector_matches, policies_selecting

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
