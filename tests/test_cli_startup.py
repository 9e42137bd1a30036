"""`remedy` start-up: the parser is declarative, commands import what they need when they run.

Each case runs a fresh interpreter (the test process has everything imported already) and lists
the modules a command left in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli
from bot.repo_config import CONFIG_FILE
from bot.sources import cluster_formats

ROOT = Path(__file__).resolve().parent.parent

HEAVY = (
    "bot.locate",
    "bot.plan",
    "bot.sources",
    "bot.tasks",
    "celery",
    "fixers.edits",
    "fixers.registry",
    "gitlab",
    "helm_python",
    "httpx",
    "jsonschema",
    "kombu",
    "kubernetes",
    "redis",
    "ruamel",
)
"""Modules no start-up path needs: readers, planner, Helm, Kubernetes, Celery, GitLab."""

_PROBE = """
import json, sys
from bot.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def loaded_after(*argv: str) -> set[str]:
    """The modules a fresh ``remedy ARGV`` has imported when it returns."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = done.stderr.strip().splitlines()[-1]
    return set(json.loads(modules))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_imports_no_reader_planner_or_client() -> None:
    modules = loaded_after("--help")
    assert heavy(modules) == []
    # nor the data-validation and terminal libraries: --help is argparse alone
    assert not {"pydantic", "rich", "yaml", "importlib.metadata"} & modules


def test_subcommand_help_imports_nothing_heavy() -> None:
    assert heavy(loaded_after("plan", "--help")) == []


def test_explain_imports_the_catalog_not_the_planner() -> None:
    modules = loaded_after("explain", "C-0017")
    assert "bot.controls" in modules
    assert heavy(modules) == ["fixers.registry"]  # it names the fixer of the control
    # fixers name findings and contexts only in annotations; the catalog is checked by hand
    assert "pydantic" not in modules


def test_empty_plan_imports_no_cluster_queue_helm_or_live_display(tmp_path: Path) -> None:
    report = tmp_path / "empty.json"
    report.write_text(json.dumps({"summaryDetails": {}, "resources": [], "results": []}))
    modules = loaded_after("plan", "--report", str(report), "--repo", str(tmp_path))
    assert "bot.plan" in modules
    assert not {"kubernetes", "celery", "kombu", "redis", "gitlab", "helm_python"} & {
        m.split(".")[0] for m in modules
    }
    # Nothing to locate, render or describe: no Helm, no schema validation, no templates; and
    # stderr is no terminal here, so no live progress display either.
    assert (
        not {
            "bot.locate.helm",
            "bot.locate.helm_render",
            "jinja2",
            "jsonschema",
            "kubernetes_validate",
            "markdown_it",
            "rich.live",
            "rich.progress",
        }
        & modules
    )
    # No validator is built (pydantic's plugin loader would import importlib.metadata): the
    # default .remedy.yaml is not validated, reader payloads are built on first use. No chart
    # archive is read, no kustomization built or diffed.
    assert not {"importlib.metadata", "tarfile", "subprocess", "difflib"} & modules
    # The report's format is found without importing the readers after Kubescape's.
    assert "bot.sources.kubescape" in modules
    readers = {"kubescape_operator", "kyverno", "runtime", "sarif", "trivy"}
    assert not {f"bot.sources.{name}" for name in readers} & modules


def test_declared_names_match_their_owners() -> None:
    assert cluster_formats() == cli.CLUSTER_SCANNERS
    assert cli.CONFIG_FILE == CONFIG_FILE


def test_version_is_looked_up_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("remedy ") and out.strip() != "remedy"
