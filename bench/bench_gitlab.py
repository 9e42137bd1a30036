"""GitLab request economy of the MR lifecycle: python-gitlab over HTTP against the emulator.

    .venv/bin/python bench/bench_gitlab.py [--change-sets 200] [--changed 10]

Seeds a project with one manifest per change set, then runs the lifecycle three times:
first run (every change set is new), an unchanged re-run, and a re-run where ``--changed``
change sets have different files. Prints requests and writes per run and per new MR.
Targets: <= 2 writes per new MR; 0 writes on the unchanged re-run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.forge.gitlab import GitLabForge  # noqa: E402
from bot.lifecycle import SyncResult, SyncSettings, sync_changes  # noqa: E402
from tests.gitlab_emulator import GitLabEmulator  # noqa: E402
from tests.test_gitlab_forge import change_set, describe, labels, manifest  # noqa: E402

PROJECT = "platform/cd-config"


@dataclass(frozen=True)
class RunFigures:
    name: str
    seconds: float
    requests: int
    writes: int
    decisions: dict[str, int]


def _run(name: str, emulator: GitLabEmulator, forge: GitLabForge, sets: list) -> RunFigures:  # type: ignore[type-arg]
    emulator.reset_counts()
    start = time.perf_counter()
    result: SyncResult = sync_changes(
        forge,
        sets,
        describe=describe,
        labels=labels,
        settings=SyncSettings(max_open=10_000, max_new_per_hour=10_000),
    )
    seconds = time.perf_counter() - start
    counts: dict[str, int] = {}
    for d in result.decisions:
        counts[d.action] = counts.get(d.action, 0) + 1
    return RunFigures(name, seconds, len(emulator.requests), emulator.writes(), counts)


def measure(n_sets: int, n_changed: int, root: Path) -> list[RunFigures]:
    """The three runs' figures for ``n_sets`` change sets, ``n_changed`` of them changed last."""
    names = [f"app-{i:04d}" for i in range(n_sets)]
    emulator = GitLabEmulator(root)
    emulator.start()
    try:
        emulator.create_project(PROJECT, {f"apps/{n}.yaml": manifest(n) for n in names})
        forge = GitLabForge(emulator.url, emulator.token, PROJECT)
        sets = [change_set(n) for n in names]
        changed = [
            change_set(n, "readOnly: true\nrunAsNonRoot: true\n") if i < n_changed else cs
            for i, (n, cs) in enumerate(zip(names, sets, strict=True))
        ]
        first = _run("first run", emulator, forge, sets)
        # a fresh forge per run, as each scheduled run builds its own
        forge = GitLabForge(emulator.url, emulator.token, PROJECT)
        again = _run("unchanged re-run", emulator, forge, sets)
        forge = GitLabForge(emulator.url, emulator.token, PROJECT)
        third = _run(f"{n_changed} changed", emulator, forge, changed)
        return [first, again, third]
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change-sets", type=int, default=200)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = measure(args.change_sets, args.changed, Path(tmp))
    for run in runs:
        print(
            f"{run.name:>18}: {run.seconds:6.2f}s  requests={run.requests:5d}  "
            f"writes={run.writes:5d}  {run.decisions}"
        )
    first, again, _ = runs
    created = first.decisions.get("created", 0)
    per_mr = first.writes / created if created else 0.0
    print(f"writes per new MR: {per_mr:.2f} (target <= 2)")
    print(f"requests per new MR: {first.requests / created if created else 0.0:.2f}")
    print(f"writes on unchanged re-run: {again.writes} (target 0)")
    total = sum(r.requests for r in runs)
    print(f"total: {total} requests, {sum(r.writes for r in runs)} writes")
    return 0 if per_mr <= 2 and again.writes == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
