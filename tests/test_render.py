from __future__ import annotations

from pathlib import Path

import pytest

from bot.markdown import escape
from bot.model import FileChange
from bot.render import (
    escape_markdown,
    redact_line,
    render_explanation,
    render_how_to_test,
    unified_diff,
)
from fixers.base import Fixer
from fixers.model import Finding, ResourceRef
from fixers.registry import all_fixers

SNAPSHOTS = Path(__file__).resolve().parent / "fixers" / "snapshots"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+  password: hunter2", "+  password: [redacted]"),
        ("   DB_TOKEN: abc", "   DB_TOKEN: [redacted]"),
        ("-   - name: API_KEY", "-   - name: API_KEY"),  # a key name alone is not a secret
        ("      value: c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "      value: [redacted]"),
        ('      value: "http://cart:6379"', '      value: "http://cart:6379"'),
        ("+    allowPrivilegeEscalation: false", "+    allowPrivilegeEscalation: false"),
        ("+automountServiceAccountToken: false", "+automountServiceAccountToken: false"),
        (
            "+      automountServiceAccountToken: {{ .Values.x }}",
            "+      automountServiceAccountToken: {{ .Values.x }}",
        ),
        ("+  tokenTTL: 3600", "+  tokenTTL: 3600"),
        ("+  token: 3600abc", "+  token: [redacted]"),
    ],
)
def test_redact_line(line: str, expected: str) -> None:
    assert redact_line(line) == expected


def test_diff_redacts_context_lines() -> None:
    change = FileChange("a.yaml", "a: 1\npassword: s3cr3t\n", "a: 2\npassword: s3cr3t\n")
    diff = unified_diff(change)
    assert "s3cr3t" not in diff
    assert "+a: 2" in diff


def test_escape_markdown_neutralises_injection() -> None:
    text = escape_markdown("evil](http://x) <img src=x> @all `code`\nnew line")
    assert "<img" not in text and "\n" not in text
    assert "\\]" in text and "\\@all" in text and "\\`" in text


def test_diff_header_keeps_a_path_on_one_line() -> None:
    diff = unified_diff(FileChange("apps/x\n/approve\n/f.yaml", "a: 1\n", "a: 2\n"))
    assert not any(line.startswith("/") for line in diff.splitlines())
    assert "--- a/apps/x /approve /f.yaml" in diff


@pytest.mark.parametrize("fixer", all_fixers(), ids=lambda f: f.name)
def test_bot_renders_explanations_like_their_snapshots(fixer: Fixer) -> None:
    """The bot's escaping environment leaves every fixer's explanation as its snapshot shows."""
    finding = Finding(
        control_id=fixer.controls[0],
        resource=ResourceRef(kind="Deployment", namespace="shop", name="storefront"),
    )
    text = render_explanation(fixer, finding, ["a note"], ["a value: a source"])
    text = f"{text}\nHow to test: {render_how_to_test(fixer, finding)}"
    snapshot = SNAPSHOTS / f"{fixer.name}.md"
    assert text.strip() == snapshot.read_text(encoding="utf-8").strip()


def test_escape_markdown_is_the_one_escaping_function() -> None:
    assert escape_markdown is escape
    assert escape_markdown("/approve").startswith("\\/")


def test_how_to_test_is_specific_to_the_change(tmp_path: Path) -> None:
    """Each MR's "How to test" names its changed files and carries only its fixers' advice:
    no read-only or non-root advice on a NetworkPolicy MR, no `-f …` placeholder."""
    import shutil

    from bot.plan import build_plan
    from bot.render import change_set_context, describe_change_set
    from bot.sources import load_report

    examples = Path(__file__).resolve().parent.parent / "examples"
    shutil.copytree(examples / "cd-config", tmp_path / "repo")
    plan = build_plan(load_report(examples / "kubescape-report.json"), tmp_path / "repo")
    by_family = {cs.family: cs for cs in plan.change_sets if cs.key.endswith("apps-shop-frontend")}
    policy = by_family["network-policy"]
    tests = change_set_context(policy, marker="m")["how_to_test"]
    (new_file,) = [c.path for c in policy.files]
    assert tests["commands"] == [f"kubectl apply --dry-run=server -f {new_file}"]
    text = describe_change_set(policy, marker="m").split("### How to test", 1)[1]
    text = text.split("###", 1)[0]
    assert "exercise every dependency" in text
    assert "Read-only" not in text and "non-root" not in text and "…" not in text
    read_only = next(
        cs for cs in plan.change_sets if cs.key.endswith("--read-only-root-filesystem")
    )
    advice = " ".join(change_set_context(read_only, marker="m")["how_to_test"]["advice"])
    assert "Read-only file system" in advice and "dependency" not in advice


