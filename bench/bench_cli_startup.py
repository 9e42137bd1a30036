"""CLI start-up: whole ``remedy`` processes, base commit against the worktree, alternated.

Times (CPU seconds, user + system) ``remedy --help``, ``remedy explain C-0017`` and ``remedy plan`` of an empty Kubescape
report (target: each under 0.2 s) as whole processes under each side's code (``PYTHONPATH``),
``--repeats`` rounds, and prints min and median per side. ``python -X importtime -c 'import
bot.cli'`` gives the per-module figures.

    .venv/bin/python -m bench.bench_cli_startup --base HEAD~1 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_compare import HERE, child_env, export

ENTRY = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(code: Path, args: list[str]) -> float:
    """CPU seconds (user + system) of one whole process: on a shared machine wall time
    measures the neighbours."""
    env = child_env(code)
    start = _children_cpu()
    # cwd: ``python -c`` puts the working directory before PYTHONPATH on sys.path, so run from
    # the side's own tree or both sides would run the code of wherever the bench started.
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *args], env=env, capture_output=True, cwd=code
    )
    took = _children_cpu() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{args} failed under {code}: {done.stderr.decode()[-500:]}")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = export(args.base, root / "base")
        report = root / "empty.json"
        report.write_text(json.dumps({"summaryDetails": {}, "resources": [], "results": []}))
        repo = root / "repo"
        repo.mkdir()
        commands = {
            "--help": ["--help"],
            "explain C-0017": ["explain", "C-0017"],
            "plan (empty report)": ["plan", "--report", str(report), "--repo", str(repo)],
        }
        timed(HERE, ["--help"])  # warm the file cache and byte code of both sides
        timed(base, ["--help"])
        print("CPU seconds per whole process")
        print(f"{'command':<22} {'base min':>8} {'base med':>8} {'head min':>8} {'head med':>8}")
        for name, cmd in commands.items():
            runs: dict[str, list[float]] = {"base": [], "head": []}
            for _ in range(args.repeats):
                runs["base"].append(timed(base, cmd))
                runs["head"].append(timed(HERE, cmd))
            b, h = runs["base"], runs["head"]
            print(
                f"{name:<22} {min(b):8.3f} {statistics.median(b):8.3f} "
                f"{min(h):8.3f} {statistics.median(h):8.3f}"
            )
        start = _children_cpu()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        print(f"bare interpreter: {_children_cpu() - start:.3f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
