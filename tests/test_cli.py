"""The `remedy` command: exit codes, one-line errors, tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "plan",
        "--report",
        str(EXAMPLES / "kubescape-report.json"),
        "--repo",
        str(EXAMPLES / "cd-config"),
    )
    assert code == 1  # the cluster-admin binding and the probes are left for people
    assert "security-context/apps-shop-frontend" in out
    assert "C-0035" in out and "rbac" in out
    assert "ignored by .remedy.yaml" in out
    assert "NSA" in out and "->" in out


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "c-0017")
    assert code == 0
    assert "Immutable container filesystem" in out
    assert "read_only_root_filesystem" in out


def test_explain_unknown_control(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", "C-9999")
    assert code == 2
    assert "C-9999" in err and "Traceback" not in err


def test_controls_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "controls")
    assert code == 0
    assert "C-0016" in out and "allow_privilege_escalation" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"results": [', "line 1"),
        ("", "empty"),
        ('{"apiVersion": "apps/v1", "kind": "Deployment"}', "Deployment"),
    ],
)
def test_bad_reports_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    report = tmp_path / "report.json"
    report.write_text(content)
    code, _, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path))
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_missing_repository(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"results": [], "resources": []}))
    code, _, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path / "nope"))
    assert code == 2
    assert "not found" in err


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "plan")
    assert code == 2


def test_run_once_unknown_project_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REMEDY_CONFIG", raising=False)
    code, _, err = run(capsys, "run-once", "group/unknown")
    assert code == 2
    assert "'group/unknown' is not configured" in err


def test_chart_caches_are_repeatable_and_must_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from bot.cli import build_parser

    for command in ("plan", "apply"):
        args = build_parser().parse_args([command, "--repo", "x", "--charts", "a", "--charts", "b"])
        assert args.charts == ["a", "b"]
    run_args = ["run", "--gitlab-url", "https://g", "--project", "p", "--charts", "c"]
    assert build_parser().parse_args(run_args).charts == ["c"]
    code, _, err = run(
        capsys,
        "plan",
        "--report",
        str(EXAMPLES / "kubescape-report.json"),
        "--repo",
        str(EXAMPLES / "cd-config"),
        "--charts",
        str(tmp_path / "absent"),
    )
    assert code == 2
    assert f"chart cache directory {tmp_path / 'absent'} not found" in err
