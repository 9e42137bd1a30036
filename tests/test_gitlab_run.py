"""End to end against the HTTP GitLab emulator: python-gitlab over real HTTP, a real git repo.

A project holding the example cd-config, a pipeline whose Kubescape job carries the report as an
artifact, and `remedy run` as a user would type it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.forge.gitlab import GitLabForge
from bot.lifecycle import parse_marker
from tests.gitlab_emulator import GitLabEmulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cd-config"
REPORT = ROOT / "examples" / "kubescape-report.json"
PROJECT = "platform/cd-config"


def changed_report() -> bytes:
    """The example report a fix later: the frontend no longer fails C-0055, and the cart's
    automount controls pass (a fix is closed as resolved only when the report shows it scanned
    and passing)."""
    report = json.loads(REPORT.read_text())
    for result in report["results"]:
        if result["resourceID"].endswith("/Deployment/frontend"):
            result["controls"] = [c for c in result["controls"] if c["controlID"] != "C-0055"]
        if result["resourceID"].endswith("/StatefulSet/cart"):
            for control in result["controls"]:
                if control["controlID"] in ("C-0034", "C-0190"):
                    control["status"] = {"status": "passed"}
    return json.dumps(report).encode()


def example_files() -> dict[str, str]:
    files = {
        p.relative_to(EXAMPLE).as_posix(): p.read_text() for p in EXAMPLE.rglob("*") if p.is_file()
    }
    # generous limits so one run proposes every change set
    files[".remedy.yaml"] = (
        files[".remedy.yaml"]
        .replace("max_open: 12", "max_open: 50")
        .replace("max_new_per_hour: 10", "max_new_per_hour: 50")
    )
    return files


@pytest.fixture
def project(
    gitlab_emulator: GitLabEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    pid = gitlab_emulator.create_project(PROJECT, example_files())
    gitlab_emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": REPORT.read_bytes()}}
    )
    monkeypatch.setenv("REMEDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REMEDY_CONFIG", raising=False)
    return pid


def run(emulator: GitLabEmulator, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(
        ["run", "--gitlab-url", emulator.url, "--project", PROJECT, "--token", emulator.token]
    )
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return out


def bot_mrs(emulator: GitLabEmulator, pid: int) -> list[dict]:  # type: ignore[type-arg]
    return [m for m in emulator.merge_requests(pid) if m["author"]["username"] == "kube-remedy"]


def test_first_run_opens_mrs_then_rerun_writes_nothing(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(gitlab_emulator, capsys)
    mrs = bot_mrs(gitlab_emulator, project)
    branches = sorted(m["source_branch"] for m in mrs)
    assert "remedy/security-context/apps-shop-frontend" in branches
    assert "remedy/network-policy/apps-shop-frontend" in branches
    assert len(mrs) == out.count("created ")
    frontend = next(
        m for m in mrs if m["source_branch"] == "remedy/security-context/apps-shop-frontend"
    )
    assert parse_marker(frontend["description"])[0] == "security-context/apps-shop-frontend"
    assert {"security", "kube-remedy", "C-0016"} <= set(frontend["labels"])
    assert frontend["target_branch"] == "main"
    text = gitlab_emulator.file_at(project, frontend["source_branch"], "apps/shop/frontend.yaml")
    assert text is not None and "allowPrivilegeEscalation: false" in text
    assert "allowPrivilegeEscalation" not in (
        gitlab_emulator.file_at(project, "main", "apps/shop/frontend.yaml") or ""
    )
    (dashboard,) = gitlab_emulator.issues(project)
    assert "C-0035" in dashboard["description"] and "rbac" in dashboard["description"]
    # each new MR cost exactly two writes: one commit, one MR (+ one dashboard issue)
    writes = [r for r in gitlab_emulator.requests if r[0] != "GET"]
    assert len(writes) == 2 * len(mrs) + 1

    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0
    assert len(bot_mrs(gitlab_emulator, project)) == len(mrs)


def test_changed_report_updates_one_mr_and_resolved_closes(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    before = {m["source_branch"]: m for m in bot_mrs(gitlab_emulator, project)}
    gitlab_emulator.add_pipeline(
        project, "main", {"kubescape": {"kubescape-results.json": changed_report()}}
    )
    gitlab_emulator.reset_counts()
    out = run(gitlab_emulator, capsys)
    after = {m["source_branch"]: m for m in gitlab_emulator.merge_requests(project)}
    assert "updated          remedy/security-context/apps-shop-frontend" in out
    assert after["remedy/service-account/apps-shop-cart"]["state"] == "closed"
    changed = [
        b
        for b in before
        if before[b]["description"] != after[b]["description"] or after[b]["state"] != "opened"
    ]
    assert sorted(changed) == [
        "remedy/security-context/apps-shop-frontend",
        "remedy/service-account/apps-shop-cart",
    ]
    text = gitlab_emulator.file_at(
        project, "remedy/security-context/apps-shop-frontend", "apps/shop/frontend.yaml"
    )
    assert text is not None and "readOnlyRootFilesystem" not in text


def test_closed_mr_is_ignored_until_findings_change(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    target = next(
        m
        for m in bot_mrs(gitlab_emulator, project)
        if m["source_branch"].startswith("remedy/service-account/")
    )
    gitlab_emulator.add_user("alice")
    gitlab_emulator.close_as(project, target["iid"], by="alice")
    out = run(gitlab_emulator, capsys)
    assert f"ignored          {target['source_branch']}" in out
    mrs = gitlab_emulator.merge_requests(project)
    assert [m["state"] for m in mrs if m["source_branch"] == target["source_branch"]] == ["closed"]
    notes = gitlab_emulator.notes(project, target["iid"])
    assert any("will not propose" in n["body"] for n in notes)
    (dashboard,) = gitlab_emulator.issues(project)
    assert (
        f"kube-remedy-request:{target['source_branch'].removeprefix('remedy/')}"
        in dashboard["description"]
    )
    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0


def test_rate_limits_and_server_errors_end_with_same_mrs(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab_emulator.inject(status=429, times=3, retry_after=0, method="POST")
    gitlab_emulator.inject(status=502, times=2, method="POST", path_contains="merge_requests")
    run(gitlab_emulator, capsys)
    branches = [m["source_branch"] for m in bot_mrs(gitlab_emulator, project)]
    assert len(branches) == len(set(branches))
    run(gitlab_emulator, capsys)
    assert sorted(m["source_branch"] for m in bot_mrs(gitlab_emulator, project)) == sorted(branches)


def test_forbidden_is_one_clear_line(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--gitlab-url",
            gitlab_emulator.url,
            "--project",
            "platform/missing",
            "--token",
            gitlab_emulator.token,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "platform/missing" in err and "needs" in err and "Traceback" not in err
    assert gitlab_emulator.token not in err


def test_forge_refuses_default_branch(gitlab_emulator: GitLabEmulator, project: int) -> None:
    from bot.errors import ForgeConflictError

    forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT)
    with pytest.raises(ForgeConflictError, match="refusing to push to main"):
        forge.commit_files("main", {"a.yaml": "x"}, "m", start_branch="main")
    assert gitlab_emulator.token not in repr(forge)


def test_reviewer_ignores_one_control_of_an_mr(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    mr = next(
        m
        for m in bot_mrs(gitlab_emulator, project)
        if m["source_branch"] == "remedy/security-context/apps-shop-frontend"
    )
    client_forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT)
    change = next(c for c in client_forge.find_changes() if c.id == mr["iid"])
    client_forge.update_change(change, labels=[*change.labels, "kube-remedy-ignore:C-0055"])
    out = run(gitlab_emulator, capsys)
    assert "updated          remedy/security-context/apps-shop-frontend" in out
    text = gitlab_emulator.file_at(project, mr["source_branch"], "apps/shop/frontend.yaml") or ""
    assert "allowPrivilegeEscalation: false" in text and "readOnlyRootFilesystem" not in text
    labels = next(m for m in gitlab_emulator.merge_requests(project) if m["iid"] == mr["iid"])[
        "labels"
    ]
    assert "kube-remedy-ignore:C-0055" in labels


def test_run_under_a_429_storm_stops_asking_refreshes_the_dashboard_and_exits_3(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # every MR create is refused for longer than python-gitlab's retries last
    gitlab_emulator.inject(
        status=429, times=10_000, retry_after=0, method="POST", path_contains="/merge_requests"
    )
    code = main(
        [
            "run",
            "--gitlab-url",
            gitlab_emulator.url,
            "--project",
            PROJECT,
            "--token",
            gitlab_emulator.token,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 3, err
    assert "Traceback" not in err
    # every change set is listed as failed (none dropped) and the dashboard written, but once
    # a 429 outlasts the retries the run asks GitLab nothing more for the other change sets
    failed = [line for line in out.splitlines() if line.startswith("failed ")]
    assert len(failed) > 1 and "GitLab answered 429" in out
    assert " ".join(out.split()).count("not tried: GitLab is rate limiting") == len(failed) - 1
    (dashboard,) = gitlab_emulator.issues(project)
    assert "## Failed in the last run" in dashboard["description"]
    # one retry layer: python-gitlab's own (settings.max_retries = 5), 6 tries of one create
    creates = [
        p for m, p in gitlab_emulator.requests if m == "POST" and p.endswith("/merge_requests")
    ]
    assert len(creates) == 6
