"""GitLab request economy of the bot against the emulator (python-gitlab over HTTP).

    .venv/bin/python bench/bench_gitlab.py [--manifests 155] [--findings 620]
                                           [--change-sets 200] [--changed 10]

Whole run (`measure_run`, `bot.service.run_project_once`): uploads a synthetic cd-config (`bench.synth.build_cd_config`, ~200 change sets at the default
sizes) to an emulated GitLab project, attaches the Kubescape report as the artifact of a pipeline
on main, then runs the bot twice with limits high enough to open every MR: a first run (every
change set is new) and an unchanged re-run. Prints requests and writes per run, writes per new
MR (target <= 2, plus one dashboard write per run) and the writes of the re-run (target 0).

Worker path (`measure_worker`, `bot.tasks.run_once`, what ``remedy run-once`` and the Celery
workers do: one run task, one sync task per change set that needs a write, one dashboard task):
the same project and the same two runs, with a private ``redis-server`` (skipped without one).

Siblings (`measure_siblings`, ``--siblings``): Kubescape's own scan of the online-boutique
manifests (the shared corpus, read in place) in an emulated project, for ``file`` and
``file-family`` grouping: `remedy run` opens every MR, then they are merged one after another;
after each merge it counts the open bot MRs GitLab reports in conflict (what waited for the next
scheduled run before merge events regenerated them), then runs the bot as the merge event does
and counts the conflicts left.

Lifecycle alone (`measure`, `bot.lifecycle.sync_changes`): one manifest per change set, a first
run, an unchanged re-run and a re-run where ``--changed`` change sets have different files.

Figures only: nothing is asserted. Targets (issue 15), for both whole-run paths: at most 2
writes per new MR, 0 writes and at most 12 requests on an unchanged re-run.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synth import REPORT_NAME, build_cd_config  # noqa: E402
from bot.forge.gitlab import GitLabForge  # noqa: E402
from bot.lifecycle import SyncResult, SyncSettings, sync_changes  # noqa: E402
from bot.model import ChangeSet  # noqa: E402
from bot.service import run_project_once  # noqa: E402
from bot.settings import ProjectConfig, Settings  # noqa: E402
from bot.tasks import run_once  # noqa: E402
from tests.gitlab_emulator import GitLabEmulator  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.test_gitlab_forge import change_set, describe, labels, manifest  # noqa: E402

PROJECT = "platform/cd-config"
CORPUS = ROOT.parent / "shared" / "corpus"
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


def _run_worker(name: str, emulator: GitLabEmulator, settings: Settings) -> RunFigures:
    emulator.reset_counts()
    start = time.perf_counter()
    result = run_once(settings, settings.projects[0].id)
    seconds = time.perf_counter() - start
    synced = len(result.get("synced", ()))
    created = sum(
        1 for r in emulator.requests if r[0] == "POST" and r[1].endswith("/merge_requests")
    )
    counts = {"change sets": len(result.get("change_sets", ())), "synced": synced}
    if created:
        counts["created"] = created
    dashboard = sum(1 for r in emulator.requests if r[0] != "GET" and "/issues" in r[1])
    return RunFigures(name, seconds, len(emulator.requests), emulator.writes(), dashboard, counts)


def _sync(
    name: str, emulator: GitLabEmulator, forge: GitLabForge, sets: list[ChangeSet]
) -> RunFigures:
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
    return RunFigures(name, seconds, len(emulator.requests), emulator.writes(), 0, counts)


def measure(n_sets: int, n_changed: int, root: Path) -> list[RunFigures]:
    """Lifecycle only: figures of a first run, an unchanged re-run and ``n_changed`` changed."""
    names = [f"app-{i:04d}" for i in range(n_sets)]
    emulator = GitLabEmulator(root)
    emulator.start()
    try:
        emulator.create_project(PROJECT, {f"apps/{n}.yaml": manifest(n) for n in names})
        sets = [change_set(n) for n in names]
        changed = [
            change_set(n, "readOnly: true\nrunAsNonRoot: true\n") if i < n_changed else cs
            for i, (n, cs) in enumerate(zip(names, sets, strict=True))
        ]
        runs = []
        for name, wanted in (
            ("first run", sets),
            ("unchanged re-run", sets),
            (f"{n_changed} changed", changed),
        ):
            # a fresh forge per run, as each scheduled run builds its own
            forge = GitLabForge(emulator.url, emulator.token, PROJECT)
            runs.append(_sync(name, emulator, forge, wanted))
        return runs
    finally:
        emulator.stop()


def measure_run(n_manifests: int, n_findings: int, root: Path) -> tuple[int, list[RunFigures]]:
    """(files uploaded, figures of the first run and of an unchanged re-run)."""
    with _seeded_project(root, n_manifests, n_findings) as (emulator, n_files):
        settings = _settings(emulator, root)
        first = _run("first run", emulator, settings)
        again = _run("unchanged re-run", emulator, settings)
        return n_files, [first, again]


@contextlib.contextmanager
def _seeded_project(
    root: Path, n_manifests: int, n_findings: int
) -> Iterator[tuple[GitLabEmulator, int]]:
    """An emulated project holding a synthetic cd-config and its report as a pipeline artifact."""
    files, report = _project_files(root, n_manifests, n_findings)
    emulator = GitLabEmulator(root / "gitlab")
    emulator.start()
    try:
        pid = emulator.create_project(PROJECT, files)
        emulator.add_pipeline(pid, "main", {"kubescape": {"kubescape-results.json": report}})
        yield emulator, len(files)
    finally:
        emulator.stop()


def _settings(emulator: GitLabEmulator, root: Path, redis_url: str | None = None) -> Settings:
    """Settings for a run against ``emulator``; with ``redis_url``, the worker path's."""
    settings = Settings(
        gitlab_url=emulator.url,
        gitlab_token=emulator.token,  # type: ignore[arg-type]  # pydantic converts to SecretStr
        data_dir=root / "data",
        projects=(ProjectConfig(id=PROJECT),),
    )
    if redis_url is None:
        return settings
    return settings.model_copy(update={"redis_url": redis_url, "metrics_port": 0})


