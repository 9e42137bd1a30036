"""Pipeline -> bot: a finished scan of the default branch queues a run of the project, once.

The payloads follow GitLab's documented "Pipeline Hook" (the native project webhook with
"Pipeline events"), written here; `bot.ci.pipeline_event` builds the same shape inside CI. The
end-to-end test runs ``remedy notify-pipeline`` against the web app under uvicorn on a real
socket, with a Redis-backed intake and a Celery worker that runs the project.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bot.cli import main
from bot.intake import MemoryDedupe
from bot.settings import Settings
from bot.web import create_app
from bot.web_settings import WebSettings
from bot.webhooks import is_scan_job, pipeline_key
from tests.gitlab_emulator import GitLabEmulator
from tests.processes import Procs, wait_until
from tests.redis_server import RedisServer, free_port, redis_server_fixture  # noqa: F401 - fixture
from tests.test_tasks import _bot_mrs, _emulated_project
from tests.test_web import Recorder, TestClient, gl_project, gl_user, post_hook

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "platform/cd-config"
SECRET = "pipeline-webhook-secret"


def pipeline_hook(
    *,
    ref: str = "main",
    pipeline_id: int = 31,
    status: str = "success",
    builds: tuple[tuple[str, str], ...] = (("kubescape", "success"),),
    tag: bool = False,
    source: str = "push",
) -> dict[str, Any]:
    """GitLab's Pipeline Hook as a project webhook sends it (fields as documented)."""
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline_id,
            "iid": 12,
            "name": None,
            "ref": ref,
            "tag": tag,
            "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
            "before_sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
            "source": source,
            "status": status,
            "detailed_status": status,
            "stages": ["build", "test", ".post"],
            "created_at": "2026-11-22 10:00:00 UTC",
            "finished_at": "2026-11-22 10:04:00 UTC",
            "duration": 240,
            "queued_duration": 3,
            "variables": [],
            "url": "http://gitlab.test/platform/cd-config/-/pipelines/31",
        },
        "merge_request": None,
        "user": gl_user(),
        "project": gl_project(),
        "commit": {
            "id": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
            "message": "Bump web",
            "title": "Bump web",
            "timestamp": "2026-11-22T10:00:00+00:00",
            "url": "http://gitlab.test/platform/cd-config/-/commit/bcbb5ec3",
            "author": {"name": "Alice", "email": "[REDACTED]"},
        },
        "builds": [
            {
                "id": 380 + n,
                "stage": "test",
                "name": name,
                "status": build_status,
                "created_at": "2026-11-22 10:00:00 UTC",
                "started_at": None,
                "finished_at": None,
                "duration": None,
                "queued_duration": None,
                "failure_reason": None,
                "when": "on_success",
                "manual": False,
                "allow_failure": False,
                "user": gl_user(),
                "runner": None,
                "artifacts_file": {"filename": None, "size": None},
                "environment": None,
            }
            for n, (name, build_status) in enumerate(builds)
        ],
    }


@pytest.fixture
def sent() -> Recorder:
    return Recorder()


def make_client(sent: Recorder, **project: Any) -> TestClient:
    settings = Settings(projects=[{"id": PROJECT, **project}], webhook_secret=SECRET)
    return TestClient(create_app(settings, sent, web=WebSettings(), dedupe=MemoryDedupe()))


def deliver(client: TestClient, payload: dict[str, Any], token: str = SECRET) -> Any:
    return post_hook(client, payload, token=token, event="Pipeline Hook")


def test_finished_scan_of_the_default_branch_queues_one_run(sent: Recorder) -> None:
    client = make_client(sent)
    response = deliver(client, pipeline_hook(status="running"))
    assert response.status_code == 202
    assert response.json() == {"status": "queued", "reason": "remedy.run_project"}
    assert sent.sent == [("remedy.run_project", PROJECT)]
    # GitLab's next hook for the same pipeline (now finished) is the same scan: no second run.
    response = deliver(client, pipeline_hook(status="success"))
    assert (response.status_code, response.json()["reason"]) == (200, "duplicate delivery")
    # A new pipeline is a new scan.
    assert deliver(client, pipeline_hook(pipeline_id=32)).status_code == 202
    assert len(sent.sent) == 2


def test_a_failed_scan_runs_the_project_too(sent: Recorder) -> None:
    """The scan job fails when a threshold is not met: those are the scans with findings."""
    client = make_client(sent)
    payload = pipeline_hook(status="failed", builds=(("lint", "success"), ("kubescape", "failed")))
    assert deliver(client, payload).status_code == 202
    assert sent.sent == [("remedy.run_project", PROJECT)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            pipeline_hook(ref="feature/x"),
            "pipeline of 'feature/x', not of the default branch 'main'",
        ),
        (pipeline_hook(ref="v1.2.0", tag=True), "tag pipeline, not a scan of the default branch"),
        (
            pipeline_hook(source="merge_request_event"),
            "merge request pipeline, not a scan of the default branch",
        ),
        (
            pipeline_hook(builds=(("kubescape", "running"),)),
            "scan job 'kubescape' has not finished in this pipeline (running)",
        ),
        (
            pipeline_hook(builds=(("kubescape", "canceled"),)),
            "scan job 'kubescape' has not finished in this pipeline (canceled)",
        ),
        (
            pipeline_hook(builds=(("build", "success"),)),
            "scan job 'kubescape' has not finished in this pipeline (absent)",
        ),
    ],
)
def test_other_pipelines_are_ignored_with_the_reason(
    sent: Recorder, payload: dict[str, Any], reason: str
) -> None:
    response = deliver(make_client(sent), payload)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "reason": reason}
    assert sent.sent == []


