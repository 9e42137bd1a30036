"""The GitLab emulator, driven only through python-gitlab (and raw HTTP for headers)."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gitlab
import httpx
import pytest
from gitlab.v4.objects import Project

from tests.gitlab_emulator import MAINTAINER, GitLabEmulator

FILES = {
    "apps/web/values.yaml": "replicaCount: 1\nsecurityContext: {}\n",
    "apps/api/deployment.yaml": "kind: Deployment\n",
    "README.md": "# cd-config\n",
}


@pytest.fixture
def project_id(gitlab_emulator: GitLabEmulator) -> int:
    return gitlab_emulator.create_project(
        "platform/cd-config", FILES, protected=("main", "release/*")
    )


@pytest.fixture
def project(gitlab_client: gitlab.Gitlab, project_id: int) -> Project:
    return gitlab_client.projects.get("platform/cd-config")


def _commit(project: Project, branch: str, files: dict[str, str], **extra: object) -> str:
    actions = [
        {"action": "update", "file_path": path, "content": text} for path, text in files.items()
    ]
    data = {"branch": branch, "commit_message": f"edit {branch}", "actions": actions, **extra}
    return project.commits.create(data).id


def _git_log(emulator: GitLabEmulator, project_id: int, ref: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(emulator.repo_path(project_id)), "log", "--format=%an|%s", ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()


def test_project_by_path_and_id(gitlab_client: gitlab.Gitlab, project_id: int) -> None:
    by_path = gitlab_client.projects.get("platform/cd-config")
    by_id = gitlab_client.projects.get(project_id)
    assert by_path.id == by_id.id == project_id
    assert by_path.default_branch == "main"
    assert by_path.web_url == f"{gitlab_client.url}/platform/cd-config"
    gitlab_client.auth()
    assert gitlab_client.user is not None and gitlab_client.user.username == "kube-remedy"
    with pytest.raises(gitlab.GitlabGetError) as err:
        gitlab_client.projects.get("platform/absent")
    assert err.value.response_code == 404


def test_commit_with_actions_is_a_real_git_commit(
    gitlab_emulator: GitLabEmulator, project: Project, project_id: int
) -> None:
    commit = project.commits.create(
        {
            "branch": "remedy/web",
            "start_branch": "main",
            "commit_message": "Harden web\n\nDetails.",
            "author_name": "Kube Remedy",
            "author_email": "remedy@example.com",
            "actions": [
                {"action": "update", "file_path": "apps/web/values.yaml", "content": "a: 1\n"},
                {
                    "action": "create",
                    "file_path": "apps/web/new.yaml",
                    "content": "bg==",
                    "encoding": "base64",
                },
                {"action": "delete", "file_path": "apps/api/deployment.yaml"},
                {"action": "move", "file_path": "docs/README.md", "previous_path": "README.md"},
            ],
        }
    )
    assert commit.title == "Harden web"
    assert commit.author_name == "Kube Remedy"
    assert commit.committer_name == "kube-remedy"
    assert _git_log(gitlab_emulator, project_id, "remedy/web")[0] == "Kube Remedy|Harden web"
    assert gitlab_emulator.file_at(project_id, "remedy/web", "apps/web/values.yaml") == "a: 1\n"
    assert gitlab_emulator.file_at(project_id, "remedy/web", "apps/web/new.yaml") == "n"
    assert gitlab_emulator.file_at(project_id, "remedy/web", "apps/api/deployment.yaml") is None
    assert gitlab_emulator.file_at(project_id, "remedy/web", "docs/README.md") == "# cd-config\n"
    assert (
        gitlab_emulator.file_at(project_id, "main", "apps/web/values.yaml")
        == FILES["apps/web/values.yaml"]
    )
    listed = project.commits.list(ref_name="remedy/web", get_all=True)
    assert [c.title for c in listed] == ["Harden web", "Initial commit"]
    assert project.commits.get(commit.id).parent_ids == [listed[1].id]


def test_file_read_and_tree(project: Project) -> None:
    f = project.files.get("apps/web/values.yaml", ref="main")
    assert f.decode().decode() == FILES["apps/web/values.yaml"]
    assert f.encoding == "base64" and len(f.last_commit_id) == 40 and len(f.blob_id) == 40
    assert project.files.raw("README.md", ref="main") == b"# cd-config\n"
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.files.get("nope.yaml", ref="main")
    assert err.value.response_code == 404
    tree = project.repository_tree(ref="main", recursive=True, per_page=2, get_all=True)
    blobs = sorted(t["path"] for t in tree if t["type"] == "blob")
    assert blobs == sorted(FILES)
    apps = project.repository_tree(path="apps", ref="main", get_all=True)
    assert sorted(t["name"] for t in apps) == ["api", "web"]


def test_commit_errors_follow_gitlab(project: Project) -> None:
    def fails(actions: list[dict[str, str]], **extra: object) -> tuple[int, str]:
        with pytest.raises(gitlab.GitlabCreateError) as err:
            project.commits.create(
                {
                    "branch": "b",
                    "start_branch": "main",
                    "commit_message": "m",
                    "actions": actions,
                    **extra,
                }
            )
        return err.value.response_code, str(err.value.error_message)

    assert fails([{"action": "create", "file_path": "README.md", "content": "x"}]) == (
        400,
        "A file with this name already exists",
    )
    assert fails([{"action": "update", "file_path": "missing.md", "content": "x"}]) == (
        400,
        "A file with this name doesn't exist",
    )
    stale = [
        {"action": "update", "file_path": "README.md", "content": "x", "last_commit_id": "0" * 40}
    ]
    assert fails(stale)[0] == 400
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.commits.create(
            {
                "branch": "nobranch",
                "commit_message": "m",
                "actions": [{"action": "delete", "file_path": "README.md"}],
            }
        )
    assert err.value.response_code == 400


def test_existing_branch_needs_force_to_restart(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    _commit(project, "remedy/x", {"README.md": "one\n"}, start_branch="main")
    with pytest.raises(gitlab.GitlabCreateError) as err:
        _commit(project, "remedy/x", {"README.md": "two\n"}, start_branch="main")
    assert "already exists" in str(err.value.error_message)
    _commit(project, "remedy/x", {"README.md": "three\n"})  # on top of the branch
    assert len(_git_log(gitlab_emulator, project_id, "remedy/x")) == 3
    _commit(project, "remedy/x", {"README.md": "four\n"}, start_branch="main", force=True)
    assert len(_git_log(gitlab_emulator, project_id, "remedy/x")) == 2
    assert gitlab_emulator.file_at(project_id, "remedy/x", "README.md") == "four\n"


def test_protected_branch_refusal_and_maintainer_access(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    with pytest.raises(gitlab.GitlabCreateError) as err:
        _commit(project, "main", {"README.md": "x\n"})
    assert err.value.response_code == 403
    assert [b.name for b in project.protectedbranches.list(get_all=True)] == ["main", "release/*"]
    project.branches.create({"branch": "scratch", "ref": "main"})
    with pytest.raises(gitlab.GitlabDeleteError) as derr:
        project.branches.delete("main")
    assert derr.value.response_code == 403
    project.branches.delete("scratch")
    assert sorted(b.name for b in project.branches.list(get_all=True)) == ["main"]
    with pytest.raises(gitlab.GitlabCreateError) as werr:
        _commit(project, "release/1.0", {"README.md": "x\n"}, start_branch="main")
    assert werr.value.response_code == 403
    gitlab_emulator.add_member(project_id, gitlab_emulator.bot_user_id, MAINTAINER)
    _commit(project, "main", {"README.md": "x\n"})
    assert gitlab_emulator.file_at(project_id, "main", "README.md") == "x\n"


def _branches(project: Project, n: int) -> list[str]:
    names = [f"remedy/fix-{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        _commit(project, name, {"README.md": f"{i}\n"}, start_branch="main")
    return names


def test_mr_create_list_paginated_and_duplicate(
    project: Project, gitlab_client: gitlab.Gitlab
) -> None:
    names = _branches(project, 7)
    for i, name in enumerate(names):
        project.mergerequests.create(
            {
                "source_branch": name,
                "target_branch": "main",
                "title": f"Fix {i}",
                "labels": "kube-remedy,security" if i % 2 else "kube-remedy",
            }
        )
    listed = project.mergerequests.list(state="opened", per_page=3, get_all=True)
    assert len(listed) == 7
    assert listed[0].title == "Fix 6"  # created_at desc by default
    assert len(project.mergerequests.list(labels="security", get_all=True)) == 3
    assert [m.iid for m in project.mergerequests.list(source_branch=names[3], get_all=True)] == [4]
    assert (
        len(project.mergerequests.list(author_username="kube-remedy", per_page=2, iterator=True))
        == 7
    )
    with pytest.warns(UserWarning, match="get_all=True"):
        assert len(project.mergerequests.list(per_page=5)) == 5
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.mergerequests.create(
            {"source_branch": names[0], "target_branch": "main", "title": "again"}
        )
    assert err.value.response_code == 409
    assert "Another open merge request already exists for this source branch: !1" in str(
        err.value.error_message
    )

    with httpx.Client(headers={"PRIVATE-TOKEN": "test-token"}) as http:
        raw = http.get(
            f"{gitlab_client.url}/api/v4/projects/1/merge_requests",
            params={"per_page": 2, "page": 2, "state": "opened"},
        )
    assert raw.headers["x-total"] == "7" and raw.headers["x-total-pages"] == "4"
    assert raw.headers["x-page"] == "2" and raw.headers["x-next-page"] == "3"
    assert raw.headers["x-prev-page"] == "1" and raw.headers["x-per-page"] == "2"
    assert [m["title"] for m in raw.json()] == ["Fix 4", "Fix 3"]
    next_link = raw.links["next"]["url"]
    assert (
        next_link.startswith(gitlab_client.url)
        and "page=3" in next_link
        and "state=opened" in next_link
    )


def test_mr_update_fields_and_state(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    _branches(project, 1)
    mr = project.mergerequests.create(
        {
            "source_branch": "remedy/fix-00",
            "target_branch": "main",
            "title": "t",
            "description": "d",
            "labels": ["a", "b"],
            "remove_source_branch": True,
        }
    )
    assert mr.labels == ["a", "b"] and mr.author["username"] == "kube-remedy"
    assert mr.force_remove_source_branch is True and mr.detailed_merge_status == "mergeable"
    project.mergerequests.update(mr.iid, {"add_labels": "c", "remove_labels": "a", "title": "t2"})
    mr = project.mergerequests.get(mr.iid)
    assert mr.labels == ["b", "c"] and mr.title == "t2"
    mr.description = "new"
    mr.state_event = "close"
    mr.save()
    assert mr.state == "closed" and mr.description == "new"
    assert project.mergerequests.list(state="opened", get_all=True) == []
    assert [
        m.iid for m in project.mergerequests.list(state="closed", search="T2", get_all=True)
    ] == [mr.iid]
    assert gitlab_emulator.merge_requests(project_id)[0]["state"] == "closed"


def test_conflicts_and_rebase(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    _commit(
        project,
        "remedy/web",
        {"apps/web/values.yaml": "replicaCount: 2\nsecurityContext: {}\n"},
        start_branch="main",
    )
    mr = project.mergerequests.create(
        {"source_branch": "remedy/web", "target_branch": "main", "title": "Web"}
    )
    assert mr.has_conflicts is False
    gitlab_emulator.push_as(
        project_id, "main", {"README.md": "moved\n"}, author="alice", message="Docs"
    )
    mr.rebase()
    mr = project.mergerequests.get(mr.iid)
    assert mr.merge_error is None
    assert [c.title for c in mr.commits()] == ["edit remedy/web"]
    assert _git_log(gitlab_emulator, project_id, "remedy/web")[1] == "alice|Docs"
    gitlab_emulator.push_as(
        project_id,
        "main",
        {"apps/web/values.yaml": "replicaCount: 9\n"},
        author="bob",
        message="Scale",
    )
    mr = project.mergerequests.get(mr.iid)
    assert mr.has_conflicts is True and mr.detailed_merge_status == "conflict"
    mr.rebase()
    assert project.mergerequests.get(mr.iid).merge_error.startswith("Rebase failed")


def test_foreign_commit_visible_in_mr_commits(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    gitlab_emulator.add_user("alice", name="Alice")
    _commit(project, "remedy/web", {"README.md": "bot\n"}, start_branch="main")
    mr = project.mergerequests.create(
        {"source_branch": "remedy/web", "target_branch": "main", "title": "Web"}
    )
    gitlab_emulator.push_as(
        project_id, "remedy/web", {"README.md": "human\n"}, author="alice", message="Tweak"
    )
    commits = project.mergerequests.get(mr.iid).commits()
    assert [(c.author_name, c.author_email) for c in commits] == [
        ("Alice", "alice@example.com"),
        ("kube-remedy", "kube-remedy@example.com"),
    ]
    compare = project.repository_compare("main", "remedy/web")
    assert len(compare["commits"]) == 2 and compare["diffs"][0]["new_path"] == "README.md"


def test_notes_and_award_emoji(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    _branches(project, 1)
    mr = project.mergerequests.create(
        {"source_branch": "remedy/fix-00", "target_branch": "main", "title": "t"}
    )
    first = mr.notes.create({"body": "first"})
    mr.notes.create({"body": "second"})
    first.awardemojis.create({"name": "thumbsup"})
    notes = mr.notes.list(sort="asc", get_all=True)
    assert [n.body for n in notes] == ["first", "second"]
    assert notes[0].author["username"] == "kube-remedy"
    assert [a.name for a in mr.notes.get(first.id).awardemojis.list(get_all=True)] == ["thumbsup"]
    assert [n["body"] for n in gitlab_emulator.notes(project_id, mr.iid)] == ["first", "second"]
    mr.discussions.create({"body": "third"})
    discussions = mr.discussions.list(get_all=True)
    assert [d.attributes["notes"][0]["body"] for d in discussions] == ["first", "second", "third"]
    assert all(d.individual_note for d in discussions)


def test_issue_lifecycle(project: Project) -> None:
    issue = project.issues.create(
        {"title": "Security dashboard", "description": "all good", "labels": "kube-remedy"}
    )
    issue.notes.create({"body": "update"})
    issue.description = "findings: 3"
    issue.save()
    found = project.issues.list(labels="kube-remedy", state="opened", get_all=True)
    assert [(i.iid, i.description) for i in found] == [(issue.iid, "findings: 3")]
    assert [n.body for n in issue.notes.list(get_all=True)] == ["update"]
    project.issues.update(issue.iid, {"state_event": "close"})
    assert project.issues.get(issue.iid).state == "closed"


def test_pipeline_artifacts(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    gitlab_emulator.add_pipeline(project_id, "main", {"old": {"r.json": b"old"}})
    newest = gitlab_emulator.add_pipeline(
        project_id, "main", {"kubescape": {"out/report.json": b'{"ok": 1}'}, "lint": None}
    )
    pipelines = project.pipelines.list(ref="main", order_by="id", sort="desc", get_all=True)
    assert len(pipelines) == 2
    assert pipelines[0].id == newest and pipelines[0].status == "failed"
    jobs = {j.name: j for j in pipelines[0].jobs.list(get_all=True)}
    assert set(jobs) == {"kubescape", "lint"}
    job = project.jobs.get(jobs["kubescape"].id, lazy=True)
    with zipfile.ZipFile(io.BytesIO(job.artifacts())) as zf:
        assert zf.read("out/report.json") == b'{"ok": 1}'
    assert job.artifact("out/report.json") == b'{"ok": 1}'
    with pytest.raises(gitlab.GitlabGetError) as err:
        job.artifact("missing.json")
    assert err.value.response_code == 404
    with pytest.raises(gitlab.GitlabGetError):
        project.jobs.get(jobs["lint"].id, lazy=True).artifacts()


def test_users_and_members(
    gitlab_client: gitlab.Gitlab, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    alice = gitlab_emulator.add_user("alice", name="Alice A")
    gitlab_emulator.add_member(project_id, alice, MAINTAINER)
    assert [u.id for u in gitlab_client.users.list(username="alice", get_all=True)] == [alice]
    project = gitlab_client.projects.get(project_id, lazy=True)
    assert project.members_all.get(alice).access_level == MAINTAINER
    assert project.members_all.get(gitlab_emulator.bot_user_id).access_level == 30


def test_rate_limit_is_retried_by_python_gitlab(
    gitlab_emulator: GitLabEmulator, project: Project
) -> None:
    gitlab_emulator.reset_counts()
    gitlab_emulator.inject(
        status=429, times=2, retry_after=0, method="GET", path_contains="/repository/files/"
    )
    assert project.files.raw("README.md", ref="main") == b"# cd-config\n"
    assert [m for m, p in gitlab_emulator.requests if "/repository/files/" in p] == ["GET"] * 3
    assert gitlab_emulator.writes() == 0


def test_rate_limit_surfaces_when_not_obeyed_or_exhausted(
    gitlab_client: gitlab.Gitlab, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    gitlab_emulator.inject(status=429, retry_after=0)
    with pytest.raises(gitlab.GitlabGetError) as err:
        gitlab_client.projects.get(project_id, obey_rate_limit=False)
    assert err.value.response_code == 429
    gitlab_emulator.inject(status=429, times=3, retry_after=0)
    with pytest.raises(gitlab.GitlabGetError):
        gitlab_client.projects.get(project_id, max_retries=1)
    # one fault is left: the default client waits it out
    assert gitlab_client.projects.get(project_id).id == project_id


def test_concurrent_clients_are_served(gitlab_emulator: GitLabEmulator, project_id: int) -> None:
    def work(n: int) -> str:
        with gitlab.Gitlab(gitlab_emulator.url, private_token=gitlab_emulator.token) as gl:
            project = gl.projects.get(project_id, lazy=True)
            _commit(project, f"remedy/c{n}", {"README.md": f"{n}\n"}, start_branch="main")
            return project.mergerequests.create(
                {"source_branch": f"remedy/c{n}", "target_branch": "main", "title": f"c{n}"}
            ).web_url

    with ThreadPoolExecutor(max_workers=4) as pool:
        urls = list(pool.map(work, range(8)))
    assert len(set(urls)) == 8
    assert len(gitlab_emulator.merge_requests(project_id)) == 8
    assert all(
        gitlab_emulator.file_at(project_id, f"remedy/c{n}", "README.md") == f"{n}\n"
        for n in range(8)
    )


def test_server_errors_retried_only_when_asked(
    gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    url, token = gitlab_emulator.url, gitlab_emulator.token
    gitlab_emulator.inject(status=502, times=1)
    with (
        gitlab.Gitlab(url, private_token=token) as plain,
        pytest.raises(gitlab.GitlabGetError) as err,
    ):
        plain.projects.get(project_id)
    assert err.value.response_code == 502
    gitlab_emulator.inject(status=500, times=2, method="GET")
    with gitlab.Gitlab(url, private_token=token, retry_transient_errors=True) as retrying:
        assert retrying.projects.get(project_id).id == project_id
    gitlab_emulator.inject(status=200, delay=0.2)
    started = time.monotonic()
    with gitlab.Gitlab(url, private_token=token) as plain:
        plain.projects.get(project_id)
    assert time.monotonic() - started >= 0.2


def test_writes_are_counted(gitlab_emulator: GitLabEmulator, project: Project) -> None:
    gitlab_emulator.reset_counts()
    _commit(project, "remedy/w", {"README.md": "w\n"}, start_branch="main")
    project.mergerequests.create(
        {"source_branch": "remedy/w", "target_branch": "main", "title": "w"}
    )
    project.mergerequests.list(get_all=True)
    assert gitlab_emulator.writes() == 2
    assert gitlab_emulator.requests[0] == ("POST", "/api/v4/projects/1/repository/commits")


def test_unauthenticated_requests_are_401(gitlab_emulator: GitLabEmulator, project_id: int) -> None:
    with (
        gitlab.Gitlab(gitlab_emulator.url) as anonymous,
        pytest.raises(gitlab.GitlabAuthenticationError),
    ):
        anonymous.projects.get(project_id)
    raw = httpx.get(
        f"{gitlab_emulator.url}/api/v4/projects/{project_id}", headers={"PRIVATE-TOKEN": "wrong"}
    )
    assert raw.status_code == 401 and raw.json() == {"message": "401 Unauthorized"}


def test_human_merge_and_close_and_bot_cannot_merge_protected(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    gitlab_emulator.add_user("alice", name="Alice")
    _branches(project, 2)
    first = project.mergerequests.create(
        {
            "source_branch": "remedy/fix-00",
            "target_branch": "main",
            "title": "a",
            "remove_source_branch": True,
        }
    )
    second = project.mergerequests.create(
        {"source_branch": "remedy/fix-01", "target_branch": "main", "title": "b"}
    )
    with pytest.raises(gitlab.GitlabAuthenticationError) as err:
        first.merge()
    assert err.value.response_code == 401
    gitlab_emulator.merge(project_id, first.iid, by="alice")
    merged = project.mergerequests.get(first.iid)
    assert merged.state == "merged" and merged.merged_by["username"] == "alice"
    assert gitlab_emulator.file_at(project_id, "main", "README.md") == "0\n"
    assert "remedy/fix-00" not in gitlab_emulator.branches(project_id)
    assert (
        _git_log(gitlab_emulator, project_id, "main")[0]
        == "Alice|Merge branch 'remedy/fix-00' into 'main'"
    )
    gitlab_emulator.close_as(project_id, second.iid, by="alice")
    assert [m.iid for m in project.mergerequests.list(state="merged", get_all=True)] == [first.iid]
    assert project.mergerequests.get(second.iid).closed_by["username"] == "alice"
    # merging main moved it: the other branch now conflicts on README.md
    second.state_event = "reopen"
    second.save()
    assert project.mergerequests.get(second.iid).has_conflicts is True


def test_labels_latest_pipeline_and_jobs(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    project.labels.create({"name": "kube-remedy", "color": "#8fbc8f", "description": "bot"})
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.labels.create({"name": "kube-remedy", "color": "#000000"})
    assert err.value.response_code == 409
    assert [(label.name, label.color) for label in project.labels.list(get_all=True)] == [
        ("kube-remedy", "#8fbc8f")
    ]
    first = gitlab_emulator.add_pipeline(project_id, "main", {"scan": None}, status="success")
    latest = gitlab_emulator.add_pipeline(project_id, "main", {"scan": {"a.json": b"1"}})
    assert project.pipelines.latest(ref="main").id == latest
    assert project.pipelines.get(first).status == "success"
    jobs = project.jobs.list(scope="failed", get_all=True)
    assert [j.pipeline["id"] for j in jobs] == [latest]
    assert project.artifacts.raw("main", "a.json", "scan") == b"1"


def test_raw_http_details(gitlab_emulator: GitLabEmulator, project_id: int) -> None:
    base = f"{gitlab_emulator.url}/api/v4/projects/platform%2Fcd-config"
    with httpx.Client(headers={"PRIVATE-TOKEN": gitlab_emulator.token}) as http:
        head = http.head(
            f"{base}/repository/files/apps%2Fweb%2Fvalues.yaml", params={"ref": "main"}
        )
        assert head.status_code == 200 and len(head.headers["x-gitlab-blob-id"]) == 40
        missing = http.get(f"{base}/no/such/route")
        assert missing.status_code == 404 and missing.json() == {"error": "404 Not Found"}
        gitlab_emulator.inject(status=429, retry_after=7)
        limited = http.get(base)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
        assert http.get(base).json()["id"] == project_id
        bad = http.post(f"{base}/merge_requests", json={"source_branch": "main"})
        assert bad.status_code == 400
        assert bad.json() == {"error": "target_branch is missing, title is missing"}


def test_human_mr_and_comment_helpers(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    gitlab_emulator.add_user("carol", name="Carol")
    gitlab_emulator.push_as(
        project_id, "carol/feature", {"README.md": "c\n"}, author="carol", message="C"
    )
    iid = gitlab_emulator.open_mr_as(
        project_id, "carol/feature", "Carol's", by="carol", labels=["x"]
    )
    bot_mrs = project.mergerequests.list(author_username="kube-remedy", get_all=True)
    assert bot_mrs == []
    mr = project.mergerequests.get(iid)
    assert mr.author["username"] == "carol" and mr.labels == ["x"]
    gitlab_emulator.comment_as(project_id, iid, "@kube-remedy ignore", by="carol")
    notes = mr.notes.list(get_all=True)
    assert [(n.author["username"], n.body) for n in notes] == [("carol", "@kube-remedy ignore")]
    with pytest.raises(ValueError, match="no user"):
        gitlab_emulator.comment_as(project_id, iid, "x", by="nobody")


def test_files_api_writes_commits(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    project.branches.create({"branch": "remedy/files", "ref": "main"})
    project.files.create(
        {
            "file_path": "apps/new.yaml",
            "branch": "remedy/files",
            "content": "x: 1\n",
            "commit_message": "Add",
        }
    )
    f = project.files.get("apps/new.yaml", ref="remedy/files")
    f.content = "x: 2\n"
    f.save(branch="remedy/files", commit_message="Update")
    project.files.delete("README.md", branch="remedy/files", commit_message="Drop readme")
    assert gitlab_emulator.file_at(project_id, "remedy/files", "apps/new.yaml") == "x: 2\n"
    assert gitlab_emulator.file_at(project_id, "remedy/files", "README.md") is None
    assert [
        line.split("|")[1] for line in _git_log(gitlab_emulator, project_id, "remedy/files")
    ] == [
        "Drop readme",
        "Update",
        "Add",
        "Initial commit",
    ]
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.files.create(
            {
                "file_path": "apps/new.yaml",
                "branch": "remedy/files",
                "content": "",
                "commit_message": "Again",
            }
        )
    assert err.value.error_message == "A file with this name already exists"
    with pytest.raises(gitlab.GitlabListError) as bad:
        project.mergerequests.list(author_id="abc", get_all=True)
    assert bad.value.response_code == 400


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, str, dict[str, object]]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(
            (self.headers["X-Gitlab-Event"], self.headers.get("X-Gitlab-Token", ""), body)
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_webhooks_are_delivered_in_order(
    project: Project, gitlab_emulator: GitLabEmulator, project_id: int
) -> None:
    received: list[tuple[str, str, dict[str, object]]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        with pytest.raises(gitlab.GitlabCreateError):
            project.hooks.create({"url": url, "token": "s3cret", "note_events": True})
        gitlab_emulator.add_member(project_id, gitlab_emulator.bot_user_id, MAINTAINER)
        project.hooks.create(
            {
                "url": url,
                "token": "s3cret",
                "note_events": True,
                "merge_requests_events": True,
                "push_events": False,
            }
        )
        gitlab_emulator.add_user("dana")
        _commit(project, "remedy/h", {"README.md": "h\n"}, start_branch="main")
        mr = project.mergerequests.create(
            {"source_branch": "remedy/h", "target_branch": "main", "title": "H"}
        )
        gitlab_emulator.comment_as(project_id, mr.iid, "@kube-remedy rebase", by="dana")
        gitlab_emulator.close_as(project_id, mr.iid, by="dana")
        gitlab_emulator.flush_hooks()
    finally:
        server.shutdown()
        server.server_close()
    kinds = [(event, body["object_kind"]) for event, _, body in received]
    assert kinds == [
        ("Merge Request Hook", "merge_request"),
        ("Note Hook", "note"),
        ("Merge Request Hook", "merge_request"),
    ]
    assert {token for _, token, _ in received} == {"s3cret"}
    note = received[1][2]
    assert note["object_attributes"]["note"] == "@kube-remedy rebase"  # type: ignore[index]
    assert note["merge_request"]["iid"] == mr.iid  # type: ignore[index]
    assert note["user"]["username"] == "dana"  # type: ignore[index]
    assert received[2][2]["object_attributes"]["action"] == "close"  # type: ignore[index]
    assert [d.status for d in gitlab_emulator.hook_deliveries] == [200, 200, 200]


def test_api_commits_are_committed_by_the_tokens_user_with_its_commit_email(
    gitlab_emulator: GitLabEmulator, gitlab_client: gitlab.Gitlab, project: Project
) -> None:
    """Like GitLab: ``GET /user`` names the user's ``commit_email``, the committer of the
    commits it makes through the API whatever author it passes; an amend by a person keeps
    the author and makes the person the committer."""
    gitlab_client.auth()
    me = gitlab_client.user.attributes  # type: ignore[union-attr]
    sha = project.commits.create(
        {
            "branch": "remedy/x",
            "start_branch": "main",
            "commit_message": "fix",
            "author_email": "bot@noreply.example",
            "author_name": "bot",
            "actions": [{"action": "update", "file_path": "README.md", "content": "# x\n"}],
        }
    ).id
    commit = project.commits.get(sha)
    assert (commit.author_email, commit.committer_email) == (
        "bot@noreply.example",
        me["commit_email"],
    )
    gitlab_emulator.add_user("alice")
    amended = gitlab_emulator.amend_as(project.id, "remedy/x", {"README.md": "# y\n"}, by="alice")
    again = project.commits.get(amended)
    assert again.author_email == "bot@noreply.example"
    assert again.committer_email == "alice@example.com" and again.parent_ids == commit.parent_ids


def test_resource_label_events_name_who_added_and_removed_a_label(
    gitlab_emulator: GitLabEmulator, gitlab_client: gitlab.Gitlab, project: Project
) -> None:
    project.branches.create({"branch": "feature", "ref": "main"})
    _commit(project, "feature", {"README.md": "# f\n"})
    mr = project.mergerequests.create(
        {"source_branch": "feature", "target_branch": "main", "title": "t", "labels": "a"}
    )
    project.mergerequests.update(mr.iid, {"add_labels": "b", "remove_labels": "a"})
    gitlab_emulator.add_user("alice")
    gitlab_emulator.label_as(project.id, mr.iid, add=["c"], by="alice")
    events = [
        (e.action, e.label["name"], e.user["username"])
        for e in project.mergerequests.get(mr.iid, lazy=True).resourcelabelevents.list(get_all=True)
    ]
    assert events == [
        ("add", "a", "kube-remedy"),
        ("add", "b", "kube-remedy"),
        ("remove", "a", "kube-remedy"),
        ("add", "c", "alice"),
    ]
