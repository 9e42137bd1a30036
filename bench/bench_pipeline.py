"""Whole-job benchmark: report -> plan (locate, fix, apply edits, verify) -> changed files.

Builds a synthetic cd-config (default 2,000 manifests, 10,000 failed control results, see
`bench.synth`), then measures in the same run:

- kube-remedy: parse the Kubescape report, plan every finding (each fix applied as text splices
  and verified by re-parsing and re-checking), and write every changed file;
- the bare cost of the work: one ruamel.yaml round trip (load + dump) of the files it touches.

and prints both with their ratio (target: <= 1.0).

    .venv/bin/python bench/bench_pipeline.py [--manifests 2000] [--findings 10000]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.synth import REPORT_NAME, build_cd_config
from bot.plan import build_plan
from bot.sources import load_report


def ruamel_round_trip(paths: list[Path]) -> float:
    yaml = YAML()
    yaml.preserve_quotes = True
    start = time.perf_counter()
    for path in paths:
        docs = list(yaml.load_all(path.read_text(encoding="utf-8")))
        out = io.StringIO()
        yaml.dump_all(docs, out)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=2000)
    parser.add_argument("--findings", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        repo = build_cd_config(
            root, n_manifests=args.manifests, n_findings=args.findings, seed=args.seed
        )
        build = time.perf_counter() - t0
        report_path = root / REPORT_NAME

        start = time.perf_counter()
        report = load_report(report_path)
        parsed = time.perf_counter()
        plan = build_plan(report, repo)
        planned = time.perf_counter()
        touched = sorted({c.path for cs in plan.change_sets for c in cs.files})
        for cs in plan.change_sets:
            for change in cs.files:
                with (repo / change.path).open("w", encoding="utf-8", newline="") as fh:
                    fh.write(change.after)
        done = time.perf_counter()
        ours = done - start

        # the bare cost, measured on the original files (restore them first)
        for cs in plan.change_sets:
            for change in cs.files:
                if change.before is not None:
                    with (repo / change.path).open("w", encoding="utf-8", newline="") as fh:
                        fh.write(change.before)
        originals = [repo / p for p in touched if (repo / p).exists()]
        size = sum(p.stat().st_size for p in originals)
        bare = ruamel_round_trip(originals)

    print(
        f"synthetic cd-config: {args.manifests} manifests, {len(report.findings)} findings "
        f"(built in {build:.1f} s)"
    )
    print(
        f"change sets: {len(plan.change_sets)}, fixed findings: {len(plan.fixed_findings)}, "
        f"unfixable: {len(plan.unfixable)}, already compliant: {len(plan.already_compliant)}"
    )
    print(f"touched files: {len(touched)} ({size / 1e6:.2f} MB)")
    print(f"kube-remedy report parse      {parsed - start:8.2f} s")
    print(f"kube-remedy plan+apply+verify {planned - parsed:8.2f} s")
    print(f"kube-remedy write files       {done - planned:8.2f} s")
    print(f"kube-remedy total             {ours:8.2f} s")
    print(f"ruamel load+dump (bare cost)  {bare:8.2f} s")
    print(f"ratio kube-remedy / ruamel round trip: {ours / bare:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
