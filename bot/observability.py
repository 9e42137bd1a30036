"""Structured decision logs (one JSON line each) and Prometheus metrics of the bot.

Log lines carry the project, the change set key and the decision, never a secret: callers pass
ids and outcomes only, and the formatter drops any field whose name looks like a credential.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DECISIONS = "kube_remedy.decisions"
_SECRETISH = ("token", "secret", "password", "authorization")

FINDINGS = Gauge(
    "remedy_findings",
    "Failed findings in the latest report of a project",
    ["project", "control", "severity"],
)
MERGE_REQUESTS = Counter(
    "remedy_merge_request_decisions_total",
    "Merge request decisions (created, updated, skipped, held-back, ...)",
    ["project", "decision"],
)
TASK_DURATION = Histogram(
    "remedy_task_duration_seconds",
    "Duration of Celery tasks",
    ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
TASK_FAILURES = Counter(
    "remedy_task_failures_total",
    "Task failures by kind (transient = retried, user = reported, bug = unexpected)",
    ["task", "kind"],
)
LOCK_SKIPS = Counter(
    "remedy_lock_busy_total", "Runs skipped because the project lock was held", ["project"]
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(
                {k: v for k, v in fields.items() if not any(s in k.lower() for s in _SECRETISH)}
            )
        if record.exc_info and record.exc_info[0] is not None:
            payload["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(payload, default=str, sort_keys=True)


def configure_logging(level: int = logging.INFO, *, queued: bool = False) -> None:
    """Send the bot's loggers to stderr as JSON lines (idempotent). ``queued`` (the web
    process): the caller only puts the record on a queue; a thread formats the queued records
    and writes them in batches (`BatchWriter`)."""
    root = logging.getLogger("kube_remedy")
    if any(isinstance(h, logging.handlers.QueueHandler) for h in root.handlers) or any(
        isinstance(h.formatter, JsonFormatter) for h in root.handlers
    ):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    if queued:
        writer = BatchWriter(handler)
        writer.start()
        atexit.register(writer.stop)  # flush the lines still queued
        root.addHandler(_FieldsQueueHandler(writer.records))
    else:
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


class BatchWriter:
    """Formats queued records with ``handler`` and writes them to its stream, every
    ``interval`` seconds all at once, from its own thread.

    Unlike `logging.handlers.QueueListener` (one wake-up, one format and one write call per
    record), a record costs the web process's event loop only a queue append, and its thread
    takes the GIL once per batch: the lines of a busy second reach the stream in a few writes,
    at most ``interval`` late.
    """

    def __init__(self, handler: logging.StreamHandler[Any], interval: float = 0.05) -> None:
        self.handler = handler
        self.interval = interval
        self.records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued and end the thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Write every record queued so far (one write call)."""
        lines: list[str] = []
        while True:
            try:
                record = self.records.get_nowait()
            except queue.Empty:
                break
            try:
                lines.append(self.handler.format(record) + self.handler.terminator)
            except Exception:  # a record that cannot be formatted; as logging does
                self.handler.handleError(record)
        if lines:
            self.handler.acquire()
            try:
                self.handler.stream.write("".join(lines))
                self.handler.flush()
            finally:
                self.handler.release()


def log_decision(project: str, key: str | None, decision: str, **fields: Any) -> None:
    """Record one decision: a log line and a counter (``decision`` e.g. created, skipped)."""
    MERGE_REQUESTS.labels(project=project, decision=decision).inc()
    logging.getLogger(DECISIONS).info(
        decision, extra={"fields": {"project": project, "key": key, "decision": decision, **fields}}
    )


class _FieldsQueueHandler(logging.handlers.QueueHandler):
    """Queues the record as it is (its ``fields`` formatted later by `JsonFormatter`)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg, record.args = record.getMessage(), None
        return record


_EVENTS = logging.getLogger("kube_remedy.tasks")


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    _EVENTS.log(level, event, extra={"fields": fields})


def record_findings(project: str, findings: Iterable[tuple[str, str]]) -> None:
    """Replace the project's finding gauges with counts of (control, severity) pairs."""
    counts: dict[tuple[str, str], int] = {}
    for control, severity in findings:
        counts[(control, severity)] = counts.get((control, severity), 0) + 1
    for labels in list(FINDINGS._metrics):  # drop series of findings that went away
        if labels[0] == project and (labels[1], labels[2]) not in counts:
            FINDINGS.remove(*labels)
    for (control, severity), count in counts.items():
        FINDINGS.labels(project=project, control=control, severity=severity).set(count)


@contextmanager
def timed(task: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        TASK_DURATION.labels(task=task).observe(time.perf_counter() - start)


def serve_metrics(port: int) -> bool:
    """Expose /metrics on ``port`` (0 = disabled). Returns whether a server was started."""
    if port <= 0:
        return False
    start_http_server(port)
    return True
