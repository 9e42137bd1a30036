"""The bot's own Helm chart: hardened, rendered manifests up to date, and compliant under the
bot's own fixers (dogfooding: every fixer answers AlreadyCompliant on every workload)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from fixers.model import AlreadyCompliant, Finding, ResourceRef
from fixers.policy import FixContext
from fixers.registry import all_fixers, run_fixer
from fixers.view import ManifestPodView

ROOT = Path(__file__).resolve().parent.parent
RENDERED = ROOT / "deploy" / "manifests" / "kube-remedy.yaml"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_render", ROOT / "deploy" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RENDERED.read_text()) if d]


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def workloads(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] in WORKLOAD_KINDS]


def test_committed_render_equals_a_fresh_render() -> None:
    fresh = _render_module().render()
    assert RENDERED.read_text() == fresh, "run: .venv/bin/python deploy/render.py"


def test_chart_renders_worker_beat_web_service_and_policies(
    documents: list[dict[str, Any]],
) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert {
        ("Deployment", "kube-remedy-worker"),
        ("Deployment", "kube-remedy-beat"),
        ("Deployment", "kube-remedy-web"),
        ("Service", "kube-remedy-web"),
        ("ServiceAccount", "kube-remedy"),
        ("ConfigMap", "kube-remedy"),
        ("NetworkPolicy", "kube-remedy-default-deny"),
    } <= names
    assert all(d["metadata"]["namespace"] == "kube-remedy" for d in documents)
    beat = next(d for d in documents if d["metadata"]["name"] == "kube-remedy-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("component", ["worker", "beat", "web"])
def test_pods_are_hardened(documents: list[dict[str, Any]], component: str) -> None:
    deployment = next(d for d in documents if d["metadata"]["name"] == f"kube-remedy-{component}")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/tmp"] == "tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert volumes["secrets"]["secret"]["secretName"] == "kube-remedy"
    assert container["args"][0] == {"worker": "worker", "beat": "beat", "web": "serve"}[component]
    assert not container["image"].endswith(":latest")
    env = {e["name"]: e for e in container["env"]}
    assert env["REMEDY_GITLAB_TOKEN_FILE"]["value"].startswith("/var/run/secrets/kube-remedy/")
    assert "REMEDY_GITLAB_TOKEN" not in env


def test_service_account_does_not_mount_a_token(documents: list[dict[str, Any]]) -> None:
    (account,) = by_kind(documents, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_network_policies_deny_by_default_and_open_redis_gitlab_dns_web(
    documents: list[dict[str, Any]],
) -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in by_kind(documents, "NetworkPolicy")}
    deny = policies["kube-remedy-default-deny"]
    assert (
        deny["policyTypes"] == ["Ingress", "Egress"]
        and "ingress" not in deny
        and "egress" not in deny
    )
    egress_ports = {
        (p["protocol"], p["port"])
        for rule in policies["kube-remedy-egress"]["egress"]
        for p in rule["ports"]
    }
    assert {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 443)} <= egress_ports
    redis = policies["kube-remedy-redis-ingress"]
    assert redis["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    assert redis["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    web = policies["kube-remedy-web-ingress"]
    assert web["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    assert web["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_config_map_holds_settings_the_bot_accepts(
    documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    from bot.settings import load_settings

    (config_map,) = by_kind(documents, "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    settings = load_settings(path)
    assert settings.projects[0].id == "platform/cd-config"


def test_values_override_renders(tmp_path: Path) -> None:
    text = _render_module().render(
        {"networkPolicy": {"enabled": False}, "worker": {"replicas": 5}, "image": {"tag": "1.2.3"}}
    )
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert not by_kind(docs, "NetworkPolicy")
    worker = next(d for d in docs if d["metadata"]["name"] == "kube-remedy-worker")
    assert worker["spec"]["replicas"] == 5
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.2.3")


OWNERS_CHOICE = {"C-9004", "C-0207"}
"""Not applied to the bot's own chart: it pins a version tag with IfNotPresent (C-9004, pull
always) and reads the Redis URL from a Secret into the environment (C-0207); both are listed
as findings for its users' repositories, not defects of the chart."""


