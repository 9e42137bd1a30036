"""Celery tasks, locks and retries against a real Redis, and real worker/beat processes.

The service is `bot.service` itself, against the GitLab emulator over real HTTP (worker processes
reach it like GitLab): faults and delays are injected there (`GitLabEmulator.inject`), so the
tests exercise the real queue, locks, redelivery and merge-request lifecycle without patching
libraries.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from prometheus_client import REGISTRY

from bot import locks, service, tasks
from bot.errors import ConfigError, ForgeTransientError, ReportError
from bot.settings import Settings
from tests.gitlab_emulator import GitLabEmulator
from tests.processes import Procs, wait_until
from tests.redis_server import RedisServer, free_port, redis_server_fixture  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "platform/cd-config"
EXAMPLE = ROOT / "examples" / "cd-config"
EXAMPLE_REPORT = ROOT / "examples" / "kubescape-report.json"
NEW_PER_HOUR = 4
"""Merge requests a run opens in the process tests (the example plans more change sets)."""


def _emulated_project(emulator: GitLabEmulator, new_per_hour: int = 50, path: str = PROJECT) -> int:
    """The example cd-config (``new_per_hour`` new merge requests a run) with its report as
    the artifact of the kubescape job of a pipeline on main."""
    files = {
        p.relative_to(EXAMPLE).as_posix(): p.read_text() for p in EXAMPLE.rglob("*") if p.is_file()
    }
    files[".remedy.yaml"] = re.sub(r"max_open: \d+", "max_open: 50", files[".remedy.yaml"])
    files[".remedy.yaml"] = re.sub(
        r"max_new_per_hour: \d+", f"max_new_per_hour: {new_per_hour}", files[".remedy.yaml"]
    )
    pid = emulator.create_project(path, files)
    emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": EXAMPLE_REPORT.read_bytes()}}
    )
    return pid


def _gitlab_settings(server: RedisServer, emulator: GitLabEmulator, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=server.url,
        gitlab_url=emulator.url,
        gitlab_token=emulator.token,
        projects=[
            {
                "id": PROJECT,
                "cron": "* * * * *",
                "report": {
                    "kind": "gitlab-artifact",
                    "job": "kubescape",
                    "artifact_path": "kubescape-results.json",
                },
            }
        ],
        data_dir=tmp_path / "data",
        metrics_port=0,
        max_retries=2,
        retry_backoff_max=1,
    )


def make_settings(
    server: RedisServer, emulator: GitLabEmulator, tmp_path: Path, **overrides: Any
) -> Settings:
    values = {"max_retries": 3, **overrides}
    return _gitlab_settings(server, emulator, tmp_path).model_copy(update=values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a worker process needs to load the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDY_")}
    assert settings.gitlab_token is not None
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "REMEDY_REDIS_URL": settings.redis_url,
            "REMEDY_GITLAB_URL": settings.gitlab_url,
            "REMEDY_GITLAB_TOKEN": settings.gitlab_token.get_secret_value(),
            "REMEDY_PROJECTS": json.dumps([p.model_dump() for p in settings.projects]),
            "REMEDY_DATA_DIR": str(settings.data_dir),
            "REMEDY_METRICS_PORT": "0",
            "REMEDY_LOCK_TIMEOUT": str(settings.lock_timeout),
            "REMEDY_TASK_TIME_LIMIT": str(settings.task_time_limit),
            "REMEDY_VISIBILITY_TIMEOUT": str(settings.visibility_timeout),
            "REMEDY_MAX_RETRIES": str(settings.max_retries),
            "REMEDY_RETRY_BACKOFF_MAX": str(settings.retry_backoff_max),
        }
    )
    return env


@pytest.fixture
def procs_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Procs]]:
    made: list[Procs] = []

    def make(env: dict[str, str]) -> Procs:
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        procs = Procs(env, logs)
        made.append(procs)
        return procs

    yield make
    for procs in made:
        procs.close()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Celery]:
    """A Celery client like the web process: sends tasks by name and does not wait for them
    (outcomes are read from the emulator and the worker's JSON log lines)."""
    app = Celery("test-client", broker=redis_server.url, set_as_current=False)
    yield app
    app.close()


def _bot_mrs(emulator: GitLabEmulator, pid: int) -> list[dict[str, Any]]:
    return [m for m in emulator.merge_requests(pid) if m["author"]["username"] == "kube-remedy"]


def created_counts(emulator: GitLabEmulator, pid: int) -> Counter[str]:
    """Merge requests the bot opened, by branch (any state): a duplicate counts 2."""
    return Counter(m["source_branch"] for m in _bot_mrs(emulator, pid))


def _mr_posts(emulator: GitLabEmulator) -> int:
    return sum(
        1
        for method, path in emulator.requests
        if method == "POST" and path.endswith("/merge_requests")
    )


def _changed_report() -> bytes:
    """The example report with the frontend passing C-0055: its MR is updated."""
    report = json.loads(EXAMPLE_REPORT.read_text())
    for result in report["results"]:
        if result["resourceID"].endswith("/Deployment/frontend"):
            result["controls"] = [c for c in result["controls"] if c["controlID"] != "C-0055"]
    return json.dumps(report).encode()


# --------------------------------------------------------------------------- fast tests


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_is_transient_classifies_forge_redis_and_network_errors() -> None:
    assert tasks.is_transient(ForgeTransientError("503"))
    assert tasks.is_transient(redis.ConnectionError("down"))
    assert tasks.is_transient(ConnectionResetError())
    assert tasks.is_transient(tasks.LockBusy("busy"))
    assert not tasks.is_transient(ReportError("bad report"))
    assert not tasks.is_transient(ConfigError("bad config"))
    assert not tasks.is_transient(ValueError("bug"))


def test_celery_config_is_reliable(tmp_path: Path) -> None:
    settings = Settings(
        projects=[{"id": "a/one", "cron": "*/15 * * * *"}, {"id": "b/two", "cron": "0 6 * * 1-5"}],
        data_dir=tmp_path,
    )
    conf = tasks.celery_config(settings)
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    assert conf["broker_url"] == conf["result_backend"] == settings.redis_url
    schedule = conf["beat_schedule"]
    assert set(schedule) == {"run-project:a/one", "run-project:b/two"}
    entry = schedule["run-project:b/two"]
    assert entry["task"] == "remedy.run_project" and entry["args"] == ("b/two",)
    assert entry["schedule"].hour == {6} and entry["schedule"].day_of_week == {1, 2, 3, 4, 5}


def test_lock_excludes_others_and_releases_only_its_own(redis_server: RedisServer) -> None:
    client = redis_server.client()
    key = locks.lock_key("project", "p")
    with locks.held(client, key, "task-a", timeout=30) as first:
        assert first is not None
        assert locks.acquire(client, key, "task-b", timeout=30) is None
        assert locks.holder(client, key) == "task-a"
        assert not locks.release(client, locks.Lease(key, "task-b", 0))
    assert locks.holder(client, key) is None
    second = locks.acquire(client, key, "task-b", timeout=30)
    assert second is not None and second.fence > first.fence


def test_lock_is_reclaimed_by_a_redelivery_of_the_same_task(redis_server: RedisServer) -> None:
    client = redis_server.client()
    key = locks.lock_key("project", "p")
    assert locks.acquire(client, key, "task-a", timeout=30) is not None
    again = locks.acquire(client, key, "task-a", timeout=30)
    assert again is not None and again.reclaimed


def test_lock_expires_when_its_holder_dies(redis_server: RedisServer) -> None:
    client = redis_server.client()
    key = locks.lock_key("project", "p")
    assert locks.acquire(client, key, "dead-task", timeout=0.2) is not None
    time.sleep(0.3)
    assert locks.acquire(client, key, "task-b", timeout=30) is not None


def test_run_once_syncs_every_change_set_once_and_is_idempotent(
    redis_server: RedisServer, gitlab_emulator: GitLabEmulator, tmp_path: Path
) -> None:
    pid = _emulated_project(gitlab_emulator)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path)
    planned = service.plan_project(settings, settings.project(PROJECT)).plan
    findings = Counter(
        (f.control_id, f.severity.label)
        for f in [*(f for cs in planned.change_sets for f in cs.findings)]
        + [u.finding for u in planned.unfixable]
    )

    def decided(action: str) -> float:
        return _sample("remedy_merge_request_decisions_total", project=PROJECT, decision=action)

    created_before, updated_before = decided("created"), decided("updated")
    result = tasks.run_once(settings, PROJECT)
    keys = [cs.key for cs in planned.change_sets]
    assert result["status"] == "planned" and result["change_sets"] == keys
    assert decided("created") == created_before + len(keys)
    (control, severity), count = findings.most_common(1)[0]
    assert _sample("remedy_findings", project=PROJECT, control=control, severity=severity) == count
    assert created_counts(gitlab_emulator, pid) == Counter(f"remedy/{k}" for k in keys)
    assert gitlab_emulator.issues(pid), "the dashboard"

    gitlab_emulator.reset_counts()
    again = tasks.run_once(settings, PROJECT)
    assert again["synced"] == [] and gitlab_emulator.writes() == 0
    assert created_counts(gitlab_emulator, pid) == Counter(f"remedy/{k}" for k in keys)
    # A changed finding updates its merge request instead of opening another.
    gitlab_emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": _changed_report()}}
    )
    changed = tasks.run_once(settings, PROJECT)
    assert changed["synced"] == ["security-context/apps-shop-frontend"]
    assert decided("updated") == updated_before + 1
    assert created_counts(gitlab_emulator, pid) == Counter(f"remedy/{k}" for k in keys)


