"""Shared test helpers: where the project and the shared corpus are."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.gitlab_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus").resolve()


def corpus_path(*parts: str) -> Path:
    """A path inside ../shared/corpus, skipping the test when the corpus is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared corpus not present at {path} (a fresh clone has none; CI does)")
    return path


@pytest.fixture
def corpus() -> Path:
    return corpus_path()
