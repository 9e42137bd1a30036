"""Policy values are checked as Kubernetes accepts them: a quantity with a comment in it, a
negative one or an out-of-range user id in .remedy.yaml is a clear error naming the key, and
verification refuses a fix whose result holds an invalid quantity whatever its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.plan import build_plan
from bot.repo_config import parse_repo_config
from bot.sources.base import Report
from bot.verify import quantity_problems
from fixers.model import Finding, ResourceRef, Severity, SourceHint
from fixers.policy import Policy, ResourceDefaults
from tests.security._input_support import checkov_report, commit_all, deployment, run


@pytest.mark.parametrize(
    ("yaml_text", "key", "why"),
    [
        (
            'policy:\n  resources: {cpu_limit: "500m # x"}\n',
            "policy.resources.cpu_limit",
            "not a Kubernetes quantity",
        ),
        (
            "policy:\n  resources: {memory_request: -128Mi}\n",
            "policy.resources.memory_request",
            "negative",
        ),
        ('policy:\n  resources: {cpu_request: "0"}\n', "policy.resources.cpu_request", "zero"),
        (
            "policy:\n  namespace_resources: {batch: {memory_limit: 2 Gi}}\n",
            "policy.namespace_resources.batch.memory_limit",
            "not a Kubernetes quantity",
        ),
        ("policy:\n  run_as_user: 2147483648\n", "policy.run_as_user", "less than or equal"),
        ("policy:\n  run_as_group: 0\n", "policy.run_as_group", "greater than"),
        ("policy:\n  tmp_volume_name: Tmp Dir\n", "policy.tmp_volume_name", "volume name"),
        ("policy:\n  tmp_mount_path: ../etc\n", "policy.tmp_mount_path", "absolute mount path"),
        (
            "policy:\n  resources: {limit_to_request_ratio: 1e9}\n",
            "policy.resources.limit_to_request_ratio",
            "less than",
        ),
    ],
)
def test_invalid_policy_values_are_clear_errors(yaml_text: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_repo_config(yaml_text)
    message = str(caught.value)
    assert message.startswith(f".remedy.yaml: {key}: "), message
    assert why in message and "\n" not in message


def test_valid_quantities_are_kept_as_written() -> None:
    config = parse_repo_config(
        "policy:\n  resources: {cpu_request: 250m, memory_request: 1.5Gi, cpu_limit: '2', "
        "memory_limit: 1e9}\n  run_as_user: 2147483647\n"
    )
    r = config.policy.resources
    assert (r.cpu_request, r.memory_request, r.cpu_limit, r.memory_limit) == (
        "250m",
        "1.5Gi",
        "2",
        "1e9",
    )


def test_cli_refuses_the_comment_quantity_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "cd-config"
    (repo / "apps").mkdir(parents=True)
    (repo / "apps" / "web.yaml").write_text(deployment("web"))
    (repo / ".remedy.yaml").write_text('policy:\n  resources: {cpu_limit: "500m # x"}\n')
    commit_all(repo)
    report = checkov_report(tmp_path / "r.json", [("apps/web.yaml", "web")])
    code, out, err = run(capsys, "apply", "--report", str(report), "--repo", str(repo))
    assert code == 2
    assert "policy.resources.cpu_limit" in err and "'500m # x'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "remedy/" not in out


def test_verification_refuses_an_invalid_quantity_whatever_its_source(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(deployment("web"))
    finding = Finding(
        control_id="C-0270",
        scanner="test",
        scanner_ids=("C-0270",),
        severity=Severity.HIGH,
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace="shop", name="web"
        ),
        container="web",
        source=SourceHint(path="web.yaml"),
    )
    config = parse_repo_config("")
    # a policy that skipped validation (built in code, not read from .remedy.yaml)
    unchecked = Policy(resources=ResourceDefaults(cpu_limit="500m # x"))
    config = config.model_copy(update={"policy": unchecked})
    plan = build_plan(Report("test", "test", (finding,)), tmp_path, config)
    assert plan.change_sets == ()
    [left] = plan.unfixable
    assert left.category == "verify-failed"
    assert "'500m # x' is not a Kubernetes quantity" in left.reason
    assert "resources.limits.cpu" in left.reason


def test_quantity_problems_name_the_field() -> None:
    doc = {
        "spec": {
            "containers": [
                {"name": "a", "resources": {"limits": {"cpu": "1 core", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"memory": -1}}},
            ]
        }
    }
    assert quantity_problems(doc) == [
        "spec.containers[0].resources.limits.cpu: '1 core' is not a Kubernetes quantity "
        "(like 500m, 2, 256Mi)",
        "spec.containers[1].resources.requests.memory: -1 is negative",
    ]
