"""Before/after benchmark of the planner: one commit's code against the worktree's, same input.

Exports the base commit's tree (``git archive``) to a temporary directory, builds one synthetic
cd-config and Kubescape report (`bench.synth`), then runs the same child program under each
side's code (``PYTHONPATH``), alternating base and head, ``--repeats`` times each, all in this
process tree. Each child parses the report and plans it; it prints its wall and CPU seconds and
a digest of the whole plan (every change set's key, title, fixes and file bytes; every
unfixable finding and its reason; every compliant finding). The sides must agree on the digest:
a speed-up that changes the output is a failure (exit 1).

    .venv/bin/python -m bench.bench_compare --base HEAD --manifests 600 --repeats 3

``--instructions`` runs each side once under valgrind's callgrind and compares the
instructions they execute instead (steady where CPU time drifts; see `bench.instructions`):

    .venv/bin/python -m bench.bench_compare --base HEAD --manifests 200 --instructions
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

CHILD = r"""
import hashlib, json, sys, time
from pathlib import Path
from bot.plan import build_plan
from bot.sources import load_report

report_path, repo = Path(sys.argv[1]), Path(sys.argv[2])
wall, cpu = time.perf_counter(), time.process_time()
report = load_report(report_path)
plan = build_plan(report, repo)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
digest = hashlib.sha256()
for cs in plan.change_sets:
    digest.update(repr((cs.key, cs.title, cs.family, cs.risk)).encode())
    for fix in cs.fixes:
        digest.update(repr((fix.finding.identity, fix.location, fix.fixer, fix.edits)).encode())
    for change in cs.files:
        digest.update(repr((change.path, change.before, change.after)).encode())
    for u in cs.unresolved:
        digest.update(repr((u.finding.identity, u.reason, u.category)).encode())
for u in plan.unfixable:
    digest.update(repr((u.finding.identity, u.reason, u.category)).encode())
for f in plan.already_compliant:
    digest.update(repr(f.identity).encode())
print(json.dumps({"wall": wall, "cpu": cpu, "digest": digest.hexdigest(),
                  "change_sets": len(plan.change_sets), "unfixable": len(plan.unfixable)}))
"""


def child_env(code_root: Path) -> dict[str, str]:
    """The environment of a timed child running ``code_root``'s code as an installed remedy
    runs: byte code cached (a shell's ``PYTHONDONTWRITEBYTECODE`` would charge every process the
    compilation of every module it imports)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(code_root)}


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (a commit of this repository) written under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(HERE), "archive", rev], check=True, capture_output=True
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def compile_code(code_root: Path) -> None:
    """Byte-compile ``code_root``'s packages, so that no side's count includes compiling."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "bot", "fixers"],
        env=child_env(code_root),
        cwd=code_root,
        check=True,
    )


def run_child(code_root: Path, report: Path, repo: Path) -> dict:
    env = child_env(code_root)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(report), str(repo)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=code_root,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="commit to compare against")
    parser.add_argument("--manifests", type=int, default=600)
    parser.add_argument("--findings", type=int, default=0, help="default 5 per manifest")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (callgrind), once a side"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from bench.synth import REPORT_NAME, build_cd_config

    findings = args.findings or 5 * args.manifests
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = export(args.base, root / "base")
        repo = build_cd_config(root / "input", args.manifests, findings, args.seed)
        report = root / "input" / REPORT_NAME
        print(f"{args.manifests} manifests, {findings} failed control results, base {args.base}")
        for code in (base, HERE):
            compile_code(code)
        compare = _compare_instructions if args.instructions else _compare_times
        return compare(base, report, repo, args.repeats)


def _compare_times(base: Path, report: Path, repo: Path, repeats: int) -> int:
    runs: dict[str, list[dict]] = {"base": [], "head": []}
    for _ in range(repeats):
        runs["base"].append(run_child(base, report, repo))
        runs["head"].append(run_child(HERE, report, repo))
    print(f"{'side':<5} {'wall min':>9} {'wall med':>9} {'cpu min':>8} {'cpu med':>8}  digest")
    for side, results in runs.items():
        wall = [r["wall"] for r in results]
        cpu = [r["cpu"] for r in results]
        digests = {r["digest"] for r in results}
        print(
            f"{side:<5} {min(wall):9.2f} {statistics.median(wall):9.2f} "
            f"{min(cpu):8.2f} {statistics.median(cpu):8.2f}  {','.join(d[:12] for d in digests)}"
        )
    b, h = runs["base"], runs["head"]
    print(
        f"head/base: wall min {min(r['wall'] for r in h) / min(r['wall'] for r in b):.2f}, "
        f"cpu min {min(r['cpu'] for r in h) / min(r['cpu'] for r in b):.2f}; "
        f"{b[0]['change_sets']} change sets, {b[0]['unfixable']} unfixable"
    )
    return _report_digests({r["digest"] for r in b} | {r["digest"] for r in h})


def _compare_instructions(base: Path, report: Path, repo: Path, repeats: int) -> int:
    """Each side once (the count repeats itself): instructions, and the plans' digests."""
    from bench.instructions import instructions

    counted = {}
    for side, code in (("base", base), ("head", HERE)):
        argv = [sys.executable, "-c", CHILD, str(report), str(repo)]
        ir, stdout = instructions(argv, child_env(code), cwd=code)
        counted[side] = (ir, json.loads(stdout.strip().splitlines()[-1]))
    for side, (ir, result) in counted.items():
        print(f"{side:<5} {ir:>16,} instructions  digest {result['digest'][:12]}")
    print(f"head/base: instructions {counted['head'][0] / counted['base'][0]:.3f}")
    return _report_digests({result["digest"] for _, result in counted.values()})


def _report_digests(digests: set[str]) -> int:
    same = len(digests) == 1
    print("plan outputs: identical" if same else "plan outputs: DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
