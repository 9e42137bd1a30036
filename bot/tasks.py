"""The Celery app, its tasks and the beat schedule: thin adapters around `bot.service`.

Tasks take ids and plain JSON, re-read state (settings, the report, the forge), call one service
function and are safe to run twice, which is what makes ``acks_late`` safe: a task whose worker
dies is delivered again and converges on the same merge requests.

    run_project(project_id)        lock the project, plan once, fan out:
      -> sync_change_set(project_id, key, findings_hash, inputs_id)   one per change set that
                                                                      needs a write, in parallel
      -> refresh_dashboard(project_id, inputs_id)                     once all of them are done

One plan per run: the run task plans (`bot.service.plan_run`), finds which change sets need a
write at all, and stores the reads its plan made in Redis under ``inputs_id`` (the default branch's commit and a digest; `RUN_INPUTS_TTL`). Sync tasks re-plan
from those inputs without asking GitLab again; when they are gone (expired, Redis restarted) a
task re-reads everything, as before. A run with nothing to write refreshes the dashboard itself.

Only errors `is_transient` accepts are retried (exponential backoff with jitter, bounded);
a `RemedyError` is a user's problem: logged, counted, and left for the dashboard.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import socket
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import redis
from celery import Celery, Task, chord, signals
from celery.schedules import crontab
from celery.utils.time import get_exponential_backoff_interval
from kombu.exceptions import OperationalError as KombuOperationalError

from bot import locks, service
from bot.errors import ForgeTransientError, RemedyError
from bot.lifecycle import SyncDecision
from bot.observability import (
    LOCK_SKIPS,
    TASK_FAILURES,
    configure_logging,
    log_decision,
    log_event,
    record_findings,
    serve_metrics,
    timed,
)
from bot.plan import Plan
from bot.settings import ProjectConfig, Settings, load_settings, parse_cron


class LockBusy(Exception):
    """A change set is being synced by another worker right now; retried shortly."""


class RedisUnavailable(RemedyError):
    """Redis (locks and queue) cannot be reached: try again later (exit code 3)."""

    exit_code = 3


PUBLISH_WAIT = 120.0
"""Seconds a sync task waits for its project's publish lock before retrying later."""
RUN_INPUTS_TTL = 6 * 3600
"""Seconds a run's plan inputs stay in Redis for its sync tasks (retries included)."""


def is_transient(exc: BaseException) -> bool:
    """The one classifier of retryable errors: forge 429/5xx/network, Redis and socket errors."""
    if isinstance(exc, RemedyError):
        return isinstance(exc, ForgeTransientError)
    return isinstance(
        exc,
        LockBusy
        | redis.ConnectionError
        | redis.TimeoutError
        | KombuOperationalError
        | ConnectionError
        | TimeoutError
        | socket.gaierror,
    )


# --------------------------------------------------------------------------- settings


_current: Settings | None = None


def configure(settings: Settings) -> None:
    """Use these settings in this process (the CLI passes what it loaded)."""
    global _current
    _current = settings
    _redis.cache_clear()
    app.conf.update(celery_config(settings))


def get_settings() -> Settings:
    global _current
    if _current is None:
        _current = load_settings()
    return _current


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def redis_client() -> redis.Redis:
    return _redis(get_settings().redis_url)


# --------------------------------------------------------------------------- app


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """One beat entry per configured project, at its cron expression."""
    return {
        f"run-project:{project.id}": {
            "task": "remedy.run_project",
            "schedule": crontab(**parse_cron(project.cron)),
            "args": (project.id,),
        }
        for project in settings.projects
    }


TASK_MODULES = ("bot.command_tasks", "bot.review_tasks")
"""Other modules defining tasks on this app; a worker imports them so it can run their tasks."""