def test_the_projects_report_job_and_ref_are_the_ones_watched(sent: Recorder) -> None:
    client = make_client(sent, report={"kind": "gitlab-artifact", "job": "scan", "ref": "prod"})
    assert deliver(client, pipeline_hook(ref="main", builds=(("scan", "success"),))).json() == {
        "status": "ignored",
        "reason": "pipeline of 'main', not of the default branch 'prod'",
    }
    assert deliver(client, pipeline_hook(ref="prod")).status_code == 200
    assert deliver(client, pipeline_hook(ref="prod", builds=(("scan 2/3", "failed"),))).json()[
        "status"
    ] == ("queued")
    assert sent.sent == [("remedy.run_project", PROJECT)]


def test_unconfigured_project_bad_token_and_malformed_event(sent: Recorder) -> None:
    client = make_client(sent)
    other = pipeline_hook()
    other["project"] = {**other["project"], "id": 99, "path_with_namespace": "team/other"}
    assert deliver(client, other).json()["reason"] == "project is not configured"
    assert deliver(client, pipeline_hook(), token="wrong").status_code == 401
    broken = pipeline_hook()
    del broken["object_attributes"]["ref"]
    response = deliver(client, broken)
    assert response.status_code == 400
    assert response.json()["reason"] == "malformed pipeline event: object_attributes.ref"
    assert sent.sent == []


def test_scan_job_names_and_key() -> None:
    assert is_scan_job("kubescape", "kubescape")
    assert is_scan_job("kubescape 1/2", "kubescape")
    assert is_scan_job("kubescape: [prod]", "kubescape")
    assert not is_scan_job("kubescape-lint", "kubescape")
    assert pipeline_key(5, 31) == "pipeline:5:31"


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def project(gitlab_emulator: GitLabEmulator) -> int:
    """The example cd-config, one merge request a run, its scan job's report as an artifact."""
    return _emulated_project(gitlab_emulator, new_per_hour=1)


@pytest.fixture
def worker(
    redis_server: RedisServer, gitlab_emulator: GitLabEmulator, project: int, tmp_path: Path
) -> Iterator[Procs]:
    """A Celery worker (bot.tasks) running bot.service against the GitLab emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDY_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "REMEDY_REDIS_URL": redis_server.url,
            "REMEDY_GITLAB_URL": gitlab_emulator.url,
            "REMEDY_GITLAB_TOKEN": gitlab_emulator.token,
            "REMEDY_PROJECTS": json.dumps([{"id": PROJECT}]),
            "REMEDY_DATA_DIR": str(tmp_path / "data"),
            "REMEDY_METRICS_PORT": "0",
            "REMEDY_MAX_RETRIES": "1",
            "REMEDY_RETRY_BACKOFF_MAX": "1",
        }
    )
    procs = Procs(env, tmp_path)
    procs.worker()
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture
def bot_url(redis_server: RedisServer) -> Iterator[str]:
    """The web app under uvicorn with its default intake (Redis, Celery's message format)."""
    settings = Settings(
        redis_url=redis_server.url, projects=[{"id": PROJECT}], webhook_secret=SECRET
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, web=WebSettings()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.slow
def test_notify_pipeline_runs_the_project(
    bot_url: str,
    worker: Procs,
    gitlab_emulator: GitLabEmulator,
    project: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CI template's trigger job -> webhook -> Redis -> worker: the project is planned and
    its change set synced; the job's retry of the same pipeline queues nothing."""
    ci = {
        "CI_PIPELINE_ID": "4242",
        "CI_PIPELINE_IID": "7",
        "CI_PROJECT_ID": "5",
        "CI_PROJECT_PATH": PROJECT,
        "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_SHA": "b" * 40,
        "CI_DEFAULT_BRANCH": "main",
        "KUBE_REMEDY_WEBHOOK_SECRET": SECRET,
    }
    for name, value in ci.items():
        monkeypatch.setenv(name, value)
    argv = ["notify-pipeline", "--bot-url", bot_url, "--scan-status", "failed"]
    assert main(argv) == 0
    assert "remedy.run_project" in capsys.readouterr().out

    try:
        wait_until(lambda: _bot_mrs(gitlab_emulator, project), 60, "the run's merge request")
    except AssertionError:
        print(worker.output())
        raise
    planned = [
        json.loads(line) for line in worker.output().splitlines() if '"msg": "run-planned"' in line
    ]
    assert [p["project"] for p in planned] == [PROJECT]
    assert len(_bot_mrs(gitlab_emulator, project)) == 1
    # The job retried (or GitLab's own hook for the same pipeline): answered, nothing queued.
    assert main(argv) == 0
    assert "duplicate delivery" in capsys.readouterr().out