def test_the_chart_passes_every_fixer_of_kube_remedy(documents: list[dict[str, Any]]) -> None:
    fixers = [f for f in all_fixers() if f.scope == "workload"]
    assert fixers, "no fixers registered"
    ctx = FixContext(network_policies=tuple(by_kind(documents, "NetworkPolicy")))
    failures: list[str] = []
    for document in workloads(documents):
        view = ManifestPodView.from_document(document)
        assert view is not None, document["metadata"]["name"]
        meta = document["metadata"]
        resource = ResourceRef(
            api_version=document["apiVersion"],
            kind=document["kind"],
            namespace=meta.get("namespace"),
            name=meta["name"],
        )
        for fixer in fixers:
            for control in fixer.controls:
                if control in OWNERS_CHOICE:
                    continue
                finding = Finding(control_id=control, resource=resource)
                result = run_fixer(fixer, view, finding, ctx)
                if not isinstance(result, AlreadyCompliant):
                    failures.append(f"{resource} {control} ({fixer.name}): {result}")
    assert not failures, "\n".join(failures)


def test_helm_lint_strict_finds_no_warning() -> None:
    import helm_python

    report = helm_python.lint(ROOT / "deploy" / "kube-remedy", strict=True, namespace="kube-remedy")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_cluster_reader_grants_only_reading_scan_results() -> None:
    from bot.sources import sources

    docs = [d for d in yaml.safe_load_all(_render_module().render()) if d]
    assert not by_kind(docs, "ClusterRole")  # off by default

    readable = {s.format: s.cluster_resources for s in sources() if s.cluster_resources}
    values = {"clusterReader": {"enabled": True, "scanners": sorted(readable)}}
    docs = [d for d in yaml.safe_load_all(_render_module().render(values)) if d]
    (role,) = by_kind(docs, "ClusterRole")
    granted = {
        (group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert all(rule["verbs"] == ["get", "list"] for rule in role["rules"])
    # exactly what the sources list (the summaries: for kubectl exports of the same results)
    needed = {(r.group, r.plural) for resources in readable.values() for r in resources}
    assert needed <= granted
    assert granted - needed == {(GROUP_KUBESCAPE, "workloadconfigurationscansummaries")}

    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kube-remedy", "namespace": "kube-remedy"}
    ]
    tokens = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["automountServiceAccountToken"]
        for d in by_kind(docs, "Deployment")
    }
    # only the worker reads the cluster; web and beat never get a token
    assert tokens == {
        "kube-remedy-worker": True,
        "kube-remedy-web": False,
        "kube-remedy-beat": False,
        "kube-remedy-redis": False,
    }
    policy = next(d for d in docs if d["metadata"]["name"] == "kube-remedy-worker-apiserver")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert {p["port"] for p in policy["spec"]["egress"][0]["ports"]} == {443, 6443}

    from bot.sources.runtime import RESOURCES

    values = {"clusterReader": {"enabled": True, "scanners": ["runtime-evidence"]}}
    (role,) = by_kind(
        [d for d in yaml.safe_load_all(_render_module().render(values)) if d], "ClusterRole"
    )
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert granted == {(r.group, r.plural) for r in RESOURCES}  # what the evidence reader lists
    assert all(rule["verbs"] == ["get", "list"] for rule in role["rules"])

    default = _render_module().render({"clusterReader": {"enabled": True}})
    (role,) = by_kind([d for d in yaml.safe_load_all(default) if d], "ClusterRole")
    assert [r["apiGroups"] for r in role["rules"]] == [[GROUP_KUBESCAPE]]


GROUP_KUBESCAPE = "spdx.softwarecomposition.kubescape.io"
