"""Plan time and peak memory against the number of resources in one Kubescape report.

For each size, writes a real-shaped Kubescape report (`bench.bench_report_memory`: every
resource embedded, 60 controls each, six failed with rule paths) and a cd-config holding each
reported Deployment in the file the report names, then plans it in a fresh subprocess that
prints its wall seconds, CPU seconds and peak RSS. Time per finding must stay flat (linear
growth); peak RSS at most 2x the report (plus the interpreter).

    .venv/bin/python -m bench.bench_report_scaling --resources 500,1000,2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.bench_report_memory import _object, _write

HERE = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from bot.plan import build_plan
from bot.sources import load_report
wall, cpu = time.perf_counter(), time.process_time()
report = load_report(Path(sys.argv[1]))
parsed = time.perf_counter()
plan = build_plan(report, Path(sys.argv[2]))
done = time.perf_counter()
print(json.dumps({
    "parse": parsed - wall, "plan": done - parsed, "wall": done - wall,
    "cpu": time.process_time() - cpu,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "findings": len(report.findings), "change_sets": len(plan.change_sets),
}))
"""


def write_inputs(root: Path, count: int) -> tuple[Path, Path]:
    """The report and the repository it describes, for ``count`` Deployments."""
    report = root / "report.json"
    with report.open("w") as out:
        _write(out, count)
    repo = root / "cd-config"
    (repo / "apps").mkdir(parents=True)
    for i in range(count):
        (repo / "apps" / f"service-{i}.yaml").write_text(yaml.safe_dump(_object(i)))
    return report, repo


def measure(report: Path, repo: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(report), str(repo)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", default="250,500,1000")
    args = parser.parse_args(argv)
    mb = 1024 * 1024
    print(
        f"{'resources':>9} {'MB':>6} {'findings':>8} {'parse s':>8} {'plan s':>7} "
        f"{'ms/finding':>10} {'peak MB':>8}"
    )
    for count in (int(n) for n in args.resources.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            report, repo = write_inputs(Path(tmp), count)
            size = report.stat().st_size
            r = measure(report, repo)
        print(
            f"{count:9d} {size / mb:6.1f} {r['findings']:8d} {r['parse']:8.2f} {r['plan']:7.2f} "
            f"{1000 * r['wall'] / max(1, r['findings']):10.2f} {r['rss'] / mb:8.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
