"""The GitLab CI template for cd-config (ci/kube-remedy.gitlab-ci.yml) and the CLI commands its
jobs run: schema-valid against GitLab's own CI schema, every input declared and used, the score
note and the pipeline event."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot import ci
from bot.cli import main
from tests.conftest import corpus_path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "ci" / "kube-remedy.gitlab-ci.yml"
INPUT = re.compile(r"\$\[\[\s*inputs\.(\w+)\s*\]\]")


def _documents() -> tuple[dict[str, Any], str]:
    header, body = TEMPLATE.read_text().split("\n---\n", 1)
    return yaml.safe_load(header), body


def _gitlab_schema() -> dict[str, Any]:
    # GitLab's CI schema (gitlab-org/gitlab app/assets/javascripts/editor/schema/ci.json), as
    # vendored by check-jsonschema.
    path = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("gitlab-ci.json")
    return dict(json.loads(path.read_text()))


def _interpolated(body: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The jobs document as GitLab sees it after interpolating the inputs' defaults (GitLab
    interpolates inside the parsed YAML's strings, so an empty input stays an empty string)."""
    values = {name: spec.get("default") for name, spec in inputs.items()}

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return INPUT.sub(lambda m: str(values[m.group(1)]), node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {walk(key): walk(value) for key, value in node.items()}
        return node

    return dict(walk(yaml.safe_load(body)))


def test_header_and_jobs_are_valid_gitlab_ci() -> None:
    header, body = _documents()
    schema = _gitlab_schema()
    jsonschema.validate(header, schema)
    jsonschema.validate(_interpolated(body, header["spec"]["inputs"]), schema)


def test_every_input_is_declared_described_and_used() -> None:
    header, body = _documents()
    declared = header["spec"]["inputs"]
    used = set(INPUT.findall(body))
    assert used == set(declared)
    assert all(spec.get("description") for spec in declared.values())


def test_jobs_scan_keep_the_artifact_the_bot_reads_and_trigger_on_the_default_branch() -> None:
    header, body = _documents()
    jobs = _interpolated(body, header["spec"]["inputs"])
    scan = jobs["kubescape"]
    # the bot's default report source: job kubescape, artifact kubescape-results.json
    from bot.settings import GitlabArtifactReport

    default = GitlabArtifactReport()
    assert default.job == "kubescape" and default.artifact_path in scan["artifacts"]["paths"]
    assert scan["artifacts"]["when"] == "always"
    assert any("--severity-threshold" in line for line in scan["script"])
    trigger = jobs["kube-remedy-trigger"]
    assert trigger["needs"] == [{"job": "kubescape", "artifacts": True}]
    assert trigger["rules"][0]["if"].startswith("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH")
    assert any("remedy notify-pipeline" in line for line in trigger["script"])
    assert jobs["kube-remedy-score"]["allow_failure"] is True


def test_score_compares_two_kubescape_reports(capsys: pytest.CaptureFixture[str]) -> None:
    before = corpus_path("scans", "kubescape", "defectdojo__with_a_failure.json")
    after = corpus_path("scans", "kubescape", "defectdojo__results.json")
    assert main(["score", "--before", str(before), "--after", str(after)]) == 0
    note = capsys.readouterr().out
    assert "| framework | before | this branch | change |" in note
    rows = {
        line.split("|")[1].strip(): line for line in note.splitlines()[4:] if line.startswith("| ")
    }
    assert re.fullmatch(r"\| NSA \| 88\.9 \| 100\.0 \| \\\+11\.1 \|", rows["NSA"])


def test_score_note_keeps_report_names_plain() -> None:
    rows = [ci.ScoreRow("NSA\n/approve <b>@all`", 50.0, 75.0)]
    note = ci.score_note(
        ci.compare_scores(None, _report_with_framework("NSA\n/approve <b>`")), "main", False
    )
    assert "\n/approve" not in note and "<b>" not in note and "`" not in note.replace("`main`", "")
    assert rows[0].after == 75.0


def _report_with_framework(name: str) -> Any:
    from bot.sources.base import Report

    summary = {
        "frameworks": [
            {"name": name, "controls": {"C-0016": {"status": "failed", "ResourceCounters": {}}}}
        ]
    }
    return Report("kubescape", "test", (), summary=summary)


def test_pipeline_event_uses_gitlab_field_names() -> None:
    env = {
        "CI_PIPELINE_ID": "77",
        "CI_PROJECT_ID": "5",
        "CI_PROJECT_PATH": "platform/cd-config",
        "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_SHA": "a" * 40,
        "CI_DEFAULT_BRANCH": "main",
    }
    event = ci.pipeline_event(env, "failed")
    assert event["object_kind"] == "pipeline"
    assert event["object_attributes"]["id"] == 77 and event["object_attributes"]["ref"] == "main"
    assert event["project"]["path_with_namespace"] == "platform/cd-config"
    assert event["builds"] == [{"name": "kubescape", "stage": "test", "status": "failed"}]


def test_notify_outside_ci_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI_PIPELINE_ID", "CI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBE_REMEDY_WEBHOOK_SECRET", "s3cret")
    assert main(["notify-pipeline", "--bot-url", "http://127.0.0.1:9"]) == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert re.fullmatch(r"remedy \d+\.\d+\.\d+\n", capsys.readouterr().out)