def test_transient_errors_are_retried_and_user_errors_are_not(
    redis_server: RedisServer, gitlab_emulator: GitLabEmulator, tmp_path: Path
) -> None:
    pid = _emulated_project(gitlab_emulator, new_per_hour=1)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path)
    gitlab_emulator.inject(status=503, times=2, method="POST", path_contains="/merge_requests")
    tasks.run_once(settings, PROJECT)
    assert _mr_posts(gitlab_emulator) == 3  # two 503s, then the merge request
    assert list(created_counts(gitlab_emulator, pid).values()) == [1]

    other = settings.model_copy(
        update={
            "projects": (
                settings.projects[0].model_copy(
                    update={
                        "report": settings.projects[0].report.model_copy(update={"job": "nope"})
                    }
                ),
            )
        }
    )
    result = tasks.run_once(other, PROJECT)
    # no such job: a user's problem (ForgeError), reported once, not retried
    assert result["status"] == "error" and result["kind"] == "ForgeError"
    assert "nope" in result["error"]


def test_transient_errors_stop_after_the_retry_bound(
    redis_server: RedisServer, gitlab_emulator: GitLabEmulator, tmp_path: Path
) -> None:
    pid = _emulated_project(gitlab_emulator, new_per_hour=1)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path, max_retries=2)
    gitlab_emulator.inject(status=503, times=10_000, method="POST", path_contains="/merge_requests")
    with pytest.raises(ForgeTransientError):
        tasks.run_once(settings, PROJECT)
    assert _mr_posts(gitlab_emulator) == 3  # first try + 2 retries
    assert created_counts(gitlab_emulator, pid) == Counter()


