"""End to end against the GitLab emulator: conflicts, people's commits, dashboard checkboxes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gitlab
import pytest

from tests.gitlab_emulator import GitLabEmulator
from tests.test_gitlab_run import PROJECT, REPORT, bot_mrs, example_files, run

FRONTEND = "remedy/security-context/apps-shop-frontend"
FRONTEND_FILE = "apps/shop/frontend.yaml"
PROBE_END = "              port: http\n---"
LIVENESS = (
    "              port: http\n"
    "          livenessProbe:\n"
    "            httpGet:\n"
    "              path: /healthz\n"
    "              port: http\n"
    "---"
)


def _project(
    emulator: GitLabEmulator,
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    pid = emulator.create_project(PROJECT, files)
    emulator.add_pipeline(
        pid, "main", {"kubescape": {"kubescape-results.json": REPORT.read_bytes()}}
    )
    monkeypatch.setenv("REMEDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REMEDY_CONFIG", raising=False)
    return pid


@pytest.fixture
def project(
    gitlab_emulator: GitLabEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    return _project(gitlab_emulator, example_files(), tmp_path, monkeypatch)


def _mr(emulator: GitLabEmulator, pid: int, branch: str) -> dict:  # type: ignore[type-arg]
    return next(m for m in bot_mrs(emulator, pid) if m["source_branch"] == branch)


def test_conflict_with_a_human_commit_on_main_recommits_from_main(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    main_text = gitlab_emulator.file_at(project, "main", FRONTEND_FILE) or ""
    assert PROBE_END in main_text
    gitlab_emulator.push_as(
        project,
        "main",
        {FRONTEND_FILE: main_text.replace(PROBE_END, LIVENESS)},
        author="alice",
        message="frontend: add a liveness probe",
    )
    assert _mr(gitlab_emulator, project, FRONTEND)["has_conflicts"] is True
    out = run(gitlab_emulator, capsys)
    # main changed the MR's target file, so the change set is rebuilt on main's content (the
    # "updated" path, which recommits from main like the has_conflicts "rebased" path)
    assert re.search(rf"^(rebased|updated) +{re.escape(FRONTEND)}:", out, re.M)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    assert mr["has_conflicts"] is False and mr["state"] == "opened"
    text = gitlab_emulator.file_at(project, FRONTEND, FRONTEND_FILE) or ""
    assert "livenessProbe:" in text and "allowPrivilegeEscalation: false" in text
    # settled: nothing more to do on the next run
    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0


def _report_without(control: str, resource: str) -> bytes:
    report = json.loads(REPORT.read_text())
    for result in report["results"]:
        if result["resourceID"].endswith(resource):
            result["controls"] = [c for c in result["controls"] if c["controlID"] != control]
    return json.dumps(report).encode()


def _report_passing(resource: str, controls: tuple[str, ...]) -> bytes:
    """The example report with ``controls`` of ``resource`` scanned and passed."""
    report = json.loads(REPORT.read_text())
    for result in report["results"]:
        if result["resourceID"].endswith(resource):
            for control in result["controls"]:
                if control["controlID"] in controls:
                    control["status"] = {"status": "passed"}
    return json.dumps(report).encode()


def _new_pipeline(emulator: GitLabEmulator, pid: int, report: bytes) -> None:
    emulator.add_pipeline(pid, "main", {"kubescape": {"kubescape-results.json": report}})


def _alice_pushes_to_frontend(emulator: GitLabEmulator, pid: int) -> str:
    """A person's commit on the bot's frontend branch; returns its sha."""
    branch_text = emulator.file_at(pid, FRONTEND, FRONTEND_FILE) or ""
    return emulator.push_as(
        pid,
        FRONTEND,
        {FRONTEND_FILE: branch_text + "# alice: reviewed, our image needs this\n"},
        author="alice",
        message="frontend: our image runs as 20002",
    )


def test_human_commit_on_the_bot_branch_stops_rewrites(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    human = _alice_pushes_to_frontend(gitlab_emulator, project)
    # the findings of that MR change: the frontend no longer fails C-0055
    _new_pipeline(gitlab_emulator, project, _report_without("C-0055", "/Deployment/frontend"))
    gitlab_emulator.reset_counts()
    out = run(gitlab_emulator, capsys)
    assert f"foreign-commits  {FRONTEND}" in out
    assert gitlab_emulator.branches(project)[FRONTEND] == human
    mr = _mr(gitlab_emulator, project, FRONTEND)
    assert "is not updating this branch" in mr["description"]
    updates = [
        r
        for r in gitlab_emulator.requests
        if r[0] == "PUT" and f"/merge_requests/{mr['iid']}" in r[1]
    ]
    assert len(updates) == 1
    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0
    assert gitlab_emulator.branches(project)[FRONTEND] == human


def _tick(client: gitlab.Gitlab, pid: int, key: str) -> None:
    """Tick the dashboard checkbox of ``key``, as a person editing the issue would."""
    issue = client.projects.get(pid).issues.list(get_all=True)[0]
    pattern = re.compile(rf"^(\s*- )\[ \](.*<!-- kube-remedy-request:{re.escape(key)} -->)", re.M)
    ticked, n = pattern.subn(r"\1[x]\2", issue.description)
    assert n == 1, issue.description
    issue.description = ticked
    issue.save()


def test_ticked_held_back_change_set_opens_despite_the_limit(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = example_files()
    files[".remedy.yaml"] = files[".remedy.yaml"].replace("max_open: 50", "max_open: 1")
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    out = run(gitlab_emulator, capsys)
    assert len(bot_mrs(gitlab_emulator, pid)) == 1 and "held-back" in out
    held = re.findall(r"^held-back\s+remedy/(\S+):", out, re.M)
    assert held
    _tick(gitlab_client, pid, held[0])
    out = run(gitlab_emulator, capsys)
    assert f"created          remedy/{held[0]}" in out
    assert len(bot_mrs(gitlab_emulator, pid)) == 2
    assert not re.search(r"^held-back\s+remedy/" + re.escape(held[0]), out, re.M)


def test_ticked_ignored_change_set_gets_a_new_mr(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    project: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(gitlab_emulator, capsys)
    target = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_emulator.add_user("alice")
    gitlab_emulator.close_as(project, target["iid"], by="alice")
    out = run(gitlab_emulator, capsys)
    assert f"ignored          {FRONTEND}" in out
    _tick(gitlab_client, project, FRONTEND.removeprefix("remedy/"))
    out = run(gitlab_emulator, capsys)
    assert f"created          {FRONTEND}" in out
    states = [
        m["state"] for m in bot_mrs(gitlab_emulator, project) if m["source_branch"] == FRONTEND
    ]
    assert states == ["closed", "opened"]


# --------------------------------------------------------------------------- issue 15 items 1-4


def test_label_removed_and_person_pushed_the_bot_still_leaves_the_branch_alone(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    project: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(gitlab_emulator, capsys)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_emulator.add_user("alice")
    # a person removes the bot's label (the bot must not depend on it) and pushes a commit
    gitlab_client.projects.get(project).mergerequests.update(
        mr["iid"], {"remove_labels": "kube-remedy"}
    )
    human = _alice_pushes_to_frontend(gitlab_emulator, project)
    _new_pipeline(gitlab_emulator, project, _report_without("C-0055", "/Deployment/frontend"))
    before = {m["iid"] for m in gitlab_emulator.merge_requests(project)}
    out = run(gitlab_emulator, capsys)
    assert f"foreign-commits  {FRONTEND}" in out
    assert gitlab_emulator.branches(project)[FRONTEND] == human
    # no new MR, no 409: the same MR is still the bot's
    assert {m["iid"] for m in gitlab_emulator.merge_requests(project)} == before
    assert _mr(gitlab_emulator, project, FRONTEND)["state"] == "opened"


def test_existing_branch_with_a_persons_commit_is_never_force_pushed(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    gitlab_emulator.add_user("alice")
    main_text = gitlab_emulator.file_at(project, "main", FRONTEND_FILE) or ""
    human = gitlab_emulator.push_as(
        project,
        FRONTEND,
        {FRONTEND_FILE: main_text.replace(PROBE_END, LIVENESS)},
        author="alice",
        message="frontend: my own work on the bot's branch name",
    )
    out = run(gitlab_emulator, capsys)
    assert re.search(
        rf"^foreign-commits +{re.escape(FRONTEND)}: the branch already exists", out, re.M
    )
    assert gitlab_emulator.branches(project)[FRONTEND] == human
    assert all(m["source_branch"] != FRONTEND for m in bot_mrs(gitlab_emulator, project))
    # the other change sets were proposed and the dashboard written
    assert "created          remedy/network-policy/apps-shop-frontend" in out
    assert gitlab_emulator.issues(project)


def test_409_for_an_mr_the_bot_does_not_recognise_is_reported_and_the_run_goes_on(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    project: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(gitlab_emulator, capsys)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    # a person rewrites the description: the hidden marker is gone, the MR stays open
    gitlab_client.projects.get(project).mergerequests.update(
        mr["iid"], {"description": "we took this one over"}
    )
    # the new scan shows the cart's service-account controls passing: resolved on evidence
    _new_pipeline(
        gitlab_emulator, project, _report_passing("/StatefulSet/cart", ("C-0034", "C-0190"))
    )
    out = run(gitlab_emulator, capsys)  # exit 0 or 1, not 2
    assert re.search(
        rf"^skipped +{re.escape(FRONTEND)}: .*open merge request already uses", out, re.M
    )
    frontend_mrs = [
        m for m in gitlab_emulator.merge_requests(project) if m["source_branch"] == FRONTEND
    ]
    assert len(frontend_mrs) == 1
    # the rest of the run happened: the resolved cart MR was closed after the skip
    assert re.search(r"^closed +remedy/service-account/apps-shop-cart:", out, re.M)
    assert "see dashboard issue #" in out


def test_recreate_rewrites_the_branch_in_one_commit_and_keeps_the_mr_open(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.commands import Actor, Context, dispatch
    from bot.forge.gitlab import GitLabForge
    from bot.settings import Settings
    from bot.web_settings import WebSettings
    from tests.gitlab_emulator import DEVELOPER

    run(gitlab_emulator, capsys)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    alice = gitlab_emulator.add_user("alice")
    gitlab_emulator.add_member(project, alice, DEVELOPER)
    branch_text = gitlab_emulator.file_at(project, FRONTEND, FRONTEND_FILE) or ""
    gitlab_emulator.push_as(
        project,
        FRONTEND,
        {FRONTEND_FILE: branch_text.replace("runAsUser: 10001", "runAsUser: 20002")},
        author="alice",
        message="frontend: our image runs as 20002",
    )

    class Runs:
        queued: list[str] = []

        def run_project(self, project: str) -> None:
            self.queued.append(project)

    port = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, PROJECT, max_retries=0)
    ctx = Context(
        settings=Settings(projects=[{"id": PROJECT}]),
        web=WebSettings(),
        actor=Actor("gitlab", str(alice), "alice"),
        channel="mr",
        gitlab=lambda _: port,
        scheduler=Runs(),
        project=PROJECT,
        mr_iid=mr["iid"],
    )
    gitlab_emulator.reset_counts()
    reply = dispatch("recreate", ctx)
    assert reply.ok and Runs.queued == [PROJECT]
    assert not any(m == "DELETE" for m, _ in gitlab_emulator.requests)
    assert _mr(gitlab_emulator, project, FRONTEND)["state"] == "opened"

    gitlab_emulator.reset_counts()
    out = run(gitlab_emulator, capsys)
    assert f"recreated        {FRONTEND}" in out
    commits = [
        p for m, p in gitlab_emulator.requests if m == "POST" and p.endswith("/repository/commits")
    ]
    assert len(commits) == 1
    assert not any(m == "DELETE" for m, _ in gitlab_emulator.requests)
    after = _mr(gitlab_emulator, project, FRONTEND)
    assert (after["iid"], after["state"]) == (mr["iid"], "opened")
    assert "kube-remedy::recreate" not in after["labels"]
    text = gitlab_emulator.file_at(project, FRONTEND, FRONTEND_FILE) or ""
    assert "runAsUser: 20002" not in text and "allowPrivilegeEscalation: false" in text
    log = gitlab_emulator.repo_path(project)
    assert log.exists()
    # one bot commit on top of main, and the MR shows it
    gl = gitlab.Gitlab(gitlab_emulator.url, private_token=gitlab_emulator.token)
    mr_commits = gl.projects.get(project).mergerequests.get(mr["iid"]).commits(get_all=True)
    assert [c.author_name for c in mr_commits] == ["kube-remedy"]
    # settled
    gitlab_emulator.reset_counts()
    run(gitlab_emulator, capsys)
    assert gitlab_emulator.writes() == 0


def test_ignore_survives_a_later_change_to_the_same_file(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    target = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_emulator.add_user("alice")
    gitlab_emulator.close_as(project, target["iid"], by="alice")
    assert f"ignored          {FRONTEND}" in run(gitlab_emulator, capsys)
    # another change to the same file lands on main (the findings stay the same)
    main_text = gitlab_emulator.file_at(project, "main", FRONTEND_FILE) or ""
    gitlab_emulator.push_as(
        project,
        "main",
        {FRONTEND_FILE: main_text.replace(PROBE_END, LIVENESS)},
        author="alice",
        message="frontend: add a liveness probe",
    )
    _new_pipeline(gitlab_emulator, project, REPORT.read_bytes())
    out = run(gitlab_emulator, capsys)
    assert f"ignored          {FRONTEND}" in out
    assert [
        m["state"]
        for m in gitlab_emulator.merge_requests(project)
        if m["source_branch"] == FRONTEND
    ] == ["closed"]


def test_the_bots_own_close_is_not_an_ignore(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    cart = "remedy/service-account/apps-shop-cart"
    # the new scan shows the cart's service-account controls passing: resolved on evidence
    _new_pipeline(
        gitlab_emulator, project, _report_passing("/StatefulSet/cart", ("C-0034", "C-0190"))
    )
    out = run(gitlab_emulator, capsys)
    assert f"closed           {cart}" in out
    assert cart not in gitlab_emulator.branches(project)  # the bot deletes its closed branch
    (dashboard,) = gitlab_emulator.issues(project)
    assert "## Merged or resolved (1)" in dashboard["description"]
    # the findings come back: a new MR, not "ignored"
    _new_pipeline(gitlab_emulator, project, REPORT.read_bytes())
    out = run(gitlab_emulator, capsys)
    assert f"created          {cart}" in out
    states = [
        m["state"] for m in gitlab_emulator.merge_requests(project) if m["source_branch"] == cart
    ]
    assert states == ["closed", "opened"]
    closed = next(m for m in gitlab_emulator.merge_requests(project) if m["source_branch"] == cart)
    assert "kube-remedy::ignored" not in closed["labels"]


def test_deleting_an_open_mrs_source_branch_closes_it_like_gitlab(
    gitlab_emulator: GitLabEmulator,
    gitlab_client: gitlab.Gitlab,
    project: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(gitlab_emulator, capsys)
    mr = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_client.projects.get(project).branches.delete(FRONTEND)
    after = _mr(gitlab_emulator, project, FRONTEND)
    assert after["state"] == "closed" and after["closed_by"]["username"] == "kube-remedy"
    events = gitlab_client.projects.get(project).mergerequests.get(mr["iid"], lazy=True)
    states = [(e.state, e.user["username"]) for e in events.resourcestateevents.list(get_all=True)]
    assert states == [("closed", "kube-remedy")]


# --------------------------------------------------------------------------- items 8 and 9


def test_commands_act_only_on_the_mrs_own_controls(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.commands import Actor, Context, dispatch
    from bot.forge.gitlab import GitLabForge
    from bot.lifecycle import marker_controls
    from bot.settings import Settings
    from bot.web_settings import WebSettings
    from tests.gitlab_emulator import DEVELOPER

    run(gitlab_emulator, capsys)
    # an MR whose description also names controls it does not fix (unresolved findings)
    mr, own, other = next(
        (m, own, others[0])
        for m in bot_mrs(gitlab_emulator, project)
        if (own := marker_controls(m["description"]))
        and (others := sorted(set(re.findall(r"\bC-\d{4}\b", m["description"])) - set(own)))
    )
    alice = gitlab_emulator.add_user("alice")
    gitlab_emulator.add_member(project, alice, DEVELOPER)

    class Runs:
        def run_project(self, project: str) -> None:
            raise AssertionError("no run expected")

    ctx = Context(
        settings=Settings(projects=[{"id": PROJECT}]),
        web=WebSettings(),
        actor=Actor("gitlab", str(alice), "alice"),
        channel="mr",
        gitlab=lambda project: GitLabForge(
            gitlab_emulator.url, gitlab_emulator.token, project, max_retries=0
        ),
        scheduler=Runs(),
        project=PROJECT,
        mr_iid=mr["iid"],
    )
    reply = dispatch(f"ignore {other}", ctx)
    assert not reply.ok and f"{other} is not part of this merge request" in reply.text
    labels = next(m for m in gitlab_emulator.merge_requests(project) if m["iid"] == mr["iid"])[
        "labels"
    ]
    assert not any(label.startswith("kube-remedy-ignore:") for label in labels)
    explained = dispatch("explain", ctx)
    assert explained.ok
    assert all(f"**{c} " in explained.text for c in own)
    assert f"**{other} " not in explained.text


def test_held_back_names_the_setting_and_the_dashboard_says_when(
    gitlab_emulator: GitLabEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = example_files()
    files[".remedy.yaml"] = files[".remedy.yaml"].replace(
        "max_new_per_hour: 50", "max_new_per_hour: 2"
    )
    pid = _project(gitlab_emulator, files, tmp_path, monkeypatch)
    out = run(gitlab_emulator, capsys)
    held = [line for line in out.splitlines() if line.startswith("held-back")]
    flat = " ".join(out.split())  # the console wraps long lines
    assert held and flat.count("set by `.remedy.yaml` limits.max_new_per_hour") == len(held)
    (dashboard,) = gitlab_emulator.issues(pid)
    assert "the next one can be opened after" in dashboard["description"]
    assert "`.remedy.yaml` limits.max_new_per_hour" in dashboard["description"]


def test_after_a_persons_push_the_description_keeps_describing_the_branch(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    before = _mr(gitlab_emulator, project, FRONTEND)["description"]
    assert "C-0055" in before
    _alice_pushes_to_frontend(gitlab_emulator, project)
    _new_pipeline(gitlab_emulator, project, _report_without("C-0055", "/Deployment/frontend"))
    run(gitlab_emulator, capsys)
    after = _mr(gitlab_emulator, project, FRONTEND)["description"]
    # the old description (what the branch does, C-0055 included) plus one note; no new diff
    assert after.startswith(before) and after != before
    assert after[len(before) :].count("is not updating this branch") == 1
    run(gitlab_emulator, capsys)
    assert _mr(gitlab_emulator, project, FRONTEND)["description"] == after


def test_the_dashboard_lists_merged_bot_mrs(
    gitlab_emulator: GitLabEmulator, project: int, capsys: pytest.CaptureFixture[str]
) -> None:
    run(gitlab_emulator, capsys)
    (dashboard,) = gitlab_emulator.issues(project)
    assert "## Merged or resolved (0)" in dashboard["description"]
    mr = _mr(gitlab_emulator, project, FRONTEND)
    gitlab_emulator.add_user("alice")
    gitlab_emulator.merge(project, mr["iid"], by="alice")
    run(gitlab_emulator, capsys)
    (dashboard,) = gitlab_emulator.issues(project)
    text = dashboard["description"]
    assert "## Merged or resolved (1)" in text
    section = text[text.index("## Merged or resolved") :]
    assert re.search(rf"^- !{mr['iid']} .* — merged$", section, re.M), section
