"""The CLI for people and CI: JSON output against its schema, progress on stderr, tables that
wrap, help on every option, explain by any scanner's id."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from bot import cli
from bot.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCHEMA = json.loads((ROOT / "docs" / "output-schema.json").read_text())
EXAMPLE_ARGS = ("--report", str(EXAMPLES / "kubescape-report.json"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def validated(text: str) -> dict[str, Any]:
    document = json.loads(text)
    jsonschema.validate(document, SCHEMA)
    return document


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_plan_json_gives_every_finding_one_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "plan", *EXAMPLE_ARGS, "--repo", str(EXAMPLES / "cd-config"), "--output", "json"
    )
    assert err == ""  # no progress when stderr is not a terminal
    document = validated(out)
    assert code == document["exit_code"] == 1
    findings = document["findings"]
    summary = document["summary"]
    assert summary["findings"] == len(findings)
    for outcome in ("fixed", "already-compliant", "waived", "not-fixed"):
        assert summary[outcome.replace("-", "_")] == sum(f["outcome"] == outcome for f in findings)
    # Each (control, resource, container) has exactly one outcome.
    identities = [
        (f["control"], json.dumps(f["resource"], sort_keys=True), f["container"]) for f in findings
    ]
    assert len(identities) == len(set(identities))
    keys = {cs["key"] for cs in document["change_sets"]}
    assert {f["change_set"] for f in findings if f["outcome"] == "fixed"} <= keys
    assert "security-context/apps-shop-frontend" in keys
    cluster_admin = [f for f in findings if f["control"] == "C-0035"]
    assert cluster_admin and cluster_admin[0]["outcome"] == "not-fixed"
    assert cluster_admin[0]["category"] == "rbac"
    configured = [f for f in findings if f.get("waiver") == "configured"]
    assert configured and configured[0]["reason"].startswith("ignored by .remedy.yaml")
    assert any(f.get("waiver") == "proposed" for f in findings)
    assert document["scores"] and all(s["if_merged"] >= s["now"] for s in document["scores"])
    assert "published" not in document


def test_unmapped_scanner_checks_are_listed_by_id(capsys: pytest.CaptureFixture[str]) -> None:
    report = ROOT / "tests" / "fixtures" / "reports" / "trivy-config.json"
    code, out, _ = run(
        capsys,
        "plan",
        "--report",
        str(report),
        "--repo",
        str(EXAMPLES / "cd-config"),
        "--output",
        "json",
    )
    document = validated(out)
    assert document["summary"]["unmapped"] == len(document["unmapped"]) > 0
    assert any("KSV" in u["result"] for u in document["unmapped"])
    assert code in (0, 1)


def test_apply_json_lists_what_was_published(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = tmp_path / "cd-config"
    shutil.copytree(EXAMPLES / "cd-config", repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "cd-config"], cwd=repo, check=True)
    code, out, _ = run(capsys, "apply", *EXAMPLE_ARGS, "--repo", str(repo), "--output", "json")
    document = validated(out)
    assert code == document["exit_code"] == 1
    published = document["published"]
    assert {p["change_set"] for p in published} == {cs["key"] for cs in document["change_sets"]}
    assert {p["action"] for p in published} == {"created"}


def test_tables_wrap_instead_of_cutting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=screen, width=100, highlight=False))
    code = main(["plan", *EXAMPLE_ARGS, "--repo", str(EXAMPLES / "cd-config")])
    assert code == 1
    text = screen.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 100
    # A folded branch key is still all there, read down its column.
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if "│" in line)
    assert "security-context/apps-shop-frontend" in cells


def test_progress_on_stderr_only_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.StringIO()
    monkeypatch.setattr(
        cli, "errors", Console(file=terminal, force_terminal=True, width=100, highlight=False)
    )
    code, out, _ = run(
        capsys, "plan", *EXAMPLE_ARGS, "--repo", str(EXAMPLES / "cd-config"), "--output", "json"
    )
    assert code == 1
    validated(out)  # stdout stays the document alone
    shown = terminal.getvalue()
    assert "reading kubescape-report.json" in shown and "planning" in shown


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, str | None]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _options(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            found.append((f"{path} {'/'.join(action.option_strings) or action.dest}", action.help))
    return found


def test_every_option_and_argument_has_help() -> None:
    options = _options(build_parser(), "remedy")
    assert len(options) > 40
    assert [name for name, text in options if not text] == []


@pytest.mark.parametrize(
    ("query", "control", "mapping"),
    [
        ("CKV_K8S_22", "C-0017", "CKV_K8S_22 (checkov"),
        ("ckv_k8s_22", "C-0017", "CKV_K8S_22 (checkov"),
        ("KSV-0014", "C-0017", "KSV014 (trivy"),
        ("AVD-KSV-0001", "C-0016", "KSV001 (trivy"),
        ("require-ro-rootfs", "C-0017", "require-ro-rootfs (kyverno"),
        ("c-0017", "C-0017", None),
    ],
)
def test_explain_accepts_any_supported_scanner_id(
    capsys: pytest.CaptureFixture[str], query: str, control: str, mapping: str | None
) -> None:
    code, out, _ = run(capsys, "explain", query)
    assert code == 0
    assert f"{control} Immutable" in out or f"{control} " in out
    if mapping:
        assert mapping in out and f"is Kubescape control {control}" in out


def test_explain_names_every_control_a_check_can_map_to(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "require-pod-probes")
    assert code == 0
    assert "C-0056, or C-0018 when the failing path names readinessProbe" in " ".join(out.split())
    assert "C-0056 Configured liveness probe" in out and "C-0018" in out


def test_explain_of_an_unmapped_check_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", "KSV004")
    assert code == 2
    assert "KSV004" in err and "Traceback" not in err