def test_a_run_that_finds_the_project_locked_is_skipped(
    redis_server: RedisServer, gitlab_emulator: GitLabEmulator, tmp_path: Path
) -> None:
    _emulated_project(gitlab_emulator)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path)
    key = locks.lock_key("project", PROJECT)
    assert locks.acquire(redis_server.client(), key, "another-run", timeout=30)
    gitlab_emulator.reset_counts()
    result = tasks.run_once(settings, PROJECT)
    assert result == {"status": "skipped", "reason": "locked", "project": PROJECT}
    assert gitlab_emulator.requests == []


def test_run_once_rejects_an_unknown_project(redis_server: RedisServer, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_server.url, projects=[{"id": PROJECT}], data_dir=tmp_path)
    with pytest.raises(ConfigError, match="'nope/nope' is not configured"):
        tasks.run_once(settings, "nope/nope")


# --------------------------------------------------------------------------- real processes


def _all_opened(emulator: GitLabEmulator, pid: int, count: int = NEW_PER_HOUR) -> bool:
    return sum(created_counts(emulator, pid).values()) >= count and bool(emulator.issues(pid))


@pytest.mark.slow
def test_two_concurrent_runs_on_one_project_the_second_is_skipped(
    redis_server: RedisServer,
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    procs_factory: Any,
    client: Celery,
) -> None:
    pid = _emulated_project(gitlab_emulator, NEW_PER_HOUR)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path)
    # the first run's plan waits on the report: the second run finds the project locked
    gitlab_emulator.inject(status=200, delay=1.5, path_contains="/artifacts/")
    env = settings_env(settings)
    env["REMEDY_METRICS_PORT"] = str(metrics_port := free_port())
    procs = procs_factory(env)
    procs.worker(concurrency=2)
    client.send_task("remedy.run_project", args=(PROJECT,))
    client.send_task("remedy.run_project", args=(PROJECT,))
    wait_until(lambda: _all_opened(gitlab_emulator, pid), 90, "the merge requests")
    wait_until(lambda: '"msg": "run-skipped"' in procs.output(), 30, "the second run")
    assert procs.output().count('"msg": "run-skipped"') == 1
    assert procs.output().count('"msg": "run-planned"') == 1
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    assert f'remedy_lock_busy_total{{project="{PROJECT}"}} 1.0'.encode() in metrics
    assert b'decision="created"' in metrics and b"remedy_task_duration_seconds_bucket" in metrics
    assert set(created_counts(gitlab_emulator, pid).values()) == {1}


