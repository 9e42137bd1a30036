"""Issue 12 item 6: limits hold under concurrency.

Eight sync tasks of one project run at once (threads, as a worker with ``--pool=threads`` runs
them) against the GitLab emulator and a real Redis; MR creation is slowed so their "count, then
open" steps would interleave. The project's ``max_open`` must hold: reservation happens under the
project's publish lock.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot import service, tasks
from bot.settings import Settings
from tests.gitlab_emulator import GitLabEmulator
from tests.redis_server import RedisServer, redis_server_fixture  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cd-config"
REPORT = ROOT / "examples" / "kubescape-report.json"
PROJECT = "platform/cd-config"
MAX_OPEN = 4


def _project(emulator: GitLabEmulator) -> int:
    files = {
        p.relative_to(EXAMPLE).as_posix(): p.read_text() for p in EXAMPLE.rglob("*") if p.is_file()
    }
    config = re.sub(r"max_open: \d+", f"max_open: {MAX_OPEN}", files[".remedy.yaml"])
    files[".remedy.yaml"] = re.sub(r"max_new_per_hour: \d+", "max_new_per_hour: 50", config)
    pid = emulator.create_project(PROJECT, files)
    emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": REPORT.read_bytes()}}
    )
    return pid


@pytest.mark.slow
def test_concurrent_sync_tasks_never_open_more_than_max_open(
    redis_server: RedisServer, gitlab_emulator: GitLabEmulator, tmp_path: Path
) -> None:
    pid = _project(gitlab_emulator)
    settings = Settings(
        redis_url=redis_server.url,
        gitlab_url=gitlab_emulator.url,
        gitlab_token=gitlab_emulator.token,
        projects=[{"id": PROJECT, "report": {"kind": "gitlab-artifact"}}],
        data_dir=tmp_path / "data",
        metrics_port=0,
        max_retries=1,
        retry_backoff_max=1,
    )
    tasks.configure(settings)
    planned = service.plan_project(settings, settings.project(PROJECT))
    keys = [(cs.key, cs.findings_hash) for cs in planned.plan.change_sets]
    assert len(keys) > 2 * MAX_OPEN
    # every MR create takes a while: without a reservation, the others count too few open MRs
    gitlab_emulator.inject(
        status=200, delay=0.3, times=len(keys), method="POST", path_contains="/merge_requests"
    )

    def sync(item: tuple[str, str]) -> dict[str, Any]:
        return tasks._inline(tasks.sync_change_set.name, tasks._sync_change_set, PROJECT, *item)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(sync, keys))

    opened = [
        m
        for m in gitlab_emulator.merge_requests(pid)
        if m["state"] == "opened" and m["author"]["username"] == "kube-remedy"
    ]
    assert len(opened) == MAX_OPEN
    decisions = [r.get("decision") for r in results]
    assert decisions.count("created") == MAX_OPEN
    assert decisions.count("held-back") == len(keys) - MAX_OPEN
