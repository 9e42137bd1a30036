"""pytest fixtures for the GitLab emulator (registered from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gitlab
import pytest

from tests.gitlab_emulator import GitLabEmulator


@pytest.fixture
def gitlab_emulator(tmp_path: Path) -> Iterator[GitLabEmulator]:
    """A started emulator (no projects yet) rooted in ``tmp_path``; stopped afterwards."""
    emulator = GitLabEmulator(tmp_path / "gitlab")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gitlab_client(gitlab_emulator: GitLabEmulator) -> Iterator[gitlab.Gitlab]:
    """A python-gitlab client for the emulator, authenticated as the bot."""
    with gitlab.Gitlab(gitlab_emulator.url, private_token=gitlab_emulator.token) as client:
        yield client