@pytest.mark.slow
def test_a_worker_retries_transient_forge_errors_with_backoff(
    redis_server: RedisServer,
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    procs_factory: Any,
    client: Celery,
) -> None:
    pid = _emulated_project(gitlab_emulator, new_per_hour=1)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path)
    gitlab_emulator.inject(status=503, times=2, method="POST", path_contains="/merge_requests")
    procs = procs_factory(settings_env(settings))
    procs.worker(concurrency=1)
    client.send_task("remedy.run_project", args=(PROJECT,))
    wait_until(
        lambda: '"msg": "dashboard-refreshed"' in procs.output(),
        90,
        "the run to finish: " + procs.output()[-1500:],
    )
    assert list(created_counts(gitlab_emulator, pid).values()) == [1]
    assert procs.output().count('"msg": "retry"') == 2


@pytest.mark.slow
def test_worker_killed_mid_run_is_finished_by_a_new_worker_without_duplicates(
    redis_server: RedisServer,
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    procs_factory: Any,
    client: Celery,
) -> None:
    pid = _emulated_project(gitlab_emulator, NEW_PER_HOUR)
    # Short timeouts so the redelivery after the kill happens within the test.
    settings = make_settings(
        redis_server,
        gitlab_emulator,
        tmp_path,
        task_time_limit=5,
        visibility_timeout=6,
        lock_timeout=30,
    )
    # every merge request takes a second to open: the kill lands inside a sync
    gitlab_emulator.inject(
        status=200, times=10_000, delay=1.0, method="POST", path_contains="/merge_requests"
    )
    procs = procs_factory(settings_env(settings))
    worker = procs.worker(concurrency=1)
    client.send_task("remedy.run_project", args=(PROJECT,))
    wait_until(lambda: created_counts(gitlab_emulator, pid), 90, "a first merge request")
    time.sleep(0.5)  # inside the next sync: between "find" and "open"
    procs.kill(worker, signal.SIGKILL)
    assert sum(created_counts(gitlab_emulator, pid).values()) < NEW_PER_HOUR
    procs.worker(concurrency=2)
    wait_until(
        lambda: _all_opened(gitlab_emulator, pid),
        120,
        "every merge request and the dashboard: " + procs.output()[-1500:],
    )
    counts = created_counts(gitlab_emulator, pid)
    assert len(counts) == NEW_PER_HOUR and set(counts.values()) == {1}, procs.output()


