"""Write examples/kubescape-report.json: a report of examples/cd-config in Kubescape's v2 JSON
results format (``kubescape scan --format json``), shaped like the real reports in the shared
corpus (results[].controls[].rules[].paths[].fixPath/failedPath, resources[] with the scanned
objects and their source, summaryDetails with per-framework control counters).

The verdicts come from kube-remedy's own checks (a fixer that does not answer AlreadyCompliant
means the control fails) plus Kubescape's RBAC rule for cluster-admin bindings (C-0035), which
no fixer handles. Run it again after editing the example manifests:

    .venv/bin/python scripts/make_example_report.py
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from bot import controls as catalog
from bot.locate.manifest import iter_yaml_files
from fixers.edits import load_documents
from fixers.model import AlreadyCompliant, Finding, Fixed, ResourceRef
from fixers.policy import FixContext
from fixers.registry import all_fixers, run_fixer
from fixers.view import ManifestPodView

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT / "examples" / "cd-config"
OUT = ROOT / "examples" / "kubescape-report.json"


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def resource_id(relpath: str, doc: dict[str, Any]) -> str:
    api = doc.get("apiVersion", "")
    ns = (doc.get("metadata") or {}).get("namespace", "")
    name = doc["metadata"]["name"]
    return f"path={zlib.crc32(relpath.encode())}/api={api}/{ns}/{doc['kind']}/{name}"


def workload_rules(doc: dict[str, Any], policies: list[dict[str, Any]]) -> dict[str, list]:
    """control id -> rule paths, for every control a fixer answers not-compliant on."""
    view = ManifestPodView.from_document(doc)
    if view is None:
        return {}
    ref = ResourceRef(kind=doc["kind"], namespace=view.namespace, name=view.name)
    ctx = FixContext(network_policies=tuple(policies))
    failed: dict[str, list] = {}
    for fixer in all_fixers():
        for control in fixer.controls:
            result = run_fixer(fixer, view, Finding(control_id=control, resource=ref), ctx)
            if isinstance(result, AlreadyCompliant):
                continue
            paths = []
            if isinstance(result, Fixed):
                for edit in result.edits:
                    path = getattr(edit, "path", None)
                    if path is not None:
                        value = getattr(edit, "value", None)
                        paths.append(
                            {
                                "fixPath": {
                                    "path": dotted(path),
                                    "value": json.dumps(value)
                                    if not isinstance(value, str)
                                    else value,
                                }
                            }
                            if value is not None and not isinstance(value, dict | list)
                            else {"failedPath": dotted(path)}
                        )
            if not paths:
                paths.append({"failedPath": dotted(view.base)})
            failed[control] = paths
    return failed


def rbac_rules(doc: dict[str, Any]) -> dict[str, list]:
    binding = doc.get("kind") in ("ClusterRoleBinding", "RoleBinding")
    if binding and (doc.get("roleRef") or {}).get("name") == "cluster-admin":
        return {"C-0035": [{"failedPath": "roleRef.name"}]}
    return {}


def main() -> None:
    docs: list[tuple[str, int, dict[str, Any]]] = []
    for relpath in iter_yaml_files(REPO):
        if relpath.startswith("."):
            continue
        text = (REPO / relpath).read_text(encoding="utf-8")
        for i, doc in enumerate(load_documents(text)):
            if isinstance(doc, dict) and doc.get("kind"):
                docs.append((relpath, i, doc))
    policies = [d for _, _, d in docs if d["kind"] == "NetworkPolicy"]
    results, resources = [], []
    counters: dict[str, dict[str, int]] = defaultdict(lambda: {"passed": 0, "failed": 0})
    checked = {c for f in all_fixers() for c in f.controls} | {"C-0035"}
    for relpath, index, doc in docs:
        rid = resource_id(relpath, doc)
        failed = {**workload_rules(doc, policies), **rbac_rules(doc)}
        applicable = (
            checked
            if ManifestPodView.from_document(doc)
            else {"C-0035"}
            if "Binding" in doc["kind"]
            else set()
        )
        controls = []
        for control_id in sorted(applicable):
            control = catalog.require(control_id)
            status = "failed" if control_id in failed else "passed"
            counters[control_id][status] += 1
            rule: dict[str, Any] = {
                "name": control.name.lower().replace(" ", "-"),
                "status": status,
            }
            if status == "failed":
                rule["paths"] = failed[control_id]
            controls.append(
                {
                    "controlID": control_id,
                    "name": control.name,
                    "status": {"status": status},
                    "rules": [rule],
                }
            )
        if controls:
            results.append({"resourceID": rid, "controls": controls})
        obj = dict(doc)
        obj["sourcePath"] = f"{relpath}:{index}"
        resources.append(
            {
                "resourceID": rid,
                "object": obj,
                "source": {"relativePath": relpath, "fileType": "YAML"},
            }
        )
    frameworks = []
    for name in ("NSA", "MITRE", "cis-v1.23-t1.0.1"):
        label = "CIS" if name.startswith("cis") else name
        fw_controls = {}
        scores = []
        for control_id, count in sorted(counters.items()):
            control = catalog.require(control_id)
            if label not in control.frameworks and not (label == "CIS" and control.cis):
                continue
            total = count["passed"] + count["failed"]
            score = 100.0 if count["failed"] == 0 else 100.0 * count["passed"] / total
            scores.append(score)
            fw_controls[control_id] = {
                "controlID": control_id,
                "name": control.name,
                "status": "failed" if count["failed"] else "passed",
                "statusInfo": {"status": "failed" if count["failed"] else "passed"},
                "scoreFactor": control.score_factor,
                "ResourceCounters": {
                    "passedResources": count["passed"],
                    "failedResources": count["failed"],
                    "excludedResources": 0,
                    "skippedResources": 0,
                },
                "complianceScore": round(score, 4),
            }
        frameworks.append(
            {
                "name": name,
                "status": "failed",
                "controls": fw_controls,
                "complianceScore": round(sum(scores) / len(scores), 4) if scores else 100.0,
            }
        )
    report = {
        "generationTime": "2026-11-22T09:00:00Z",
        "clusterName": "",
        "reportGUID": "00000000-0000-4000-8000-000000000001",
        "jobID": "",
        "metadata": {"scanMetadata": {"scanningTarget": 1, "targetNames": ["examples/cd-config"]}},
        "summaryDetails": {
            "status": "failed",
            "frameworks": frameworks,
            "controls": {
                cid: {
                    "controlID": cid,
                    "name": catalog.require(cid).name,
                    "status": "failed" if c["failed"] else "passed",
                    "scoreFactor": catalog.require(cid).score_factor,
                    "ResourceCounters": {
                        "passedResources": c["passed"],
                        "failedResources": c["failed"],
                        "excludedResources": 0,
                    },
                }
                for cid, c in sorted(counters.items())
            },
        },
        "resources": resources,
        "results": results,
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {OUT.relative_to(ROOT)}: {len(results)} resources, {sum(c['failed'] for c in counters.values())} failed control results"
    )


if __name__ == "__main__":
    main()
