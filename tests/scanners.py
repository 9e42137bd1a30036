"""The real third-party scanners installed by scripts/setup-scanners.sh, for tests that check fixes
from outside. Tests that need one skip with the reason when it is absent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"


def require_checkov() -> Path:
    """The Checkov executable, or skip the test saying how to install it."""
    if not CHECKOV.exists():
        pytest.skip("Checkov is not installed: run `bash scripts/setup-scanners.sh`")
    return CHECKOV


def checkov_kubernetes(directory: Path) -> list[dict[str, Any]]:
    """Checkov's kubernetes results for ``directory``: one dict per run, with its results."""
    output = checkov_json(directory)
    data = json.loads(output) if output.strip() else []
    runs = data if isinstance(data, list) else [data]
    return [run for run in runs if isinstance(run, dict) and isinstance(run.get("results"), dict)]


def checkov_json(directory: Path, framework: str = "kubernetes", cwd: Path | None = None) -> str:
    """What ``checkov -d directory --framework FRAMEWORK -o json`` prints (run in ``cwd``), as
    it prints it."""
    proc = subprocess.run(
        [
            str(require_checkov()),
            "-d",
            str(directory),
            "--framework",
            framework,
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=cwd,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return proc.stdout
