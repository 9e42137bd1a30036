"""Opt-in Kyverno ClusterPolicies: valid shapes, added once per fixed control, off by default."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.errors import ConfigError
from bot.kyverno_policies import (
    IGNORES_ANNOTATION,
    guarded_controls,
    policies,
    policies_by_control,
    policy,
    policy_exception,
    policy_files,
)
from bot.locate.base import FileOverlay
from bot.plan import build_plan
from bot.repo_config import parse_repo_config
from bot.scanner_map import to_control
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef, Severity, SourceHint
from fixers.registry import fixable_controls
from tests import test_kyverno_engine as E
from tests.conftest import corpus_path
from tests.fixers._support import Case, documents, load_cases

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
        "C-0017": "require-ro-rootfs-all-containers",
        "C-0013": "require-non-root-user-and-group",
        "C-0034": "restrict-automount-sa-token",
        "C-0004": "require-memory-requests",
        "C-0050": "require-cpu-requests",
        "C-0270": "require-cpu-limits",
        "C-0271": "require-memory-limits",
        "C-0038": "disallow-host-pid-ipc",
        "C-0041": "disallow-host-network",
        "C-0044": "disallow-host-ports",
        "C-0057": "disallow-privileged-containers",
        "C-0046": "disallow-insecure-capabilities",
        "C-0055": "restrict-seccomp-strict",
        "C-0211": "require-pod-security-context",
        "C-0045": "require-read-only-host-path-mounts",
    }
    for control, name in expected.items():
        assert name in mapping[control], control


def test_off_by_default(tmp_path: Path) -> None:
    # two low-risk controls share one change set (read-only root would travel alone)
    plan = plan_with(tmp_path, "", "C-0016", "C-0055")
    [change_set] = plan.change_sets
    assert [f.path for f in change_set.files] == ["web.yaml"]


def test_option_adds_exactly_the_guarding_policies(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "kyverno_policies: true\n", "C-0016", "C-0055")
    [change_set] = plan.change_sets
    assert [f.path for f in change_set.files] == [
        "policies/disallow-privilege-escalation.yaml",
        "policies/restrict-seccomp-strict.yaml",
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
    (tmp_path / "kyverno" / "restrict-seccomp-strict.yaml").write_text("# ours\n")
    config = "kyverno_policies: true\npolicies_dir: kyverno/\n"
    plan = plan_with(tmp_path, config, "C-0016", "C-0055")
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


# --------------------------------------------------------------------------- against Kyverno


def _openapi(node: Any) -> Any:
    """A CRD's structural schema as JSON Schema: no ``x-kubernetes-*`` keys, ``nullable``
    mapped to a null type."""
    if isinstance(node, list):
        return [_openapi(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def _crd_validator(name: str, version: str) -> jsonschema.Draft7Validator:
    path = corpus_path("kyverno", "kyverno", "config", "crds", "kyverno", name)
    crd = yaml.load(
        path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return jsonschema.Draft7Validator(_openapi(found["schema"]["openAPIV3Schema"]))


def _crd_problems(document: Mapping[str, Any]) -> list[str]:
    kind, version = document["kind"], document["apiVersion"].split("/")[1]
    crd = {
        "ClusterPolicy": "kyverno.io_clusterpolicies.yaml",
        "PolicyException": "kyverno.io_policyexceptions.yaml",
    }[kind]
    errors = _crd_validator(crd, version).iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


IGNORES = (
    "kyverno_policies: true\n"
    "ignore:\n"
    "  - control: C-0017\n    resource: StatefulSet/shop/cart\n    reason: cart writes its cache\n"
    "  - control: C-0*\n    resource: Deployment//legacy\n    reason: retired next quarter\n"
)


def test_every_policy_and_exception_is_valid_for_kyverno_crds() -> None:
    config = parse_repo_config(IGNORES)
    checked = 0
    for doc in policies():
        assert _crd_problems(doc) == [], doc["metadata"]["name"]
        exception = policy_exception(config, doc["metadata"]["name"])
        if exception is not None:
            assert _crd_problems(exception) == [], exception["metadata"]["name"]
            checked += 1
    assert checked == len(policies())  # C-0* concerns every guarded control
    assert _crd_problems({**policies()[0], "spec": {"rules": "nope"}})  # the check bites


def _only_container(document: Mapping[str, Any], name: str | None) -> Mapping[str, Any]:
    """The workload with only container ``name`` (a per-container finding says nothing about
    the pod's other containers, which have findings of their own)."""
    if name is None:
        return document
    found = copy.deepcopy(dict(document))
    form = E.pod_form(found)
    assert form is not None
    spec = form[0]["spec"]
    for key in ("containers", "initContainers", "ephemeralContainers"):
        if key in spec:
            spec[key] = [c for c in spec[key] or () if c.get("name") == name]
    return found


GUARDED_CASES = [
    c
    for c in load_cases()
    # a case for Trivy's stricter reading of a control (KSV012 wants the runAsNonRoot flag
    # even for a non-root user id) is not what the control's guard checks
    if c.has("after.yaml")
    and policies_by_control().get(c.finding.control_id)
    and c.finding.scanner != "trivy"
]


@pytest.mark.parametrize("case", GUARDED_CASES, ids=[c.id for c in GUARDED_CASES])
def test_guards_flag_the_insecure_manifest_and_pass_the_fixed_one(case: Case) -> None:
    """For every fixer case with a guard: the control's policies together flag the original
    and all pass what the fix wrote (what Kyverno would report on the workload)."""
    names = policies_by_control()[case.finding.control_id]
    before = documents(case.text("before.yaml"))[case.document_index]
    after = documents(case.text("after.yaml"))[case.document_index]
    before, after = (_only_container(d, case.finding.container) for d in (before, after))
    assert E.FAIL in [E.verdict(E.evaluate(policy(n), before)) for n in names], names
    for name in names:
        assert E.verdict(E.evaluate(policy(name), after)) == E.PASS, name


def test_every_fixer_with_a_guard_has_a_case_for_it() -> None:
    guarded = {c.finding.control_id for c in GUARDED_CASES}
    fixed_somewhere = {c.finding.control_id for c in load_cases() if c.has("after.yaml")}
    assert set(policies_by_control()) & fixed_somewhere <= guarded
    assert len(GUARDED_CASES) >= 40


def test_run_as_non_root_guard_checks_the_group_the_fix_sets() -> None:
    """runAsNonRoot alone (upstream's require-run-as-nonroot passes it) is flagged: C-0013's
    fix adds runAsGroup, and the guard checks it."""
    case = next(c for c in GUARDED_CASES if c.id == "run_as_non_root/non-root-image-user-trusted")
    before = documents(case.text("before.yaml"))[0]
    results = E.evaluate(policy("require-non-root-user-and-group"), before)
    assert results == {"autogen-non-root-user": E.PASS, "autogen-non-root-group": E.FAIL}


def _upstream(name: str) -> Mapping[str, Any] | None:
    root = corpus_path("kyverno", "policies", "pod-security")
    found = list(root.glob(f"*/{name}/{name}.yaml"))
    return yaml.safe_load(found[0].read_text(encoding="utf-8")) if found else None


def _normal(value: Any) -> Any:
    """Pattern values as Kyverno compares them ("true" and true alike)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return value.replace(" ", "") if isinstance(value, str) else value


def test_a_policy_named_like_upstream_checks_what_upstream_checks() -> None:
    """Same name as a kyverno/policies pod-security policy: same validation, rule for rule;
    the others carry a name of their own and say how they differ in their description."""
    same = []
    for doc in policies():
        name = doc["metadata"]["name"]
        upstream = _upstream(name)
        if upstream is None:
            description = doc["metadata"]["annotations"]["policies.kyverno.io/description"]
            assert "upstream" in description.lower(), name
            continue
        ours = [
            _normal({k: v for k, v in r["validate"].items() if k != "message"})
            for r in doc["spec"]["rules"]
        ]
        theirs = [
            _normal(
                {k: v for k, v in r["validate"].items() if k not in ("message", "failureAction")}
            )
            for r in upstream["spec"]["rules"]
        ]
        assert ours == theirs, name
        same.append(name)
    assert sorted(same) == [
        "disallow-host-path",
        "disallow-host-ports",
        "disallow-privilege-escalation",
        "disallow-privileged-containers",
        "restrict-seccomp-strict",
    ]
    for name in ("restrict-seccomp", "require-run-as-nonroot", "disallow-capabilities"):
        assert name not in {p["metadata"]["name"] for p in policies()}


def test_reports_of_every_guard_map_back_to_a_control_it_guards() -> None:
    for doc in policies():
        name = doc["metadata"]["name"]
        assert to_control("kyverno", name) in guarded_controls(name), name


# --------------------------------------------------------------------------- ignores


CART = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: cart
  namespace: shop
spec:
  serviceName: cart
  selector:
    matchLabels: {app: cart}
  template:
    metadata:
      labels: {app: cart}
    spec:
      containers:
        - name: cart
          image: redis:7.2.4
"""


def test_ignores_become_a_policy_exception_kyverno_honours(tmp_path: Path) -> None:
    """.remedy.yaml ignores C-0017 for StatefulSet shop/cart: the guard that comes with a C-0017
    fix elsewhere exempts cart (and its Pods), and still audits every other workload."""
    plan = plan_with(tmp_path, IGNORES, "C-0017")
    [change_set] = plan.change_sets
    files = {f.path: f for f in change_set.files}
    assert sorted(files) == [
        "policies/require-ro-rootfs-all-containers-exception.yaml",
        "policies/require-ro-rootfs-all-containers.yaml",
        "web.yaml",
    ]
    guard = yaml.safe_load(files["policies/require-ro-rootfs-all-containers.yaml"].after)
    exception = yaml.safe_load(
        files["policies/require-ro-rootfs-all-containers-exception.yaml"].after
    )
    assert _crd_problems(exception) == []
    assert "cart writes its cache" in exception["metadata"]["annotations"][IGNORES_ANNOTATION]

    cart = yaml.safe_load(CART)
    pod = {**E.pod_form(cart)[0], "metadata": {"name": "cart-0", "namespace": "shop"}}  # type: ignore[index]
    other = yaml.safe_load(CART.replace("cart", "orders"))
    elsewhere = yaml.safe_load(CART.replace("namespace: shop", "namespace: staging"))
    for resource in (cart, pod, other, elsewhere):
        assert E.verdict(E.evaluate(guard, resource)) == E.FAIL  # nothing excepted: flagged
    assert E.verdict(E.evaluate(guard, cart, [exception])) == E.SKIP
    assert E.verdict(E.evaluate(guard, pod, [exception])) == E.SKIP
    assert E.verdict(E.evaluate(guard, other, [exception])) == E.FAIL
    assert E.verdict(E.evaluate(guard, elsewhere, [exception])) == E.FAIL


def test_no_exception_without_an_ignore_and_an_outdated_one_is_rewritten(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "kyverno_policies: true\n", "C-0017")
    assert not [f for f in plan.change_sets[0].files if "exception" in f.path]
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "require-ro-rootfs-all-containers.yaml").write_text("# merged\n")
    old = "policies/require-ro-rootfs-all-containers-exception.yaml"
    (tmp_path / old).write_text("# an older ignore list\n")
    plan = plan_with(tmp_path, IGNORES, "C-0017")
    (change,) = [f for f in plan.change_sets[0].files if f.path.startswith("policies/")]
    assert change.path == old and change.before == "# an older ignore list\n"
    assert yaml.safe_load(change.after)["kind"] == "PolicyException"
