"""Settings: environment, secret files, the YAML file, cron validation, no secret in reprs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.observability import JsonFormatter
from bot.settings import FileReport, GitlabArtifactReport, load_settings, mask_url, parse_cron


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("REMEDY_"):
            monkeypatch.delenv(name)


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.projects == ()
    assert settings.gitlab_token is None
    assert settings.visibility_timeout > settings.task_time_limit


def test_yaml_file_with_projects_and_report_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "gitlab_url: https://gitlab.example.com\n"
        "projects:\n"
        "  - id: platform/cd-config\n"
        "    cron: '0 6 * * 1-5'\n"
        "    report: {kind: gitlab-artifact, job: kubescape-scan, artifact_path: out/results.json}\n"
        "  - id: team/apps\n"
        "    report: {kind: file, path: /reports/apps.json}\n"
        "  - id: team/live\n"
        "    report: {kind: kubescape-operator, namespace: prod}\n"
    )
    monkeypatch.setenv("REMEDY_CONFIG", str(config))
    monkeypatch.setenv("REMEDY_BOT_USERNAME", "remedy-bot")
    settings = load_settings()
    assert settings.gitlab_url == "https://gitlab.example.com"
    assert settings.bot_username == "remedy-bot"
    first, second, third = settings.projects
    assert first.report == GitlabArtifactReport(
        job="kubescape-scan", artifact_path="out/results.json"
    )
    assert second.cron == "0 6 * * *" and second.report == FileReport(path="/reports/apps.json")
    assert third.report.kind == "kubescape-operator"
    assert settings.project("team/apps") is second


def test_environment_overrides_the_yaml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("redis_url: redis://from-file:6379/0\n")
    monkeypatch.setenv("REMEDY_REDIS_URL", "redis://from-env:6379/1")
    assert load_settings(config).redis_url == "redis://from-env:6379/1"


def test_secrets_from_env_or_files_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("glpat-from-file\n")
    monkeypatch.setenv("REMEDY_GITLAB_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("REMEDY_WEBHOOK_SECRET", "hook-secret-value")
    settings = load_settings()
    assert settings.gitlab_token is not None
    assert settings.gitlab_token.get_secret_value() == "glpat-from-file"
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "hook-secret-value"
    shown = repr(settings) + str(settings) + str(settings.summary())
    assert "glpat-from-file" not in shown and "hook-secret-value" not in shown
    assert settings.summary()["gitlab_token"] is True
    assert settings.summary()["slack_signing_secret"] is False


def test_a_secret_set_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t").write_text("x")
    monkeypatch.setenv("REMEDY_GITLAB_TOKEN", "y")
    monkeypatch.setenv("REMEDY_GITLAB_TOKEN_FILE", str(tmp_path / "t"))
    with pytest.raises(ConfigError, match="both REMEDY_GITLAB_TOKEN and REMEDY_GITLAB_TOKEN_FILE"):
        load_settings()


def test_a_missing_secret_file_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDY_MATTERMOST_TOKEN_FILE", "/nonexistent/token")
    with pytest.raises(
        ConfigError, match=r"REMEDY_MATTERMOST_TOKEN_FILE: cannot read /nonexistent/token"
    ):
        load_settings()


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "has 4 fields; want 5"),
        ("61 * * * *", "bad minute field '61'"),
        ("0 25 * * *", "bad hour field '25'"),
        ("0 6 * * funday", "bad day-of-week field 'funday'"),
        ("0 6 32 * *", "bad day-of-month field '32'"),
    ],
)
def test_bad_cron_expressions_are_named(cron: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"projects:\n  - id: a/b\n    cron: '{cron}'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert message in str(info.value)
    assert str(info.value).startswith("invalid setting projects.0.cron:")
    assert "\n" not in str(info.value)


def test_good_cron_expressions_become_crontab_arguments() -> None:
    assert parse_cron("*/15 6-18 * * mon-fri") == {
        "minute": "*/15",
        "hour": "6-18",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "mon-fri",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("projects: [", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("projects:\n  - {id: a/b}\n  - {id: a/b}\n", "project 'a/b' is configured twice"),
        ("projects:\n  - {id: a/b, report: {kind: ftp}}\n", "invalid setting projects.0.report"),
        ("no_such_setting: 1\n", "invalid setting no_such_setting"),
        ("redis_url: http://x\n", "redis_url must start with redis://"),
        ("task_time_limit: 900\nvisibility_timeout: 600\n", "must be longer than task_time_limit"),
    ],
)
def test_bad_config_files_give_one_line(content: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDY_CONFIG", "/etc/kube-remedy/nope.yaml")
    with pytest.raises(ConfigError, match=r"cannot read config file /etc/kube-remedy/nope\.yaml"):
        load_settings()


def test_an_unknown_project_names_the_configured_ones() -> None:
    settings = load_settings()
    with pytest.raises(ConfigError, match=r"'x/y' is not configured \(configured: none\)"):
        settings.project("x/y")


def test_redis_password_is_masked_in_logs() -> None:
    assert mask_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert mask_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_json_log_lines_drop_secret_looking_fields() -> None:
    record = logging.LogRecord(
        "kube_remedy.decisions", logging.INFO, __file__, 1, "created", None, None
    )
    record.fields = {
        "project": "a/b",
        "key": "cs-1",
        "gitlab_token": "glpat-x",
        "webhook_secret": "s",
    }
    line = JsonFormatter().format(record)
    assert '"project": "a/b"' in line and '"key": "cs-1"' in line
    assert "glpat-x" not in line and "webhook_secret" not in line


def test_chart_caches_bot_wide_and_per_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "chart_cache_dirs: [/charts/shared]\n"
        "projects:\n"
        "  - id: platform/cd-config\n"
        "    chart_cache_dirs: [/charts/platform]\n"
        "  - id: team/apps\n"
    )
    monkeypatch.setenv("REMEDY_CONFIG", str(config))
    settings = load_settings()
    assert settings.chart_cache_dirs == (Path("/charts/shared"),)
    assert settings.project("platform/cd-config").chart_cache_dirs == (Path("/charts/platform"),)
    assert settings.project("team/apps").chart_cache_dirs == ()
    monkeypatch.setenv("REMEDY_CHART_CACHE_DIRS", '["/mnt/charts"]')
    assert load_settings().chart_cache_dirs == (Path("/mnt/charts"),)
