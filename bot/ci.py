"""The bot's side of the GitLab CI template (ci/kube-remedy.gitlab-ci.yml), run inside CI jobs.

- `pipeline_event`: the GitLab "Pipeline Hook" payload of the running pipeline, built from CI's
  predefined variables, so a scan of the default branch can ask the bot to run now through the
  same webhook a project hook with "Pipeline events" would call.
- `compare_scores`: compliance score per framework before (the target branch's latest scan) and
  after (this branch's scan) for the bot's merge requests, as a Markdown note.

GitLab REST calls use the job's own credentials: ``CI_JOB_TOKEN`` to read the target branch's
artifact, a token from a named CI/CD variable to post the note. Nothing here reads settings.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from bot.errors import ConfigError, ReportError
from bot.score import framework_label, framework_scores
from bot.sources import decode_report
from bot.sources.base import Report

TIMEOUT = httpx.Timeout(30.0)


def _require(env: Mapping[str, str], *names: str) -> dict[str, str]:
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise ConfigError(
            f"not inside a GitLab CI job: {', '.join(missing)} not set (run this from the CI template)"
        )
    return {name: env[name] for name in names}


def pipeline_event(env: Mapping[str, str], scan_status: str) -> dict[str, Any]:
    """The Pipeline Hook payload of the current pipeline (GitLab's documented field names)."""
    ci = _require(
        env,
        "CI_PIPELINE_ID",
        "CI_PROJECT_ID",
        "CI_PROJECT_PATH",
        "CI_COMMIT_REF_NAME",
        "CI_COMMIT_SHA",
        "CI_DEFAULT_BRANCH",
    )
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": int(ci["CI_PIPELINE_ID"]),
            "iid": int(env.get("CI_PIPELINE_IID") or 0) or None,
            "ref": ci["CI_COMMIT_REF_NAME"],
            "tag": bool(env.get("CI_COMMIT_TAG")),
            "sha": ci["CI_COMMIT_SHA"],
            "source": env.get("CI_PIPELINE_SOURCE") or "push",
            "status": "running",
        },
        "project": {
            "id": int(ci["CI_PROJECT_ID"]),
            "path_with_namespace": ci["CI_PROJECT_PATH"],
            "default_branch": ci["CI_DEFAULT_BRANCH"],
            "web_url": env.get("CI_PROJECT_URL", ""),
        },
        "builds": [
            {
                "name": env.get("REMEDY_SCAN_JOB") or "kubescape",
                "stage": env.get("REMEDY_SCAN_STAGE") or "test",
                "status": scan_status,
            }
        ],
    }


def notify_pipeline(
    bot_url: str, secret: str, event: Mapping[str, Any], client: httpx.Client
) -> str:
    """POST ``event`` to the bot's GitLab webhook; the bot's one-line answer."""
    url = bot_url.rstrip("/") + "/webhooks/gitlab"
    try:
        response = client.post(
            url,
            content=json.dumps(event),
            headers={
                "Content-Type": "application/json",
                "X-Gitlab-Event": "Pipeline Hook",
                "X-Gitlab-Token": secret,
                "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            },
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise ReportError(f"cannot reach the bot at {url}: {exc}") from None
    if response.status_code >= 400:
        raise ReportError(f"the bot refused the pipeline event: HTTP {response.status_code}")
    return response.text.strip()[:200]


def _api(env: Mapping[str, str]) -> str:
    return _require(env, "CI_API_V4_URL")["CI_API_V4_URL"].rstrip("/")


def fetch_target_report(env: Mapping[str, str], client: httpx.Client) -> Report | None:
    """The latest scan of the merge request's target branch (its ``kubescape`` job artifact), or
    None when there is none. A job token can read artifacts only by branch, which GitLab serves
    from the latest *successful* pipeline: a target branch whose scans fail has nothing here."""
    ci = _require(env, "CI_PROJECT_ID", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "CI_JOB_TOKEN")
    job = env.get("REMEDY_SCAN_JOB") or "kubescape"
    path = env.get("REMEDY_SCAN_ARTIFACT") or "kubescape-results.json"
    url = (
        f"{_api(env)}/projects/{quote(ci['CI_PROJECT_ID'], safe='')}/jobs/artifacts/"
        f"{quote(ci['CI_MERGE_REQUEST_TARGET_BRANCH_NAME'], safe='')}/raw/{quote(path)}"
    )
    response = client.get(
        url, params={"job": job}, headers={"JOB-TOKEN": ci["CI_JOB_TOKEN"]}, timeout=TIMEOUT
    )
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise ReportError(f"cannot read the target branch's scan: HTTP {response.status_code}")
    origin = f"{ci['CI_MERGE_REQUEST_TARGET_BRANCH_NAME']}:{path}"
    return decode_report(response.content, origin)


_UNSAFE_NAME = re.compile(r"[^\w .\-]")


@dataclass(frozen=True)
class ScoreRow:
    """One framework's compliance score before and after."""

    framework: str
    before: float | None
    after: float | None


def compare_scores(before: Report | None, after: Report) -> list[ScoreRow]:
    """Per framework of either report: its compliance score in each (None where absent)."""

    def named(report: Report) -> dict[str, float]:
        # Framework names come from the report: keep them plain words in the Markdown note.
        return {
            _UNSAFE_NAME.sub("", framework_label(name))[:60]: score
            for name, score in framework_scores(report).items()
        }

    old = named(before) if before else {}
    new = named(after)
    return [ScoreRow(name, old.get(name), new.get(name)) for name in sorted({*old, *new})]


def post_note(env: Mapping[str, str], token: str, body: str, client: httpx.Client) -> None:
    """Post ``body`` as a note on the pipeline's merge request."""
    ci = _require(env, "CI_PROJECT_ID", "CI_MERGE_REQUEST_IID")
    url = (
        f"{_api(env)}/projects/{quote(ci['CI_PROJECT_ID'], safe='')}/merge_requests/"
        f"{ci['CI_MERGE_REQUEST_IID']}/notes"
    )
    response = client.post(
        url, json={"body": body}, headers={"PRIVATE-TOKEN": token}, timeout=TIMEOUT
    )
    if response.status_code >= 400:
        raise ReportError(f"cannot post the score note: HTTP {response.status_code}")


def score_note(rows: list[ScoreRow], target_branch: str, has_before: bool) -> str:
    """The Markdown note for ``rows`` (bot/templates/score_note.md.j2, every value escaped)."""
    from bot.markdown import guard
    from bot.render import environment

    return guard(
        environment()
        .get_template("score_note.md.j2")
        .render(rows=rows, target=target_branch[:100], has_before=has_before)
    )