def test_merge_request_help_is_generated_from_the_command_classes() -> None:
    """Meta-test: the MR's "Commands" section lists exactly the commands a note may give, each
    with its class's usage and summary, like the bot's own ``help`` reply."""
    from bot.commands import commands_for, help_text
    from bot.model import ChangeSet
    from bot.render import describe_change_set
    from fixers.model import Risk

    change_set = ChangeSet(key="k", title="t", family="f", risk=Risk.LOW, fixes=())
    text = describe_change_set(change_set, marker="m", bot_username="remedy-bot")
    section = text.split("### Commands", 1)[1].split("---", 1)[0]
    listed = [line for line in section.splitlines() if line.startswith("- ")]
    expected = commands_for("mr")
    assert len(listed) == len(expected)
    for line, command in zip(listed, expected, strict=True):
        assert line == f"- `@remedy-bot {command.usage}` — {command.summary}"
        assert f"`@remedy-bot {command.usage}`: {command.summary}" in help_text("mr", "remedy-bot")
    assert any("retry" in line for line in listed)


def test_not_fixed_here_lists_one_line_per_cause_and_only_this_files_findings(
    tmp_path: Path,
) -> None:
    """A merge request's "Not fixed here" names the findings of the resource it changes: one
    line per cause with every control it holds for (two scanners' copies of one finding make
    one line); a finding a scanner read from another file (a kustomize patch fragment of the
    same Deployment) is left to the dashboard."""
    import dataclasses
    import shutil

    from bot.plan import build_plan
    from bot.render import describe_change_set
    from bot.sources import load_report

    examples = Path(__file__).resolve().parent.parent / "examples"
    shutil.copytree(examples / "cd-config", tmp_path / "repo")
    report = load_report(examples / "kubescape-report.json")
    first = build_plan(report, tmp_path / "repo")
    fix = next(f for c in first.change_sets if not c.is_waiver for f in c.fixes)
    path = fix.location.path

    def on(control: str, where: str) -> Finding:
        return dataclasses.replace(
            fix.finding,
            control_id=control,
            container=None,
            source=dataclasses.replace(fix.finding.source, path=where),
        )

    extra = (
        on("C-0061", path),
        on("C-0061", f"cd-config/{path}"),
        on("C-0270", "overlays/staging/patch.yaml"),
    )
    plan = build_plan(
        dataclasses.replace(report, findings=(*report.findings, *extra)), tmp_path / "repo"
    )
    cs = next(c for c in plan.change_sets if any(f.finding == fix.finding for f in c.fixes))
    text = describe_change_set(cs, marker="m").split("### Not fixed here", 1)[1]
    lines = [line for line in text.split("###")[0].splitlines() if line.startswith("- ")]
    assert len([line for line in lines if "C-0061" in line]) == 1, lines
    assert not [line for line in lines if "C-0270" in line and "patch.yaml" in line], lines
    assert any(u.finding.source.path == "overlays/staging/patch.yaml" for u in plan.unfixable)


def test_where_names_the_location_once() -> None:
    """The merge request's "Where:" puts the location's path first: its why does not repeat
    it; the other files of the change keep their names."""
    from bot.model import Location
    from bot.render import _why

    why = (
        "charts/a/values.yaml: charts/a/values.yaml sets x (the chart default) and is the last "
        "values file that does; charts/a/templates/np.yaml: new template"
    )
    location = Location("helm-values", "charts/a/values.yaml", 0, "charts/a", why)
    assert _why(location) == (
        "it sets x (the chart default) and is the last values file that does; "
        "charts/a/templates/np.yaml: new template"
    )
