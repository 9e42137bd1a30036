"""A synthetic cd-config and a Kubescape report about it, for benchmarks.

`build_cd_config(root)` writes ``root/cd-config/`` (a GitOps repository of plain workload
manifests: Deployment, StatefulSet, DaemonSet, CronJob, Job and Pod, 1-4 containers, comments,
multi-document files, both block-sequence styles) and ``root/kubescape-report.json`` (Kubescape's
v2 JSON results format, as `kubescape scan --format json` writes for a directory of files).

Every failed control in the report is true of the manifest it names: the generator first decides
which controls a workload fails, then writes a manifest that fails exactly those. Output is a
pure function of the arguments (same seed, same bytes).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPORT_NAME = "kubescape-report.json"
REPO_NAME = "cd-config"

CONTROLS: Mapping[str, str] = {
    "C-0016": "Allow privilege escalation",
    "C-0017": "Immutable container filesystem",
    "C-0013": "Non-root containers",
    "C-0034": "Automatic mapping of service account",
    "C-0046": "Insecure capabilities",
    "C-0055": "Linux hardening",
    "C-0004": "Resources memory limit and request",
    "C-0009": "Resource limits",
    "C-0050": "Resources CPU limit and request",
    "C-0057": "Privileged container",
}
RULES: Mapping[str, str] = {
    "C-0016": "rule-allow-privilege-escalation",
    "C-0017": "immutable-container-filesystem",
    "C-0013": "non-root-containers",
    "C-0034": "automount-service-account",
    "C-0046": "insecure-capabilities",
    "C-0055": "linux-hardening",
    "C-0004": "resources-memory-limit-and-request",
    "C-0009": "resource-policies",
    "C-0050": "resources-cpu-limit-and-request",
    "C-0057": "rule-privileged-container",
}
SCORE_FACTOR = {
    "C-0016": 7, "C-0017": 7, "C-0013": 6, "C-0034": 6, "C-0046": 7,
    "C-0055": 4, "C-0004": 8, "C-0009": 7, "C-0050": 8, "C-0057": 8,
}  # fmt: skip

# Independent knobs of a workload; C-0009 fails when either limit knob does.
_KNOBS = ("C-0016", "C-0017", "C-0013", "C-0034", "C-0046", "C-0055", "C-0057", "C-0004", "C-0050")
_KINDS = (
    "Deployment",
    "Deployment",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "CronJob",
    "Job",
    "Pod",
)
_API = {
    "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
    "CronJob": "batch/v1", "Job": "batch/v1", "Pod": "v1",
}  # fmt: skip
_POD_SPEC = {
    "Pod": "spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}
_WORDS = (
    "api", "web", "worker", "billing", "search", "auth", "cart", "report", "mailer", "ingest",
    "gateway", "ledger", "notify", "thumbs", "export", "sync", "audit", "cache", "queue", "admin",
)  # fmt: skip
_TEAMS = ("payments", "platform", "growth", "data", "identity", "storefront", "ops", "ml")
_IMAGES = ("nginx:1.25.3", "python:3.11-slim", "redis:7.2", "node:20-alpine", "golang:1.22")


def _pod_spec_path(kind: str) -> str:
    return _POD_SPEC.get(kind, "spec.template.spec")


def _choose_failures(rng: random.Random, n_workloads: int, n_findings: int) -> list[set[str]]:
    """Exactly ``n_findings`` failed (workload, control) pairs, spread at random."""
    if n_findings > n_workloads * len(CONTROLS):
        raise ValueError(
            f"n_findings={n_findings} exceeds {len(CONTROLS)} controls x {n_workloads} manifests"
        )
    pairs = [(w, knob) for w in range(n_workloads) for knob in _KNOBS]
    rng.shuffle(pairs)
    failing: list[set[str]] = [set() for _ in range(n_workloads)]
    count = 0
    deferred: list[tuple[int, str]] = []
    for w, knob in pairs:
        if count == n_findings:
            break
        cost = 1
        if knob in ("C-0004", "C-0050") and "C-0009" not in failing[w]:
            cost = 2
        if count + cost > n_findings:
            deferred.append((w, knob))
            continue
        failing[w].add(knob)
        if cost == 2:
            failing[w].add("C-0009")
        count += cost
    for w, knob in deferred:  # an odd remainder: a limit knob whose C-0009 already counts
        if count == n_findings:
            break
        if knob in ("C-0004", "C-0050") and "C-0009" in failing[w] and knob not in failing[w]:
            failing[w].add(knob)
            count += 1
    if count != n_findings:  # only when nearly every pair must fail: fill C-0009 pairs
        for w in range(n_workloads):
            for knob in ("C-0004", "C-0050"):
                if count < n_findings and knob not in failing[w]:
                    failing[w].add(knob)
                    count += 1 + ("C-0009" not in failing[w])
                    failing[w].add("C-0009")
    return failing


def _container(rng: random.Random, name: str, fails: set[str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": rng.choice(_IMAGES),
    }
    if rng.random() < 0.5:
        container["ports"] = [{"containerPort": rng.choice((80, 8080, 9090, 3000))}]
    if rng.random() < 0.4:
        container["env"] = [
            {"name": "LOG_LEVEL", "value": rng.choice(("info", "debug"))},
            {"name": "PORT", "value": "8080"},
        ]
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    limits: dict[str, Any] = {}
    if "C-0050" not in fails:
        limits["cpu"] = "500m"
    if "C-0004" not in fails:
        limits["memory"] = "256Mi"
    if limits:
        resources["limits"] = limits
    container["resources"] = resources
    sc: dict[str, Any] = {}
    if "C-0016" not in fails:
        sc["allowPrivilegeEscalation"] = False
    if "C-0017" not in fails:
        sc["readOnlyRootFilesystem"] = True
    if "C-0013" not in fails:
        sc["runAsNonRoot"] = True
        sc["runAsUser"] = 10001
    if "C-0057" in fails:
        sc["privileged"] = True
    caps: dict[str, Any] = {}
    if "C-0046" in fails:
        caps["add"] = [rng.choice(("NET_ADMIN", "SYS_ADMIN"))]
    if "C-0055" not in fails:
        caps["drop"] = ["ALL"]
        sc["seccompProfile"] = {"type": "RuntimeDefault"}
    if caps:
        sc["capabilities"] = caps
    if sc:
        container["securityContext"] = sc
    return container


def _workload(
    rng: random.Random, kind: str, name: str, namespace: str, fails: set[str]
) -> dict[str, Any]:
    n_containers = rng.choice((1, 1, 1, 2, 2, 3, 4))
    names = [name, "sidecar", "metrics", "proxy"][:n_containers]
    labels = {"app": name}
    pod_spec: dict[str, Any] = {}
    if "C-0034" not in fails:
        pod_spec["automountServiceAccountToken"] = False
    if rng.random() < 0.3:
        pod_spec["serviceAccountName"] = name
    pod_spec["containers"] = [_container(rng, c, fails) for c in names]
    if rng.random() < 0.2:
        pod_spec["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    if kind in ("Job", "CronJob"):
        pod_spec["restartPolicy"] = "OnFailure"
    template = {"metadata": {"labels": labels}, "spec": pod_spec}
    spec: dict[str, Any]
    if kind == "Pod":
        spec = pod_spec
    elif kind == "CronJob":
        spec = {
            "schedule": f"{rng.randrange(60)} * * * *",
            "jobTemplate": {"spec": {"template": template}},
        }
    elif kind == "Job":
        spec = {"backoffLimit": 2, "template": template}
    else:
        spec = {"selector": {"matchLabels": labels}, "template": template}
        if kind != "DaemonSet":
            spec = {"replicas": rng.choice((1, 2, 3)), **spec}
        if kind == "StatefulSet":
            spec["serviceName"] = name
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if kind == "Pod":
        metadata["labels"] = labels
    return {"apiVersion": _API[kind], "kind": kind, "metadata": metadata, "spec": spec}


# ---- a small emitter with the styles real repositories mix (block style, 2-space mappings)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if (
        value == ""
        or value in ("true", "false", "null", "yes", "no", "on", "off")
        or (value[0] in "*&!|>%@`'\"{[#-?:,]" or ": " in value or " #" in value or value.isdigit())
    ):
        return json.dumps(value)
    return value


def _emit(value: Any, col: int, seq_indent: int, out: list[str]) -> None:
    pad = " " * col
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict) and v:
                out.append(f"{pad}{k}:")
                _emit(v, col + 2, seq_indent, out)
            elif isinstance(v, list) and v:
                out.append(f"{pad}{k}:")
                _emit(v, col + seq_indent, seq_indent, out)
            elif isinstance(v, dict):
                out.append(f"{pad}{k}: {{}}")
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
        return
    for item in value:
        if isinstance(item, dict | list) and item:
            sub: list[str] = []
            _emit(item, col + 2, seq_indent, sub)
            sub[0] = f"{pad}- {sub[0][col + 2 :]}"
            out += sub
        else:
            out.append(f"{pad}- {_scalar(item)}")


def _document(rng: random.Random, obj: dict[str, Any], seq_indent: int) -> str:
    lines: list[str] = []
    _emit(obj, 0, seq_indent, lines)
    decorated: list[str] = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("containers:") and rng.random() < 0.5:
            decorated.append(f"{indent}# containers are built by the team's CI pipeline")
        if stripped.startswith("resources:") and rng.random() < 0.3:
            decorated.append(f"{indent}# sized from last quarter's dashboards")
        if stripped.startswith(("image:", "- image:")) and rng.random() < 0.4:
            line += "  # pinned by renovate"
        decorated.append(line)
        if stripped.startswith("replicas:") and rng.random() < 0.3:
            decorated.append("")
            decorated.append(f"{indent}# rollout:")
            decorated.append(f"{indent}#   maxSurge: 1")
    return "\n".join(decorated) + "\n"


def _service(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def _paths(control: str, pod: str, containers: list[str]) -> list[dict[str, Any]]:
    """The rule paths Kubescape reports for a failed control (one per container where it
    is per container), in the shapes of Kubescape's own rule tests."""
    if control == "C-0034":
        return [{"fixPath": {"path": f"{pod}.automountServiceAccountToken", "value": "false"}}]
    out: list[dict[str, Any]] = []
    for i, _name in enumerate(containers):
        c = f"{pod}.containers[{i}]"
        if control == "C-0016":
            out.append(
                {
                    "fixPath": {
                        "path": f"{c}.securityContext.allowPrivilegeEscalation",
                        "value": "false",
                    }
                }
            )
        elif control == "C-0017":
            out.append(
                {
                    "fixPath": {
                        "path": f"{c}.securityContext.readOnlyRootFilesystem",
                        "value": "true",
                    }
                }
            )
        elif control == "C-0013":
            out.append({"fixPath": {"path": f"{c}.securityContext.runAsNonRoot", "value": "true"}})
        elif control == "C-0046":
            out.append({"failedPath": f"{c}.securityContext.capabilities.add[0]"})
        elif control == "C-0055":
            out.append(
                {"fixPath": {"path": f"{c}.securityContext.seccompProfile", "value": "YOUR_VALUE"}}
            )
        elif control == "C-0004":
            out.append({"fixPath": {"path": f"{c}.resources.limits.memory", "value": "YOUR_VALUE"}})
        elif control == "C-0050":
            out.append({"fixPath": {"path": f"{c}.resources.limits.cpu", "value": "YOUR_VALUE"}})
        elif control == "C-0009":
            out.append({"fixPath": {"path": f"{c}.resources.limits.cpu", "value": "YOUR_VALUE"}})
            out.append({"fixPath": {"path": f"{c}.resources.limits.memory", "value": "YOUR_VALUE"}})
        elif control == "C-0057":
            out.append({"failedPath": f"{c}.securityContext.privileged"})
    return out