@pytest.mark.slow
def test_redis_restarted_mid_run_loses_no_decision(
    redis_server: RedisServer,
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    procs_factory: Any,
    client: Celery,
) -> None:
    if not redis_server.can_restart:
        pytest.skip("restarting Redis needs a private redis-server, not REDIS_URL")
    pid = _emulated_project(gitlab_emulator, NEW_PER_HOUR)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path)
    gitlab_emulator.inject(
        status=200, times=10_000, delay=0.5, method="POST", path_contains="/merge_requests"
    )
    procs = procs_factory(settings_env(settings))
    procs.worker(concurrency=1)
    client.send_task("remedy.run_project", args=(PROJECT,))
    wait_until(lambda: created_counts(gitlab_emulator, pid), 90, "a first merge request")
    redis_server.restart()  # no persistence: the queue and the locks are gone
    decided = {m["source_branch"]: m["iid"] for m in _bot_mrs(gitlab_emulator, pid)}
    assert decided
    # The next scheduled run re-plans from the report and the forge and converges.
    client.send_task("remedy.run_project", args=(PROJECT,))
    wait_until(
        lambda: _all_opened(gitlab_emulator, pid),
        90,
        "all merge requests: " + procs.output()[-1500:],
    )
    assert set(created_counts(gitlab_emulator, pid).values()) == {1}
    now = {m["source_branch"]: m["iid"] for m in _bot_mrs(gitlab_emulator, pid)}
    assert all(now[branch] == iid for branch, iid in decided.items())


@pytest.mark.slow
def test_a_beat_tick_leads_to_a_run(
    redis_server: RedisServer,
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    procs_factory: Any,
) -> None:
    pid = _emulated_project(gitlab_emulator, new_per_hour=1)
    settings = make_settings(redis_server, gitlab_emulator, tmp_path)  # cron "* * * * *"
    procs = procs_factory(settings_env(settings))
    procs.entry_point("start_worker(settings, 1)", name="worker")
    procs.entry_point("start_beat(settings)", name="beat")
    wait_until(
        lambda: created_counts(gitlab_emulator, pid),
        90,
        "a scheduled run: " + procs.output()[-1500:],
    )
    assert list(created_counts(gitlab_emulator, pid).values()) == [1]


def test_lifecycle_decisions_are_logged_with_their_merge_request() -> None:
    from bot.forge.base import ChangeRequest
    from bot.lifecycle import SyncDecision

    change = ChangeRequest(
        id=7,
        branch="remedy/cs",
        title="t",
        description="",
        state="opened",
        web_url="https://gitlab.example.com/g/p/-/merge_requests/7",
    )
    decision = SyncDecision(
        action="updated",
        key="cs",
        branch="remedy/cs",
        reason="findings changed",
        change=change,
    )
    assert tasks._decision_fields(decision) == {
        "reason": "findings changed",
        "branch": "remedy/cs",
        "mr_id": 7,
        "web_url": "https://gitlab.example.com/g/p/-/merge_requests/7",
    }


# --------------------------------------------------------------------------- with the GitLab emulator


@pytest.mark.slow
def test_run_once_against_the_gitlab_emulator_opens_mrs_once(
    redis_server: RedisServer, gitlab_emulator: Any, tmp_path: Path
) -> None:
    pid = _emulated_project(gitlab_emulator)
    settings = _gitlab_settings(redis_server, gitlab_emulator, tmp_path)
    result = tasks.run_once(settings, PROJECT)
    assert result["status"] == "planned" and result["change_sets"]
    mrs = _bot_mrs(gitlab_emulator, pid)
    assert sorted(m["source_branch"].split("/", 1)[1] for m in mrs) == sorted(result["change_sets"])
    writes = gitlab_emulator.writes
    tasks.run_once(settings, PROJECT)  # nothing changed: the second run decides "unchanged"
    assert len(_bot_mrs(gitlab_emulator, pid)) == len(mrs)
    assert gitlab_emulator.writes == writes


@pytest.mark.slow
def test_a_worker_process_turns_a_run_into_mrs_on_the_gitlab_emulator(
    redis_server: RedisServer,
    gitlab_emulator: Any,
    tmp_path: Path,
    procs_factory: Any,
    client: Celery,
) -> None:
    pid = _emulated_project(gitlab_emulator)
    settings = _gitlab_settings(redis_server, gitlab_emulator, tmp_path)
    procs = procs_factory(settings_env(settings))
    procs.worker(concurrency=4)
    client.send_task("remedy.run_project", args=(PROJECT,))
    wait_until(
        lambda: '"msg": "dashboard-refreshed"' in procs.output(),
        120,
        "the run to finish: " + procs.output()[-2000:],
    )
    planned = json.loads(
        next(line for line in procs.output().splitlines() if '"msg": "run-planned"' in line)
    )
    mrs = _bot_mrs(gitlab_emulator, pid)
    assert len(mrs) == planned["change_sets"] > 0
    assert procs.output().count('"decision": "created"') == len(mrs)


