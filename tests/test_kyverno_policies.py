"""Opt-in Kyverno ClusterPolicies: valid shapes, added once per fixed control, off by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.errors import ConfigError
from bot.kyverno_policies import policies, policies_by_control, policy_files
from bot.locate.base import FileOverlay
from bot.plan import build_plan
from bot.repo_config import parse_repo_config
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef, Severity, SourceHint
from fixers.registry import fixable_controls

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""


def finding(control: str, container: str | None = "web") -> Finding:
    return Finding(
        control_id=control,
        scanner_ids=(control,),
        severity=Severity.HIGH,
        resource=ResourceRef(api_version="apps/v1", kind="Deployment", name="web"),
        container=container,
        source=SourceHint(path="web.yaml"),
    )


def plan_with(tmp_path: Path, config_text: str, *controls: str):  # type: ignore[no-untyped-def]
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    report = Report(scanner="test", origin="test", findings=tuple(finding(c) for c in controls))
    return build_plan(report, tmp_path, parse_repo_config(config_text))


def test_policies_are_audit_mode_cluster_policies() -> None:
    names = set()
    for doc in policies():
        assert doc["apiVersion"] == "kyverno.io/v1"
        assert doc["kind"] == "ClusterPolicy"
        names.add(doc["metadata"]["name"])
        spec = doc["spec"]
        assert spec["validationFailureAction"] == "Audit"
        assert spec["background"] is True
        assert spec["rules"]
        for rule in spec["rules"]:
            assert rule["name"] and rule["match"]["any"][0]["resources"]["kinds"]
            validate = rule["validate"]
            assert validate["message"]
            assert {"pattern", "anyPattern", "deny"} & set(validate)
            if "deny" in validate:
                assert validate["deny"]["conditions"]
    assert len(names) == len(policies())  # unique names = unique file names


def test_every_mapped_control_has_a_fixer_and_key_controls_are_guarded() -> None:
    mapping = policies_by_control()
    assert set(mapping) <= set(fixable_controls())
    expected = {
        "C-0016": "disallow-privilege-escalation",
        "C-0017": "require-ro-rootfs",
        "C-0013": "require-run-as-nonroot",
        "C-0034": "restrict-automount-sa-token",
        "C-0004": "require-requests-limits",
        "C-0050": "require-requests-limits",
        "C-0270": "require-requests-limits",
        "C-0271": "require-requests-limits",
        "C-0038": "disallow-host-namespaces",
        "C-0041": "disallow-host-namespaces",
        "C-0044": "disallow-host-ports",
        "C-0057": "disallow-privileged-containers",
        "C-0046": "disallow-capabilities",
        "C-0055": "restrict-seccomp",
        "C-0211": "require-pod-security-context",
    }
    for control, name in expected.items():
        assert name in mapping[control], control


def test_off_by_default(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "", "C-0016", "C-0017")
    [change_set] = plan.change_sets
    assert [f.path for f in change_set.files] == ["web.yaml"]


def test_option_adds_exactly_the_guarding_policies(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "kyverno_policies: true\n", "C-0016", "C-0017")
    [change_set] = plan.change_sets
    assert [f.path for f in change_set.files] == [
        "policies/disallow-privilege-escalation.yaml",
        "policies/require-ro-rootfs.yaml",
        "web.yaml",
    ]
    for change in change_set.files[:2]:
        assert change.is_new
        assert change.after.startswith("# Added by kube-remedy")
        doc = yaml.safe_load(change.after)
        name = Path(change.path).stem
        # the written file is the shipped policy, value for value
        assert doc == next(p for p in policies() if p["metadata"]["name"] == name)


def test_policies_dir_and_existing_files_are_respected(tmp_path: Path) -> None:
    (tmp_path / "kyverno").mkdir()
    (tmp_path / "kyverno" / "require-ro-rootfs.yaml").write_text("# ours\n")
    config = "kyverno_policies: true\npolicies_dir: kyverno/\n"
    plan = plan_with(tmp_path, config, "C-0016", "C-0017")
    [change_set] = plan.change_sets
    assert [f.path for f in change_set.files] == [
        "kyverno/disallow-privilege-escalation.yaml",
        "web.yaml",
    ]


def test_policies_dir_must_stay_inside_the_repository(tmp_path: Path) -> None:
    config = parse_repo_config("kyverno_policies: true\npolicies_dir: ../elsewhere\n")
    plan = plan_with(tmp_path, "", "C-0016")
    with pytest.raises(ConfigError, match="must stay inside cd-config"):
        policy_files(config, plan.change_sets[0].fixes, FileOverlay(tmp_path))