def _project_files(root: Path, n_manifests: int, n_findings: int) -> tuple[dict[str, str], bytes]:
    repo = build_cd_config(root / "synth", n_manifests, n_findings)
    files = {p.relative_to(repo).as_posix(): p.read_text() for p in repo.rglob("*") if p.is_file()}
    files[".remedy.yaml"] = REMEDY_YAML
    return files, (root / "synth" / REPORT_NAME).read_bytes()


def measure_worker(n_manifests: int, n_findings: int, root: Path) -> list[RunFigures] | None:
    """The worker path's figures of a first run and an unchanged re-run (None: no Redis)."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    redis_server = RedisServer(binary)
    redis_server.start()
    try:
        with _seeded_project(root, n_manifests, n_findings) as (emulator, _):
            settings = _settings(emulator, root, redis_url=redis_server.url)
            first = _run_worker("first run", emulator, settings)
            again = _run_worker("unchanged re-run", emulator, settings)
            return [first, again]
    finally:
        redis_server.stop()


@dataclass(frozen=True)
class SiblingFigures:
    grouping: str
    opened: int
    merged: int
    conflicts: int
    """Open bot MRs in conflict right after a merge, summed over the merges."""
    left: int
    """The same, after the run a merge event starts."""


def measure_siblings(grouping: str, root: Path) -> SiblingFigures | None:
    """Conflicts per merged MR for one grouping (None: the corpus is not there)."""
    manifests = CORPUS / "manifests" / "kubescape-online-boutique"
    scan = CORPUS / "scans" / "kubescape" / "defectdojo__many_findings.json"
    if not manifests.is_dir() or not scan.is_file():
        return None
    files = {p.relative_to(manifests).as_posix(): p.read_text() for p in manifests.rglob("*.yaml")}
    files[".remedy.yaml"] = REMEDY_YAML + f"grouping: {grouping}\n"
    emulator = GitLabEmulator(root / "gitlab")
    emulator.start()
    try:
        pid = emulator.create_project(PROJECT, files)
        emulator.add_pipeline(
            pid, "main", {"kubescape": {"kubescape-results.json": scan.read_bytes()}}
        )
        emulator.add_user("alice")
        settings = Settings(
            gitlab_url=emulator.url,
            gitlab_token=emulator.token,
            data_dir=root / "data",
            projects=(ProjectConfig(id=PROJECT),),
        )
        run_project_once(settings, settings.projects[0])

        def open_bot_mrs() -> list[dict[str, object]]:
            return sorted(
                (
                    m
                    for m in emulator.merge_requests(pid)
                    if m["state"] == "opened" and m["author"]["username"] == "kube-remedy"
                ),
                key=lambda m: int(m["iid"]),  # type: ignore[call-overload]
            )

        opened = len(open_bot_mrs())
        merged = conflicts = left = 0
        while True:
            mergeable = [m for m in open_bot_mrs() if not m["has_conflicts"]]
            if not mergeable:
                break
            emulator.merge(pid, int(mergeable[0]["iid"]), by="alice")  # type: ignore[call-overload]
            merged += 1
            conflicts += sum(1 for m in open_bot_mrs() if m["has_conflicts"])
            run_project_once(settings, settings.projects[0])  # what the merge event starts
            left += sum(1 for m in open_bot_mrs() if m["has_conflicts"])
        return SiblingFigures(grouping, opened, merged, conflicts, left)
    finally:
        emulator.stop()


def _report(title: str, runs: list[RunFigures]) -> None:
    print(title)
    for run in runs:
        print(
            f"{run.name:>17}: {run.seconds:6.2f}s  requests={run.requests:5d}  "
            f"writes={run.writes:5d} (dashboard {run.dashboard_writes})  {run.decisions}"
        )
    first, again = runs
    created = first.decisions.get("created", 0)
    if created:
        mr_writes = first.writes - first.dashboard_writes
        print(f"  new MRs: {created}")
        print(f"  writes per new MR: {mr_writes / created:.2f} (target <= 2)")
        print(f"  requests per new MR: {first.requests / created:.2f}")
    print(
        f"  unchanged re-run: {again.writes} writes (target 0), "
        f"{again.requests} requests (target <= 12)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--manifests", type=int, default=155)
    parser.add_argument("--findings", type=int, default=620)
    parser.add_argument("--change-sets", type=int, default=200)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--siblings", action="store_true", help="only the sibling-conflict figures")
    args = parser.parse_args(argv)
    if args.siblings:
        with tempfile.TemporaryDirectory() as tmp:
            figures = [measure_siblings(g, Path(tmp) / g) for g in ("file", "file-family")]
        for fig in figures:
            if fig is None:
                print("siblings: skipped (the shared corpus is not there)")
                break
            per = fig.conflicts / fig.merged if fig.merged else 0.0
            print(
                f"grouping {fig.grouping:>11}: {fig.opened} MRs opened, {fig.merged} merged one "
                f"after another; {fig.conflicts} conflicts right after the merges "
                f"({per:.2f} per merged MR), {fig.left} left after the merge event's run"
            )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        lifecycle = measure(args.change_sets, args.changed, Path(tmp) / "lifecycle")
        n_files, runs = measure_run(args.manifests, args.findings, Path(tmp) / "run")
        worker = measure_worker(args.manifests, args.findings, Path(tmp) / "worker")
    print(f"lifecycle alone, {args.change_sets} change sets:")
    for run in lifecycle:
        print(
            f"{run.name:>17}: {run.seconds:6.2f}s  requests={run.requests:5d}  "
            f"writes={run.writes:5d}  {run.decisions}"
        )
    print(
        f"whole run: cd-config: {n_files} files, {args.manifests} workloads, {args.findings} findings"
    )
    _report("`remedy run` (bot.service.run_project_once):", runs)
    if worker is None:
        print("worker path: skipped (no redis-server on PATH)")
    else:
        _report("worker path (`remedy run-once`, bot.tasks.run_once):", worker)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