def _task_modules() -> list[str]:
    # A module that is not part of this installation is left out; one that is present but
    # broken still fails loudly when the worker imports it.
    return [name for name in TASK_MODULES if importlib.util.find_spec(name) is not None]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration derived from settings."""
    return {
        "imports": _task_modules(),
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            # Sweep for tasks of dead workers every few seconds (kombu's default is ~100 s).
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": max(1, settings.task_time_limit - 30),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 86400,
        "timezone": "UTC",
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


app = Celery("kube-remedy")
# Lazy: importing this module (``celery -A bot.tasks``) reads settings only when Celery needs them.
app.add_defaults(lambda: celery_config(get_settings()))


class RemedyTask(Task):
    """Base task: bounded exponential backoff with jitter for transient errors only."""

    retry_backoff = 2
    """Seconds; the n-th retry waits a random time up to min(2 * 2**n, retry_backoff_max)."""
    acks_late = True

    def retry_transient(self, exc: BaseException) -> Any:
        """Retry a transient error with backoff; count it; raise when the bound is reached."""
        settings = get_settings()
        TASK_FAILURES.labels(task=self.name, kind="transient").inc()
        retries = self.request.retries
        retry_after = getattr(exc, "retry_after", None)
        countdown = get_exponential_backoff_interval(
            factor=self.retry_backoff,
            retries=retries,
            maximum=settings.retry_backoff_max,
            full_jitter=True,
        )
        if retry_after:
            countdown = max(countdown, retry_after)
        log_event(
            "retry", task=self.name, retries=retries, countdown=countdown, error=type(exc).__name__
        )
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.max_retries)


def _adapter(task: RemedyTask, body: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run a task body: classify its errors, time it. Returns the body's JSON result."""
    with timed(task.name):
        try:
            return body(task, *args)
        except RemedyError as exc:
            if is_transient(exc):
                task.retry_transient(exc)
            TASK_FAILURES.labels(task=task.name, kind="user").inc()
            log_event(
                "user-error",
                task=task.name,
                args=list(args),
                error=str(exc),
                kind=type(exc).__name__,
            )
            return {"status": "error", "error": str(exc), "kind": type(exc).__name__}
        except Exception as exc:
            if is_transient(exc):
                task.retry_transient(exc)
            TASK_FAILURES.labels(task=task.name, kind="bug").inc()
            raise


def _plan_findings(plan: Plan) -> Iterator[tuple[str, str]]:
    """(control, severity) of every finding of the plan, fixed or not."""
    for cs in plan.change_sets:
        for finding in cs.findings:
            yield finding.control_id, finding.severity.label
    for unfixable in plan.unfixable:
        yield unfixable.finding.control_id, unfixable.finding.severity.label


@app.task(bind=True, base=RemedyTask, name="remedy.run_project")
def run_project(self: RemedyTask, project_id: str, wait: bool = False) -> dict[str, Any]:
    """Plan one project under its lock and fan out one sync task per change set.

    ``wait`` (a run asked for by an event, such as a bot MR merged, whose siblings must be
    regenerated now): when another run holds the lock, retry shortly instead of skipping."""
    return _adapter(self, _run_project, project_id, _enqueue, wait)


def _inputs_key(project_id: str, inputs_id: str) -> str:
    return f"remedy:run-inputs:{project_id}:{inputs_id}"


def store_inputs(project_id: str, inputs_id: str, inputs: dict[str, Any]) -> None:
    """Keep a run's plan inputs for its tasks (compressed JSON, `RUN_INPUTS_TTL`)."""
    data = zlib.compress(json.dumps(inputs, sort_keys=True).encode())
    redis_client().set(_inputs_key(project_id, inputs_id), data, ex=RUN_INPUTS_TTL)


def load_inputs(project_id: str, inputs_id: str | None) -> dict[str, Any] | None:
    """A run's plan inputs, or None when there are none (then the task re-reads GitLab)."""
    if not inputs_id:
        return None
    data = redis_client().get(_inputs_key(project_id, inputs_id))
    if data is None:
        log_event("run-inputs-missing", project=project_id, inputs=inputs_id)
        return None
    loaded = json.loads(zlib.decompress(data))  # type: ignore[arg-type]
    return loaded if isinstance(loaded, dict) else None


def _enqueue(project_id: str, keys: list[tuple[str, str]], inputs_id: str | None = None) -> None:
    """Fan out: the sync tasks in parallel, then the dashboard once all are done."""
    syncs = [sync_change_set.si(project_id, key, digest, inputs_id) for key, digest in keys]
    dashboard = refresh_dashboard.si(project_id, inputs_id)
    if syncs:
        chord(syncs)(dashboard)
    else:
        dashboard.delay()


