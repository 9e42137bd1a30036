"""docker-compose.yml and the Dockerfile: the production shape, checked without a Docker engine.

`docker compose config` validates the file for real where the compose plugin is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
REMEDY_SERVICES = ("worker", "beat", "web")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_share_one_image_and_run_the_remedy_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", *REMEDY_SERVICES}
    assert len({services[name]["image"] for name in REMEDY_SERVICES}) == 1
    assert services["worker"]["command"] == ["worker"]
    assert services["beat"]["command"] == ["beat"]
    assert services["web"]["command"] == ["serve"]
    assert services["beat"]["deploy"]["replicas"] == 1


@pytest.mark.parametrize("name", ["redis", *REMEDY_SERVICES])
def test_every_service_is_hardened_and_health_checked(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["read_only"] is True
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["healthcheck"]["test"][0] == "CMD"
    if name != "redis":
        assert "/tmp" in service["tmpfs"]
        assert service["user"] == "10001:10001"
        assert service["cap_drop"] == ["ALL"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_configuration_is_by_environment_and_secrets_are_files(compose: dict[str, Any]) -> None:
    for name in REMEDY_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["REMEDY_REDIS_URL"] == "redis://redis:6379/0"
        assert env["REMEDY_GITLAB_TOKEN_FILE"].startswith("/run/secrets/")
        assert not any(key.endswith("_TOKEN") or key.endswith("_SECRET") for key in env)
        assert set(compose["services"][name]["secrets"]) <= set(compose["secrets"])


def test_the_example_config_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(ROOT / "deploy" / "config.example.yaml")
    assert settings.projects and settings.projects[0].report.kind == "gitlab-artifact"


def test_dockerfile_runs_as_uid_10001_without_bytecode_writes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM python:3.11-slim") == 2
    assert "USER 10001:10001" in dockerfile
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile
    assert 'ENTRYPOINT ["remedy"]' in dockerfile
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[0] == "*" and "!bot/" in ignored and "!fixers/" in ignored


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip(
            "no docker compose plugin or docker-compose binary here (the YAML is checked above)"
        )
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {"redis", *REMEDY_SERVICES}
    for name in REMEDY_SERVICES:
        service = resolved["services"][name]
        # The YAML anchor was merged: every process got the hardening and the shared settings.
        assert service["read_only"] is True and service["user"] == "10001:10001"
        assert service["environment"]["REMEDY_REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("name", ["redis", *REMEDY_SERVICES])
def test_images_are_pinned_not_floating(compose: dict[str, Any], name: str) -> None:
    image = compose["services"][name]["image"]
    default = image.split(":-", 1)[1].rstrip("}") if ":-" in image else image
    repository, _, tag = default.rpartition(":")
    assert repository and tag not in {"", "latest"}
    # a major-only tag such as 7-alpine moves with every release
    assert tag.count(".") >= 2 or tag.startswith("sha256")


def test_secret_files_are_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "secrets/" in ignored