def build_cd_config(
    root: Path, n_manifests: int = 2000, n_findings: int = 10000, seed: int = 0
) -> Path:
    """Write ``root/cd-config/`` with ``n_manifests`` workload documents and
    ``root/kubescape-report.json`` with exactly ``n_findings`` failed (resource, control)
    pairs among C-0016, C-0017, C-0013, C-0034, C-0046, C-0055, C-0004, C-0009, C-0050, C-0057.
    Returns the cd-config directory (the report is ``root / REPORT_NAME``)."""
    if n_manifests < 1 or n_findings < 0:
        raise ValueError("need n_manifests >= 1 and n_findings >= 0")
    rng = random.Random(seed)
    repo = Path(root) / REPO_NAME
    repo.mkdir(parents=True, exist_ok=True)
    failing = _choose_failures(rng, n_manifests, n_findings)

    results: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    counters = {cid: [0, 0] for cid in CONTROLS}  # passed, failed
    w = 0
    file_no = 0
    while w < n_manifests:
        team = rng.choice(_TEAMS)
        n_docs = min(rng.choice((1, 1, 1, 2, 3)), n_manifests - w)
        seq_indent = rng.choice((0, 2))
        rel = f"apps/{team}/{_WORDS[file_no % len(_WORDS)]}-{file_no:05d}.yaml"
        file_no += 1
        parts = [f"# {team}: managed by the {team} team, deployed by Argo CD\n"]
        if rng.random() < 0.2:
            parts.append("---\n")
        doc_index = 0
        for i in range(n_docs):
            kind = rng.choice(_KINDS)
            name = f"{_WORDS[(file_no + i) % len(_WORDS)]}-{w:05d}"
            obj = _workload(rng, kind, name, team, failing[w])
            if i:
                parts.append("---\n")
            parts.append(_document(rng, obj, seq_indent))
            pod = _pod_spec_path(kind)
            containers = [c["name"] for c in _lookup(obj, pod)["containers"]]
            resource_id = f"path={1000000000 + w}/api={_API[kind]}/{team}/{kind}/{name}"
            controls = []
            for cid in CONTROLS:
                failed = cid in failing[w]
                counters[cid][failed] += 1
                rule: dict[str, Any] = {
                    "name": RULES[cid],
                    "status": "failed" if failed else "passed",
                }
                if failed:
                    rule["paths"] = _paths(cid, pod, containers)
                controls.append(
                    {
                        "controlID": cid,
                        "name": CONTROLS[cid],
                        "status": {"status": "failed" if failed else "passed"},
                        "rules": [rule],
                    }
                )
            results.append({"resourceID": resource_id, "controls": controls})
            source_path = f"{rel}:{doc_index}" if n_docs > 1 else rel
            resources.append(
                {
                    "resourceID": resource_id,
                    "object": {**obj, "sourcePath": source_path},
                    "source": {"relativePath": rel, "fileType": "YAML"},
                }
            )
            doc_index += 1
            w += 1
            if rng.random() < 0.15:
                parts.append("---\n")
                parts.append(_document(rng, _service(name, team), seq_indent))
                doc_index += 1
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(parts), encoding="utf-8")

    report = {
        "generationTime": "2026-01-01T00:00:00Z",
        "metadata": {"scanMetadata": {"scanningTarget": 2, "targetNames": ["cd-config"]}},
        "summaryDetails": {
            "controls": {
                cid: {
                    "controlID": cid,
                    "name": CONTROLS[cid],
                    "status": "failed" if counters[cid][1] else "passed",
                    "statusInfo": {"status": "failed" if counters[cid][1] else "passed"},
                    "scoreFactor": SCORE_FACTOR[cid],
                    "ResourceCounters": {
                        "passedResources": counters[cid][0],
                        "failedResources": counters[cid][1],
                        "excludedResources": 0,
                    },
                }
                for cid in CONTROLS
            }
        },
        "resources": resources,
        "results": results,
    }
    (Path(root) / REPORT_NAME).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return repo


def _lookup(obj: Any, dotted: str) -> Any:
    for step in dotted.split("."):
        obj = obj[step]
    return obj
