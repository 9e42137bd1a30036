"""Peak memory of reading Kubescape reports of growing size, whole-file vs streamed.

Writes real-shaped synthetic reports (every resource embedded, every control in its results,
a few failed with rule paths) and loads each in a fresh subprocess that prints its own peak RSS.
Target: peak RSS <= 2x the report size.

    .venv/bin/python -m bench.bench_report_memory --sizes 10,50,200
    .venv/bin/python -m bench.bench_report_memory --replicate \
        ../shared/corpus/scans/kubescape/defectdojo__many_findings.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

CHILD = """
import resource, sys, time
from pathlib import Path
from bot.sources import load_report
start = time.perf_counter()
report = load_report(Path(sys.argv[1]), stream_above=int(sys.argv[2])) if sys.argv[1] else None
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak, took, len(report.findings) if report else 0)
"""

CONTROLS = [f"C-{n:04d}" for n in range(1, 61)]
FAILING = ("C-0016", "C-0017", "C-0013", "C-0034", "C-0004", "C-0055")


def _object(i: int) -> dict:
    containers = [
        {
            "name": name,
            "image": f"registry.example.com/team/{name}:1.{i % 50}.0",
            "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [{"name": f"VAR_{k}", "value": f"value-{i}-{k}"} for k in range(6)],
            "resources": {"requests": {"cpu": "100m"}},
        }
        for name in ("app", "sidecar")
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"service-{i}",
            "namespace": f"team-{i % 20}",
            "labels": {"app": f"service-{i}", "tier": "backend"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": f"service-{i}"}},
            "template": {
                "metadata": {"labels": {"app": f"service-{i}"}},
                "spec": {"containers": containers},
            },
        },
    }


def _result(rid: str) -> dict:
    controls = []
    for cid in CONTROLS:
        failed = cid in FAILING
        rule = {"name": f"rule-for-{cid.lower()}", "status": "failed" if failed else "passed"}
        if failed:
            rule["paths"] = [
                {
                    "fixPath": {
                        "path": f"spec.template.spec.containers[{c}].securityContext.x",
                        "value": "true",
                    }
                }
                for c in (0, 1)
            ]
        controls.append(
            {
                "controlID": cid,
                "name": f"Control {cid}",
                "severity": "High",
                "status": {"status": "failed" if failed else "passed"},
                "rules": [rule],
            }
        )
    return {"resourceID": rid, "controls": controls}


def write_report(path: Path, target_bytes: int) -> int:
    """A report of about ``target_bytes``; returns the number of resources."""
    one = len(json.dumps(_object(0))) + len(json.dumps(_result("x" * 40))) + 200
    count = max(1, target_bytes // one)
    with path.open("w") as out:
        _write(out, count)
    return count


def _write(out: IO[str], count: int) -> None:
    summary = {"controls": {c: {"scoreFactor": 7} for c in CONTROLS}, "score": 61.5}
    out.write('{"summaryDetails": ' + json.dumps(summary) + ', "resources": [')
    for i in range(count):
        rid = f"apps/v1/team-{i % 20}/Deployment/service-{i}"
        source = {"relativePath": f"apps/service-{i}.yaml", "fileType": "YAML"}
        out.write(
            ("," if i else "")
            + json.dumps({"resourceID": rid, "object": _object(i), "source": source})
        )
    out.write('], "results": [')
    for i in range(count):
        out.write(
            ("," if i else "")
            + json.dumps(_result(f"apps/v1/team-{i % 20}/Deployment/service-{i}"))
        )
    out.write("]}")


def write_replicated(path: Path, source: Path, target_bytes: int) -> int:
    """A report of about ``target_bytes`` made of copies of a real Kubescape report's resources
    and results, each copy's resources renamed (``-<n>``) so every finding stays distinct."""
    data = json.loads(source.read_text(encoding="utf-8-sig"))
    copies = max(1, round(target_bytes / source.stat().st_size))

    def renamed(item: dict, n: int) -> str:
        item = json.loads(json.dumps(item))
        item["resourceID"] = f"{item['resourceID']}-{n}"
        obj = item.get("object")
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            meta["name"] = f"{meta['name']}-{n}"
        elif isinstance(obj, dict) and isinstance(obj.get("name"), str):
            obj["name"] = f"{obj['name']}-{n}"
        return json.dumps(item)

    with path.open("w") as out:
        out.write('{"summaryDetails": ' + json.dumps(data.get("summaryDetails") or {}))
        for key in ("resources", "results"):
            out.write(f', "{key}": [')
            first = True
            for n in range(copies):
                for item in data.get(key) or ():
                    out.write(("" if first else ",") + renamed(item, n))
                    first = False
            out.write("]")
        out.write("}")
    return copies


def measure(path: Path | None, stream_above: int) -> tuple[int, float, int]:
    args = [sys.executable, "-c", CHILD, str(path) if path else "", str(stream_above)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    peak, took, findings = done.stdout.split()
    return int(peak), float(took), int(findings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,20,50,100,200", help="report sizes in MB")
    parser.add_argument("--no-whole", action="store_true", help="skip the whole-file reader")
    parser.add_argument(
        "--replicate",
        type=Path,
        help="grow copies of this real Kubescape report instead of the synthetic one",
    )
    args = parser.parse_args(argv)
    mb = 1024 * 1024
    base, _, _ = measure(None, 0)
    print(f"interpreter + imports: {base / mb:.0f} MB peak RSS")
    print(f"{'report MB':>9} {'findings':>8} {'mode':>6} {'peak MB':>8} {'x size':>7} {'s':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (float(s) for s in args.sizes.split(",")):
            path = Path(tmp) / "report.json"
            if args.replicate:
                write_replicated(path, args.replicate, int(size * mb))
            else:
                write_report(path, int(size * mb))
            real = path.stat().st_size
            modes = [("stream", 0)] if args.no_whole else [("whole", 1 << 62), ("stream", 0)]
            for mode, threshold in modes:
                peak, took, findings = measure(path, threshold)
                print(
                    f"{real / mb:9.1f} {findings:8d} {mode:>6} {peak / mb:8.0f} "
                    f"{peak / real:7.2f} {took:6.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
