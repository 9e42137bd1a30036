"""Local mode: the cost of recording one more merge request as their number grows.

Runs the same child program under the base commit's code and the worktree's (``PYTHONPATH``,
alternated, in this process tree): it makes a git repository with one branch per MR, then opens
an MR on each with `LocalForge.open_change` and prints the mean milliseconds per MR in windows
of 100 (the first, and those ending at 300, 1,200 and 3,000 when reached). Linear recording
means a flat cost per MR. The base side stops at ``--base-mrs`` (the old layout is quadratic).

    .venv/bin/python -m bench.bench_local_records --base HEAD~1 --mrs 3000 --base-mrs 1200
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_compare import HERE, child_env, export

CHILD = r"""
import json, subprocess, sys, time
from pathlib import Path
from bot.forge.local import LocalForge
repo, count = Path(sys.argv[1]), int(sys.argv[2])
git = lambda *a, **k: subprocess.run(["git", "-C", str(repo), *a], check=True,
                                     capture_output=True, text=True, **k).stdout.strip()
git("init", "-q", "-b", "main")
(repo / "a.yaml").write_text("a: 1\n")
git("add", "a.yaml")
git("-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "init")
head = git("rev-parse", "HEAD")
git("update-ref", "--stdin", input="".join(f"create refs/heads/remedy/b{i} {head}\n" for i in range(count)))
forge = LocalForge(repo)
costs, cpu = [], []
for i in range(count):
    t, c = time.perf_counter(), time.process_time()
    forge.open_change(f"remedy/b{i}", f"title {i}", "description " * 200, ["kube-remedy"])
    costs.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
ids = [c.id for c in forge.find_changes()]
assert ids == list(range(1, count + 1)), "records lost or reordered"
print(json.dumps([costs, cpu]))
"""

WINDOWS = (100, 300, 1200, 3000)


def run(code: Path, count: int) -> list[list[float]]:
    """Wall and CPU seconds (this process, git excluded) of each recorded MR."""
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(code)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, tmp, str(count)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--mrs", type=int, default=3000)
    parser.add_argument("--base-mrs", type=int, default=1200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.base, Path(tmp) / "base")
        sides = {"base": run(base, args.base_mrs), "head": run(HERE, args.mrs)}
    print(f"ms per recorded MR, mean of the 100 MRs ending at: {', '.join(map(str, WINDOWS))}")
    print("(wall, then the recording process's own CPU: the git calls are load-sensitive)")
    for side, (wall, cpu) in sides.items():
        for label, costs in (("wall", wall), ("cpu", cpu)):
            cells = [
                f"{1000 * sum(costs[end - 100 : end]) / 100:8.1f}"
                if end <= len(costs)
                else "       -"
                for end in WINDOWS
            ]
            print(
                f"{side:<5} {label:<4} {' '.join(cells)}   total {sum(costs):6.1f} s "
                f"for {len(costs)} MRs"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