def _run_project(
    task: RemedyTask,
    project_id: str,
    fan_out: Callable[[str, list[tuple[str, str]], str | None], None] = _enqueue,
    wait: bool = False,
) -> dict[str, Any]:
    settings = get_settings()
    project = settings.project(project_id)
    token = task.request.id or "local"
    key = locks.lock_key("project", project_id)
    with locks.held(redis_client(), key, token, settings.lock_timeout) as lease:
        if lease is None:
            if wait:
                raise LockBusy(f"{project_id} is being run; this run waits for it")
            LOCK_SKIPS.labels(project=project_id).inc()
            log_event(
                "run-skipped",
                project=project_id,
                reason="project lock held by another run",
                holder=locks.holder(redis_client(), key),
            )
            return {"status": "skipped", "reason": "locked", "project": project_id}
        run = service.plan_run(settings, project)
        plan, pending = run.pp.plan, list(run.pending)
        record_findings(project_id, _plan_findings(plan))
        unfixable = len(plan.unfixable)
        keys = [(cs.key, cs.findings_hash) for cs in plan.change_sets]
        inputs_id: str | None = None
        if pending:
            inputs_id = run.inputs_id
            store_inputs(project_id, inputs_id, run.inputs)
        log_event(
            "run-planned",
            project=project_id,
            change_sets=len(keys),
            to_sync=len(pending),
            unfixable=unfixable,
            fence=lease.fence,
            reclaimed=lease.reclaimed,
        )
        if not pending:
            # nothing to write: the dashboard with the forge that planned, no task, no re-read
            service.finish_run(settings, run)
            log_event("dashboard-refreshed", project=project_id)
        else:
            # Enqueued under the lock, so two runs never fan out the same project at once; the
            # sync tasks themselves take per-change-set locks.
            fan_out(project_id, pending, inputs_id)
    return {
        "status": "planned",
        "project": project_id,
        "change_sets": [k for k, _ in keys],
        "synced": [k for k, _ in pending],
        "unfixable": unfixable,
    }


@app.task(bind=True, base=RemedyTask, name="remedy.sync_change_set")
def sync_change_set(
    self: RemedyTask, project_id: str, key: str, findings_hash: str, inputs_id: str | None = None
) -> dict[str, Any]:
    """Create or update the merge request of one change set (idempotent).

    When its retries are used up it returns a failed result rather than raising, so the
    chord still refreshes the dashboard at the end of the run."""
    try:
        return _adapter(self, _sync_change_set, project_id, key, findings_hash, inputs_id)
    except Exception as exc:
        if not is_transient(exc) or self.request.retries < get_settings().max_retries:
            raise
        log_event("gave-up", task=self.name, key=key, error=str(exc) or type(exc).__name__)
        return {"status": "failed", "key": key, "error": str(exc), "kind": type(exc).__name__}


def _sync_change_set(
    task: RemedyTask, project_id: str, key: str, findings_hash: str, inputs_id: str | None = None
) -> dict[str, Any]:
    settings = get_settings()
    project = settings.project(project_id)
    lock = locks.lock_key("change-set", project_id, key)
    with locks.held(
        redis_client(), lock, task.request.id or "local", settings.lock_timeout
    ) as lease:
        if lease is None:
            raise LockBusy(f"change set {key} of {project_id} is being synced elsewhere")
        inputs = load_inputs(project_id, inputs_id)
        pp = None
        if inputs is None:
            # Re-read state: the plan is deterministic for a report, so this finds the same
            # change set unless a newer report arrived; then the newer run owns the decision.
            pp = service.plan_project(settings, project)
            current = {cs.key: cs for cs in pp.plan.change_sets}
            change_set = current.get(key)
            if change_set is None or change_set.findings_hash != findings_hash:
                log_decision(
                    project_id, key, "superseded", reason="the report changed since planning"
                )
                return {"status": "superseded", "key": key}
        # Limits (max_open, max_new_per_hour) count the MRs GitLab lists, so "count, then
        # open" must not interleave between workers: one publish at a time per project.
        # Its own token per attempt (a redelivery of this task must queue too, not re-enter),
        # and a lifetime of one task at most: a dead worker's lock frees itself soon.
        publish = locks.lock_key("publish", project_id)
        token = f"{task.request.id or 'local'}:{uuid.uuid4()}"
        with locks.waiting(
            redis_client(), publish, token, settings.task_time_limit, PUBLISH_WAIT
        ) as held:
            if held is None:
                raise LockBusy(f"{project_id} is publishing another change set")
            if pp is not None:
                decision: SyncDecision | None = service.sync_one(settings, project, pp, key)
            else:
                decision = service.sync_planned(settings, project, inputs or {}, key, findings_hash)
        if decision is None:
            log_decision(project_id, key, "superseded", reason="the report changed since planning")
            return {"status": "superseded", "key": key}
        log_decision(project_id, key, decision.action, **_decision_fields(decision))
        if decision.action == "failed" and decision.error is not None:
            raise decision.error  # classified by the adapter: a transient one is retried
        return {"status": "synced", "key": key, "decision": decision.action}


def _decision_fields(decision: SyncDecision) -> dict[str, Any]:
    """Log fields of a decision: why, which branch, which MR."""
    fields: dict[str, Any] = {
        name: value
        for name, value in (("reason", decision.reason), ("branch", decision.branch))
        if value
    }
    if decision.change is not None:
        fields["mr_id"] = decision.change.id
        if decision.change.web_url:
            fields["web_url"] = decision.change.web_url
    return fields


