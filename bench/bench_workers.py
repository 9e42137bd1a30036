"""Throughput of the task pipeline: projects' change sets through 1 and 2 worker processes.

    .venv/bin/python bench/bench_workers.py [--projects 20] [--change-sets 3] [--latency 0.02]

Starts a private redis-server, the GitLab emulator (tests/gitlab_emulator, each write waits
``--latency`` seconds, like a GitLab API call) holding one copy of the example cd-config and its
Kubescape report per project (``--change-sets`` new merge requests a run), and N real Celery
worker processes running `bot.service`; enqueues one run per project and waits for every
dashboard. Prints change sets per second for each N (planning included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from celery import Celery  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402


def run(workers: int, projects: int, change_sets: int, latency: float, concurrency: int) -> float:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_workers needs redis-server on PATH")
    from tests.gitlab_emulator import GitLabEmulator
    from tests.test_tasks import _bot_mrs, _emulated_project

    server = RedisServer(binary)
    server.start()
    data = Path(tempfile.mkdtemp(prefix="remedy-bench-"))
    emulator = GitLabEmulator(data / "gitlab")
    emulator.start()
    ids = [f"team-{n:03d}/cd-config" for n in range(projects)]
    pids = [_emulated_project(emulator, change_sets, path=project) for project in ids]
    emulator.inject(status=200, times=10**9, delay=latency, method="POST")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDY_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "REMEDY_REDIS_URL": server.url,
            "REMEDY_GITLAB_URL": emulator.url,
            "REMEDY_GITLAB_TOKEN": emulator.token,
            "REMEDY_PROJECTS": json.dumps([{"id": p} for p in ids]),
            "REMEDY_DATA_DIR": str(data / "data"),
            "REMEDY_METRICS_PORT": "0",
        }
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bot.tasks",
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"bench{n}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for n in range(workers)
    ]
    client = Celery("bench", broker=server.url, set_as_current=False)
    try:
        time.sleep(2)  # let the workers connect before the clock starts
        start = time.perf_counter()
        for project in ids:
            client.send_task("remedy.run_project", args=(project,))
        total = projects * change_sets
        while True:
            done = sum(1 for pid in pids if emulator.issues(pid))
            if done >= projects:
                break
            if time.perf_counter() - start > 1800:
                raise SystemExit(f"timed out: {done}/{projects} dashboards")
            time.sleep(0.5)
        elapsed = time.perf_counter() - start
        created = sum(len(_bot_mrs(emulator, pid)) for pid in pids)
        assert created == total, f"{created} merge requests for {total} change sets"
        return total / elapsed
    finally:
        client.close()
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        emulator.stop()
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--change-sets", type=int, default=3, help="new merge requests a run opens")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per forge write")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker process")
    args = parser.parse_args()
    print(
        f"{args.projects} projects x {args.change_sets} change sets, forge latency "
        f"{args.latency * 1000:.0f} ms, {args.concurrency} threads per worker"
    )
    for workers in (1, 2):
        rate = run(workers, args.projects, args.change_sets, args.latency, args.concurrency)
        print(f"{workers} worker process(es): {rate:7.1f} change sets/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
