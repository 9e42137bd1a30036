"""GitLab request economy of a whole run (`bot.service.run_project_once`) against the emulator.

    .venv/bin/python bench/bench_gitlab.py [--manifests 155] [--findings 620]

Uploads a synthetic cd-config (`bench.synth.build_cd_config`, ~200 change sets at the default
sizes) to an emulated GitLab project, attaches the Kubescape report as the artifact of a pipeline
on main, then runs the bot twice with limits high enough to open every MR: a first run (every
change set is new) and an unchanged re-run. Prints requests and writes per run, writes per new
MR (target <= 2, plus one dashboard write per run) and the writes of the re-run (target 0).
Figures only: nothing is asserted.
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

from bench.synth import REPORT_NAME, build_cd_config  # noqa: E402
from bot.service import run_project_once  # noqa: E402
from bot.settings import ProjectConfig, Settings  # noqa: E402
from tests.gitlab_emulator import GitLabEmulator  # noqa: E402

PROJECT = "platform/cd-config"
REMEDY_YAML = "limits:\n  max_open: 100000\n  max_new_per_hour: 100000\n"


@dataclass(frozen=True)
class RunFigures:
    name: str
    seconds: float
    requests: int
    writes: int
    dashboard_writes: int
    decisions: dict[str, int]


def _run(name: str, emulator: GitLabEmulator, settings: Settings) -> RunFigures:
    emulator.reset_counts()
    start = time.perf_counter()
    summary = run_project_once(settings, settings.projects[0])
    seconds = time.perf_counter() - start
    counts: dict[str, int] = {}
    for decision in summary.result.decisions:
        counts[decision.action] = counts.get(decision.action, 0) + 1
    dashboard = sum(1 for r in emulator.requests if r[0] != "GET" and "/issues" in r[1])
    return RunFigures(name, seconds, len(emulator.requests), emulator.writes(), dashboard, counts)


def measure(n_manifests: int, n_findings: int, root: Path) -> tuple[int, list[RunFigures]]:
    """(files uploaded, figures of the first run and of an unchanged re-run)."""
    repo = build_cd_config(root / "synth", n_manifests, n_findings)
    files = {p.relative_to(repo).as_posix(): p.read_text() for p in repo.rglob("*") if p.is_file()}
    files[".remedy.yaml"] = REMEDY_YAML
    emulator = GitLabEmulator(root / "gitlab")
    emulator.start()
    try:
        pid = emulator.create_project(PROJECT, files)
        report = (root / "synth" / REPORT_NAME).read_bytes()
        emulator.add_pipeline(pid, "main", {"kubescape": {"kubescape-results.json": report}})
        settings = Settings(
            gitlab_url=emulator.url,
            gitlab_token=emulator.token,
            data_dir=root / "data",
            projects=(ProjectConfig(id=PROJECT),),
        )
        first = _run("first run", emulator, settings)
        again = _run("unchanged re-run", emulator, settings)
        return len(files), [first, again]
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--manifests", type=int, default=155)
    parser.add_argument("--findings", type=int, default=620)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        n_files, runs = measure(args.manifests, args.findings, Path(tmp))
    print(f"cd-config: {n_files} files, {args.manifests} workloads, {args.findings} findings")
    for run in runs:
        print(
            f"{run.name:>17}: {run.seconds:6.2f}s  requests={run.requests:5d}  "
            f"writes={run.writes:5d} (dashboard {run.dashboard_writes})  {run.decisions}"
        )
    first, again = runs
    created = first.decisions.get("created", 0)
    if created:
        mr_writes = first.writes - first.dashboard_writes
        print(f"new MRs: {created}")
        print(f"writes per new MR: {mr_writes / created:.2f} (target <= 2)")
        print(f"requests per new MR: {first.requests / created:.2f}")
    print(f"writes on the unchanged re-run: {again.writes} (target 0)")
    print(f"total: {sum(r.requests for r in runs)} requests, {sum(r.seconds for r in runs):.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