@app.task(bind=True, base=RemedyTask, name="remedy.refresh_dashboard")
def refresh_dashboard(
    self: RemedyTask, project_id: str, inputs_id: str | None = None
) -> dict[str, Any]:
    """Rewrite the project's dashboard issue from the current plan and merge requests."""
    return _adapter(self, _refresh_dashboard, project_id, inputs_id)


def _refresh_dashboard(
    task: RemedyTask, project_id: str, inputs_id: str | None = None
) -> dict[str, Any]:
    settings = get_settings()
    project = settings.project(project_id)
    lock = locks.lock_key("dashboard", project_id)
    with locks.held(
        redis_client(), lock, task.request.id or "local", settings.lock_timeout
    ) as lease:
        if lease is None:
            raise LockBusy(f"dashboard of {project_id} is being written elsewhere")
        inputs = load_inputs(project_id, inputs_id)
        if inputs is not None:
            service.refresh_planned(settings, project, inputs)
        else:
            service.refresh_dashboard(settings, project, service.plan_project(settings, project))
    log_event("dashboard-refreshed", project=project_id)
    return {"status": "refreshed", "project": project_id}


# --------------------------------------------------------------------------- process entry points


@signals.worker_init.connect
def _on_worker_init(**_: Any) -> None:
    configure_logging()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if serve_metrics(settings.metrics_port):
        log_event("metrics-listening", port=settings.metrics_port)


@signals.beat_init.connect
def _on_beat_init(**_: Any) -> None:
    configure_logging()
    get_settings().data_dir.mkdir(parents=True, exist_ok=True)


def start_worker(settings: Settings, concurrency: int | None = None) -> None:
    """Run a worker in this process (``remedy worker``); threads, since tasks wait on I/O.

    ``concurrency`` defaults to the ``worker_concurrency`` setting."""
    configure(settings)
    concurrency = concurrency or settings.worker_concurrency
    app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def start_beat(settings: Settings) -> None:
    """Run the scheduler in this process (``remedy beat``); run exactly one per Redis."""
    configure(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.start(
        ["beat", "--loglevel=INFO", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    )


class _InlineTask:
    """What the task bodies need of a Celery task, for runs without a worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.request = SimpleNamespace(id=f"run-once-{uuid.uuid4()}", retries=0)


def _inline(name: str, body: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run a task body in this process with the workers' error policy and retry bound."""
    settings = get_settings()
    task = _InlineTask(name)
    while True:
        with timed(name):
            try:
                return body(task, *args)
            except Exception as exc:
                if not is_transient(exc) or task.request.retries >= settings.max_retries:
                    if isinstance(exc, RemedyError) and not is_transient(exc):
                        TASK_FAILURES.labels(task=name, kind="user").inc()
                        log_event("user-error", task=name, args=list(args), error=str(exc))
                        return {"status": "error", "error": str(exc), "kind": type(exc).__name__}
                    TASK_FAILURES.labels(
                        task=name, kind="transient" if is_transient(exc) else "bug"
                    ).inc()
                    raise
                TASK_FAILURES.labels(task=name, kind="transient").inc()
                delay = get_exponential_backoff_interval(
                    factor=RemedyTask.retry_backoff,
                    retries=task.request.retries,
                    maximum=settings.retry_backoff_max,
                    full_jitter=True,
                )
                log_event("retry", task=name, retries=task.request.retries, countdown=delay)
                task.request.retries += 1
                time.sleep(delay)


def run_once(settings: Settings, project: str | ProjectConfig) -> dict[str, Any]:
    """Run one project now, in this process, without a worker (``remedy run-once PROJECT``).

    Same bodies, locks and retry policy as the workers; the change sets are synced one after the
    other, then the dashboard. Needs Redis for the locks."""
    configure(settings)
    project_id = project.id if isinstance(project, ProjectConfig) else project
    settings.project(project_id)
    try:
        redis_client().ping()
    except (redis.RedisError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {settings.redis_url_safe} ({type(exc).__name__}); "
            "run-once needs it for the project locks: start it, or use `remedy run`"
        ) from None

    failures: list[Exception] = []

    def inline_fan_out(pid: str, keys: list[tuple[str, str]], inputs_id: str | None) -> None:
        for key, digest in keys:
            try:
                _inline(sync_change_set.name, _sync_change_set, pid, key, digest, inputs_id)
            except Exception as exc:
                # Like a worker: one change set giving up does not stop the others.
                failures.append(exc)
        _inline(refresh_dashboard.name, _refresh_dashboard, pid, inputs_id)

    result = _inline(run_project.name, _run_project, project_id, inline_fan_out)
    if failures:
        raise failures[0]
    return result


if __name__ == "__main__":  # pragma: no cover - ``python -m bot.tasks`` for debugging
    sys.exit(app.start())
