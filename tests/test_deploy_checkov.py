"""The bot's own chart passes the gate it serves: real Checkov on every documented values shape
finds no failure, and every check the chart waives carries its reason."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.scanners import checkov_kubernetes, require_checkov

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "ab" * 32

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cluster-reader": {
        "clusterReader": {"enabled": True, "scanners": ["kubescape-operator", "kyverno"]}
    },
    "own-redis-url-from-secret": {"redis": {"bundled": False, "urlFromSecret": True}},
    "own-redis-url": {"redis": {"bundled": False, "url": "redis://redis.infra:6379/3"}},
    "pinned-by-digest": {"image": {"digest": DIGEST}, "redis": {"image": {"digest": DIGEST}}},
    "no-network-policy": {"networkPolicy": {"enabled": False}},
}


def _render(values: dict[str, Any]) -> str:
    spec = importlib.util.spec_from_file_location("deploy_render", ROOT / "deploy" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render(values))


@pytest.fixture(scope="module")
def checkov_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    require_checkov()
    root = tmp_path_factory.mktemp("deploy-variants")
    for name, values in VARIANTS.items():
        (root / name).mkdir()
        (root / name / "kube-remedy.yaml").write_text(_render(values))
    # One Checkov process for all variants: its start-up dominates the cost.
    runs = checkov_kubernetes(root)
    by_variant: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for run in runs:
        for outcome in ("failed_checks", "skipped_checks", "passed_checks"):
            for check in run["results"].get(outcome) or []:
                variant = (
                    Path(check["file_abs_path"]).resolve().relative_to(root.resolve()).parts[0]
                )
                by_variant[variant].append({**check, "outcome": outcome})
    return by_variant


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_chart_has_no_checkov_failure(
    checkov_runs: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    checks = checkov_runs[variant]
    assert any(c["outcome"] == "passed_checks" for c in checks), "Checkov scanned nothing"
    failed = sorted(
        f"{c['check_id']} {c['resource']}" for c in checks if c["outcome"] == "failed_checks"
    )
    assert failed == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_waiver_says_why(checkov_runs: dict[str, list[dict[str, Any]]], variant: str) -> None:
    skipped = [c for c in checkov_runs[variant] if c["outcome"] == "skipped_checks"]
    assert all(c["check_result"].get("suppress_comment", "").strip() for c in skipped)
    waived = {(c["check_id"], c["resource"].rsplit(".", 1)[-1]) for c in skipped}
    if variant == "pinned-by-digest":
        assert waived == set(), "a digest-pinned release needs no waiver"
    else:
        assert {check for check, _ in waived} == {"CKV_K8S_43"} | (
            {"CKV_K8S_38"} if variant == "cluster-reader" else set()
        )
    if variant == "cluster-reader":
        # only the worker holds a token, and only because it reads the cluster
        assert {name for check, name in waived if check == "CKV_K8S_38"} == {"kube-remedy-worker"}
