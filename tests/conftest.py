"""Shared test helpers: where the project and the shared corpus are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

pytest_plugins = ["tests.gitlab_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus").resolve()

# Property tests explore new random inputs on every local run; CI (`.ci/run` sets
# HYPOTHESIS_PROFILE=ci) runs a fixed, reproducible sequence so a run's verdict depends on the
# code, not on the draw. A local failure prints the blob to reproduce it.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def corpus_path(*parts: str) -> Path:
    """A path inside ../shared/corpus, skipping the test when the corpus is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared corpus not present at {path} (a fresh clone has none; CI does)")
    return path


@pytest.fixture
def corpus() -> Path:
    return corpus_path()
