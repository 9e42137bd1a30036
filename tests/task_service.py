"""A service module for task tests: a file-backed fake forge shared by worker processes.

It implements the service API the tasks call (plan_project / sync_one / refresh_dashboard).
State lives in ``$REMEDY_TEST_FORGE_DIR``: ``reports/<project>.json`` (the change sets a plan
finds), ``config.json`` (artificial delays), ``mrs.json`` (merge requests) and ``events.jsonl``
(every write, to detect duplicates). Like GitLab, "find the MR" and "open the MR" are separate
calls, so two workers syncing one change set at once would really open it twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ForgeTransientError, ReportError


@dataclass(frozen=True)
class FakeFinding:
    control_id: str
    severity: str


@dataclass(frozen=True)
class FakeChangeSet:
    key: str
    title: str
    findings: tuple[FakeFinding, ...]
    findings_hash: str


@dataclass(frozen=True)
class FakePlan:
    change_sets: tuple[FakeChangeSet, ...]
    unfixable: tuple[Any, ...] = ()


@dataclass(frozen=True)
class FakeDecision:
    action: str
    mr_id: int


def root() -> Path:
    return Path(os.environ["REMEDY_TEST_FORGE_DIR"])


def slug(project_id: str) -> str:
    return project_id.replace("/", "__")


def config() -> dict[str, Any]:
    path = root() / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


@contextmanager
def _locked() -> Iterator[None]:
    with open(root() / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _event(kind: str, **fields: Any) -> None:
    with _locked(), open(root() / "events.jsonl", "a") as out:
        out.write(json.dumps({"event": kind, "pid": os.getpid(), **fields}) + "\n")


def events() -> list[dict[str, Any]]:
    path = root() / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def mrs() -> dict[str, Any]:
    path = root() / "mrs.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_report(project_id: str, change_sets: dict[str, list[tuple[str, str]]]) -> None:
    """Test helper: the findings per change set key the next plan of ``project_id`` sees."""
    reports = root() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"{slug(project_id)}.json").write_text(json.dumps(change_sets))


def plan_project(settings: Any, project: Any) -> FakePlan:
    path = root() / "reports" / f"{slug(project.id)}.json"
    if not path.exists():
        raise ReportError(f"no report for {project.id} at {path}")
    data = json.loads(path.read_text())
    _event("plan", project=project.id)
    time.sleep(float(config().get("plan_delay", 0)))
    change_sets = tuple(
        FakeChangeSet(
            key=key,
            title=f"Fix {key}",
            findings=tuple(FakeFinding(c, s) for c, s in findings),
            findings_hash=json.dumps(findings),
        )
        for key, findings in sorted(data.items())
    )
    return FakePlan(change_sets=change_sets)


def sync_one(settings: Any, project: Any, plan: FakePlan, key: str) -> FakeDecision:
    conf = config()
    flaky = root() / "flaky"
    if flaky.exists() and int(flaky.read_text() or 0) > 0:
        with _locked():
            left = int(flaky.read_text())
            flaky.write_text(str(left - 1))
        raise ForgeTransientError("fake forge: 503 Service Unavailable")
    mr_key = f"{project.id}#{key}"
    change_set = next(cs for cs in plan.change_sets if cs.key == key)
    with _locked():
        existing = mrs().get(mr_key)
    time.sleep(float(conf.get("sync_delay", 0)))
    if existing is not None and existing["hash"] == change_set.findings_hash:
        _event("skip", mr=mr_key)
        return FakeDecision("skipped", existing["id"])
    with _locked():
        state = mrs()
        if existing is None:
            mr_id = len(state) + 1
            action = "created"
        else:
            mr_id = existing["id"]
            action = "updated"
        state[mr_key] = {"id": mr_id, "hash": change_set.findings_hash}
        (root() / "mrs.json").write_text(json.dumps(state))
    _event(action, mr=mr_key, id=mr_id)
    return FakeDecision(action, mr_id)


def refresh_dashboard(settings: Any, project: Any, plan: FakePlan) -> None:
    _event("dashboard", project=project.id, change_sets=len(plan.change_sets))
