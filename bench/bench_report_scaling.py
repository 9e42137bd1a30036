"""Plan time and peak memory against the number of resources in one Kubescape report.

For each size, writes a real-shaped Kubescape report (`bench.bench_report_memory`: every
resource embedded, 60 controls each, six failed with rule paths) and a cd-config holding each
reported Deployment in the file the report names, then plans it in a fresh subprocess that
prints its CPU seconds per phase and its peak RSS. Time per finding must stay flat: the growth
exponent between sizes (log time ratio / log findings ratio) must stay near 1.

``--big-mb 200`` then writes a report of that size and reads it (``load_report``, streamed
above 20 MB) in a fresh subprocess: peak RSS over the report's size (target <= 2x); with
``--plan-big`` it is planned end to end too (``build_plan``, about ten minutes on one core for
200 MB): wall and CPU seconds, findings per second, and the peak RSS of the whole run over the
report's size, with the load average before and after.

``--digest`` also prints a digest of each plan (`plan_digest`: change sets with their fixes,
files before and after, unresolved findings; unfixable reasons, compliant findings, notes),
after the measurement: a change that only saves memory or time must leave it as it was on the
same generated report.

    .venv/bin/python -m bench.bench_report_scaling --resources 500,2000,8000
    .venv/bin/python -m bench.bench_report_scaling --resources 500 --big-mb 200 --plan-big
    .venv/bin/python -m bench.bench_report_scaling --resources 500,2000 --digest
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.bench_compare import child_env
from bench.bench_report_memory import _object, _write, write_report

HERE = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from bot.sources import load_report
cpu, wall = time.process_time(), time.perf_counter()
report = load_report(Path(sys.argv[1]))
parsed, parsed_wall = time.process_time(), time.perf_counter()
plan = None
if sys.argv[2]:
    from bot.plan import build_plan
    plan = build_plan(report, Path(sys.argv[2]))
measured = {
    "parse": parsed - cpu, "plan": time.process_time() - parsed,
    "parse_wall": parsed_wall - wall, "plan_wall": time.perf_counter() - parsed_wall,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "findings": len(report.findings),
    "change_sets": len(plan.change_sets) if plan else 0,
}
if plan is not None and sys.argv[3:] == ["digest"]:
    from bench.bench_report_scaling import plan_digest
    measured["digest"] = plan_digest(plan)
print(json.dumps(measured))
"""


def plan_digest(plan: Any) -> str:
    """A hash of everything a plan says (a `bot.plan.Plan`): equal digests, equal plans."""
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            digest.update(repr(part).encode("utf-8", "surrogatepass") + b"\0")

    for cs in plan.change_sets:
        add("change set", cs.key, cs.title, cs.family, cs.risk, cs.notes, sorted(cs.meta.items()))
        for fix in cs.fixes:
            add(fix.finding, fix.location, fix.fixer, fix.family, fix.risk, fix.edits)
            add(fix.notes, fix.values_used)
        for change in cs.files:
            add(change.path, change.before, change.after)
        for left in cs.unresolved:
            add(left.finding, left.reason, left.category)
    for left in plan.unfixable:
        add("unfixable", left.finding, left.reason, left.category)
    for name in ("already_compliant", "findings", "notes"):
        add(name)
        for item in getattr(plan, name):  # one at a time: a big plan's repr is hundreds of MB
            add(item)
    return digest.hexdigest()[:16]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (timings are noisy on a shared machine)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


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


def measure(report: Path, repo: Path | None, digest: bool = False) -> dict:
    """CPU seconds of reading (and planning, given ``repo``) in a fresh process, its peak RSS
    (and with ``digest``, the plan's `plan_digest`)."""
    env = child_env(HERE)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(report), str(repo or ""), *(["digest"] * digest)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", default="500,2000,8000")
    parser.add_argument("--big-mb", type=float, default=0, help="also read a report this big")
    parser.add_argument("--plan-big", action="store_true", help="and plan it (slow)")
    parser.add_argument(
        "--digest", action="store_true", help="print each plan's digest (compare before/after)"
    )
    args = parser.parse_args(argv)
    mb = 1024 * 1024
    print(f"CPU seconds per phase, one fresh process per size (load average {load_average()})")
    print(
        f"{'resources':>9} {'MB':>6} {'findings':>8} {'parse s':>8} {'plan s':>8} "
        f"{'ms/finding':>10} {'exponent':>8} {'peak MB':>8}"
    )
    previous: tuple[int, float] | None = None
    for count in (int(n) for n in args.resources.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            report, repo = write_inputs(Path(tmp), count)
            size = report.stat().st_size
            r = measure(report, repo, args.digest)
        total = r["parse"] + r["plan"]
        exponent = (
            f"{math.log(total / previous[1]) / math.log(r['findings'] / previous[0]):8.2f}"
            if previous
            else f"{'-':>8}"
        )
        previous = (r["findings"], total)
        print(
            f"{count:9d} {size / mb:6.1f} {r['findings']:8d} {r['parse']:8.2f} {r['plan']:8.2f} "
            f"{1000 * total / max(1, r['findings']):10.2f} {exponent} {r['rss'] / mb:8.0f}"
            + (f"  plan digest {r['digest']}" if "digest" in r else ""),
            flush=True,
        )
    if args.big_mb:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            count = write_report(report, int(args.big_mb * mb))
            repo = None
            if args.plan_big:
                report, repo = write_inputs(Path(tmp), count)
            size = report.stat().st_size
            load_before = load_average()
            r = measure(report, repo, args.digest)
            load_after = load_average()
        print(
            f"{size / mb:.0f} MB report ({count} resources, {r['findings']} findings): read "
            f"{r['parse']:.1f} s CPU ({r['parse_wall']:.1f} s wall)"
            + (
                f", plan {r['plan']:.1f} s CPU ({r['plan_wall']:.1f} s wall), "
                f"{r['change_sets']} change sets; "
                f"{r['findings'] / (r['parse_wall'] + r['plan_wall']):.0f} findings/s wall, "
                f"{1000 * (r['parse'] + r['plan']) / max(1, r['findings']):.2f} ms CPU per "
                "finding"
                if repo
                else ""
            )
            + f"; peak RSS {r['rss'] / mb:.0f} MB = {r['rss'] / size:.2f}x the report "
            f"(target <= 2x); load average {load_before} before, {load_after} after"
            + (f"; plan digest {r['digest']}" if "digest" in r else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