# --------------------------------------------------------------------------- exit codes (issue 15)


def _cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """``remedy run-once`` reads its settings from REMEDY_* like a deployment."""
    for name in list(os.environ):
        if name.startswith("REMEDY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REMEDY_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REMEDY_GITLAB_URL", settings.gitlab_url)
    if settings.gitlab_token is not None:
        monkeypatch.setenv("REMEDY_GITLAB_TOKEN", settings.gitlab_token.get_secret_value())
    monkeypatch.setenv("REMEDY_PROJECTS", json.dumps([p.model_dump() for p in settings.projects]))
    monkeypatch.setenv("REMEDY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("REMEDY_METRICS_PORT", "0")
    monkeypatch.setenv("REMEDY_MAX_RETRIES", str(settings.max_retries))
    monkeypatch.setenv("REMEDY_RETRY_BACKOFF_MAX", str(settings.retry_backoff_max))


def test_run_once_with_redis_down_is_one_line_and_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        gitlab_token="t",
        projects=[{"id": PROJECT}],
        data_dir=tmp_path / "data",
    )
    _cli_env(monkeypatch, settings)
    code = main(["run-once", PROJECT])
    err = capsys.readouterr().err
    assert code == 3
    assert "Redis" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_run_once_config_error_exits_2(
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli import main

    settings = Settings(
        redis_url=redis_server.url, projects=[{"id": PROJECT}], data_dir=tmp_path / "data"
    )
    _cli_env(monkeypatch, settings)  # no GitLab token: a ConfigError
    code = main(["run-once", PROJECT])
    out, err = capsys.readouterr()
    assert "kind: ConfigError" in out
    assert code == 2 and "no GitLab token" in err


@pytest.mark.slow
def test_run_once_under_a_429_storm_retries_visibly_refreshes_the_dashboard_and_exits_3(
    redis_server: RedisServer,
    gitlab_emulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.cli import main

    pid = _emulated_project(gitlab_emulator)
    settings = _gitlab_settings(redis_server, gitlab_emulator, tmp_path).model_copy(
        update={"max_retries": 1}
    )
    _cli_env(monkeypatch, settings)
    gitlab_emulator.inject(
        status=429, times=10_000, retry_after=0, method="POST", path_contains="/merge_requests"
    )
    with caplog.at_level("INFO", logger="kube_remedy.tasks"):
        code = main(["run-once", PROJECT])
    assert code == 3
    assert "Traceback" not in capsys.readouterr().err
    messages = [r.getMessage() for r in caplog.records]
    assert "retry" in messages and "gitlab-transient" in messages
    # one retry layer: each MR create is tried 1 + max_retries times (the task's), never 6 x 6
    posts = [p for m, p in gitlab_emulator.requests if m == "POST" and p.endswith("merge_requests")]
    change_sets = [b for b in gitlab_emulator.branches(pid) if b.startswith("remedy/")]
    assert change_sets and len(posts) == 2 * len(change_sets)
    # the dashboard was refreshed despite the failures
    assert gitlab_emulator.issues(pid)


# --------------------------------------------------------------------------- one plan per run (issue 15)


def _reads_of(emulator: Any, fragment: str) -> int:
    return sum(1 for method, path in emulator.requests if method == "GET" and fragment in path)


@pytest.mark.slow
def test_the_worker_path_plans_once_with_the_request_budget_of_remedy_run(
    redis_server: RedisServer, gitlab_emulator: Any, tmp_path: Path
) -> None:
    from bot.service import run_project_once

    pid = _emulated_project(gitlab_emulator)
    settings = _gitlab_settings(redis_server, gitlab_emulator, tmp_path)
    gitlab_emulator.reset_counts()
    result = tasks.run_once(settings, PROJECT)
    mrs = _bot_mrs(gitlab_emulator, pid)
    assert mrs and sorted(result["synced"]) == sorted(result["change_sets"])
    # the report, .remedy.yaml and the dashboard are read once per run, not once per task
    assert _reads_of(gitlab_emulator, "/artifacts/") == 1
    files = Counter(
        path for method, path in gitlab_emulator.requests if "/repository/files/" in path
    )
    assert files and set(files.values()) == {1}  # the snapshot of main; no file read again
    assert _reads_of(gitlab_emulator, "/issues") == 2  # the run's plan, the dashboard task
    writes = [r for r in gitlab_emulator.requests if r[0] != "GET"]
    assert len(writes) == 2 * len(mrs) + 1  # a commit and an MR each, and the dashboard

    gitlab_emulator.reset_counts()
    again = tasks.run_once(settings, PROJECT)
    assert again["synced"] == [] and gitlab_emulator.writes() == 0
    worker_reads = len(gitlab_emulator.requests)
    gitlab_emulator.reset_counts()
    summary = run_project_once(settings, settings.project(PROJECT))
    assert {d.action for d in summary.result.decisions} <= {"unchanged", "kept"}
    assert gitlab_emulator.writes() == 0
    assert worker_reads == len(gitlab_emulator.requests) <= 12


@pytest.mark.slow
def test_a_sync_task_without_its_run_inputs_reads_gitlab_again(
    redis_server: RedisServer, gitlab_emulator: Any, tmp_path: Path
) -> None:
    """The run's inputs expired (or Redis restarted): the task re-plans from GitLab, and a task
    run twice opens one MR."""
    pid = _emulated_project(gitlab_emulator)
    settings = _gitlab_settings(redis_server, gitlab_emulator, tmp_path)
    tasks.configure(settings)
    from bot import service

    run = service.plan_run(settings, settings.project(PROJECT))
    key, digest = run.pending[0]
    first = tasks._inline(
        tasks.sync_change_set.name, tasks._sync_change_set, PROJECT, key, digest, "gone"
    )
    tasks.store_inputs(PROJECT, run.inputs_id, run.inputs)
    again = tasks._inline(
        tasks.sync_change_set.name,
        tasks._sync_change_set,
        PROJECT,
        key,
        digest,
        run.inputs_id,
    )
    assert first["decision"] == "created" and again["decision"] == "unchanged"
    assert [m["source_branch"] for m in _bot_mrs(gitlab_emulator, pid)] == [f"remedy/{key}"]


def _files_of(forge: Any, iid: int) -> set[str]:
    return {c["new_path"] for c in forge.merge_request_changes(iid)["changes"]}


@pytest.mark.slow
def test_a_merged_bot_mr_regenerates_its_siblings_on_the_same_file_at_once(
    redis_server: RedisServer, gitlab_emulator: Any, tmp_path: Path
) -> None:
    from bot.command_tasks import handle_mr_event
    from bot.forge.gitlab import GitLabForge

    pid = _emulated_project(gitlab_emulator)
    settings = _gitlab_settings(redis_server, gitlab_emulator, tmp_path)
    tasks.run_once(settings, PROJECT)
    forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT)
    # The frontend's security-context MR and its siblings that split off (run as non-root,
    # read-only root) each add the container's securityContext block: merging one makes the
    # others conflict.
    path = "apps/shop/frontend.yaml"
    on_file = {
        mr["source_branch"]: mr["iid"]
        for mr in _bot_mrs(gitlab_emulator, pid)
        if path in _files_of(forge, mr["iid"])
    }
    merged = on_file.pop("remedy/security-context/apps-shop-frontend")
    siblings = sorted(on_file.values())
    gitlab_emulator.add_user("alice")
    gitlab_emulator.merge(pid, merged, by="alice")

    def state(iid: int) -> dict[str, Any]:
        return next(m for m in gitlab_emulator.merge_requests(pid) if m["iid"] == iid)

    conflicted = [i for i in siblings if state(i)["has_conflicts"]]
    assert conflicted, f"the siblings on {path} should conflict once !{merged} is merged"
    sent: list[tuple[str, list[Any]]] = []
    event = {"project": PROJECT, "mr_iid": merged, "kind": "merged"}
    handle_mr_event(settings, None, event, lambda name, args: sent.append((name, args)))
    assert sent == [("remedy.run_project", [PROJECT, True])]
    # what the worker does with it (the run waits for a run in progress instead of skipping)
    tasks.run_once(settings, PROJECT)
    for iid in siblings:
        mr = state(iid)
        assert mr["state"] == "opened" and not mr["has_conflicts"], mr["detailed_merge_status"]
        assert mr["merge_status"] == "can_be_merged"
