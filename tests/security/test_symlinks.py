"""Symlinked manifests: a link inside the repository is fixed at its target (the link stays a
link, unchanged); a link leaving the repository, dangling or looping refuses that finding alone,
and the rest of the run goes on. No forge writes through a link or an unsafe path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.errors import RepositoryError
from bot.forge.local import LocalForge
from bot.locate.base import FileOverlay
from tests.security._input_support import (
    blob,
    branches,
    checkov_report,
    commit_all,
    deployment,
    run,
    tree,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "cd-config"
    (repo / "apps" / "shop").mkdir(parents=True)
    (repo / "jobs").mkdir()
    (repo / "jobs" / "frontend-real.yaml").write_text(deployment("frontend"))
    (repo / "apps" / "shop" / "cart.yaml").write_text(deployment("cart"))
    return repo


def test_link_inside_the_repository_is_fixed_at_its_target(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.symlink("../../jobs/frontend-real.yaml", repo / "apps" / "shop" / "frontend.yaml")
    commit_all(repo)
    report = checkov_report(tmp_path / "r.json", [("apps/shop/frontend.yaml", "frontend")])
    code, out, err = run(capsys, "apply", "--report", str(report), "--repo", str(repo))
    assert code == 0, out + err
    [branch] = branches(repo)
    before, after = tree(repo, "main"), tree(repo, branch)
    # the link is still a link with the same target text; the real file carries the fix
    assert after["apps/shop/frontend.yaml"] == before["apps/shop/frontend.yaml"]
    assert after["apps/shop/frontend.yaml"][0] == "120000"
    assert after["jobs/frontend-real.yaml"][0] == "100644"
    assert after["jobs/frontend-real.yaml"] != before["jobs/frontend-real.yaml"]
    fixed = blob(repo, branch, "jobs/frontend-real.yaml").decode()
    assert "allowPrivilegeEscalation: false" in fixed and "kind: Deployment" in fixed
    assert set(after) == set(before)


def _outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside.yaml"
    target.write_text(deployment("frontend"))
    return target


@pytest.mark.parametrize(
    ("make_link", "reason"),
    [
        (lambda repo, tmp: os.symlink(_outside(tmp), repo / "apps/shop/frontend.yaml"), "outside"),
        (
            lambda repo, tmp: os.symlink("../../../outside.yaml", repo / "apps/shop/frontend.yaml"),
            "outside",
        ),
        (lambda repo, tmp: os.symlink("gone.yaml", repo / "apps/shop/frontend.yaml"), "dangling"),
        (
            lambda repo, tmp: (
                os.symlink("loop-b.yaml", repo / "apps/shop/frontend.yaml"),
                os.symlink("frontend.yaml", repo / "apps/shop/loop-b.yaml"),
            ),
            "loop",
        ),
    ],
    ids=["absolute-outside", "relative-outside", "dangling", "loop"],
)
def test_refused_link_refuses_its_finding_alone(
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_link: object,
    reason: str,
) -> None:
    make_link(repo, tmp_path)  # type: ignore[operator]
    commit_all(repo)
    outside = tmp_path / "outside.yaml"
    before = outside.read_bytes() if outside.exists() else None
    report = checkov_report(
        tmp_path / "r.json",
        [("apps/shop/frontend.yaml", "frontend"), ("apps/shop/cart.yaml", "cart")],
    )
    code, out, err = run(capsys, "apply", "--report", str(report), "--repo", str(repo))
    assert code == 1, out + err  # one finding left, with its reason; not a usage error
    assert "Traceback" not in out + err
    assert "apps/shop/frontend.yaml" in out and reason in out
    # the rest of the run goes on: the cart is fixed on its own branch
    [branch] = branches(repo)
    assert "cart" in branch
    assert set(tree(repo, branch)) == set(tree(repo, "main"))
    assert (
        tree(repo, branch)["apps/shop/frontend.yaml"]
        == tree(repo, "main")["apps/shop/frontend.yaml"]
    )
    if before is not None:
        assert outside.read_bytes() == before  # never written, and never read into an MR
        assert "outside.yaml" not in out or "nginx" not in out


def test_local_forge_never_writes_through_a_link_or_an_unsafe_path(repo: Path) -> None:
    os.symlink("../../jobs/frontend-real.yaml", repo / "apps" / "shop" / "frontend.yaml")
    os.symlink("../jobs", repo / "apps" / "jobs-link")
    commit_all(repo)
    forge = LocalForge(repo)
    for path in ("apps/shop/frontend.yaml", "apps/jobs-link/frontend-real.yaml"):
        with pytest.raises(RepositoryError, match="symlink"):
            forge.commit_files("remedy/x", {path: "kind: Pod\n"}, "m", start_branch="main")
    for path in ("../escape.yaml", "/etc/passwd", "apps/./x.yaml", ".git/config", "a//b.yaml"):
        with pytest.raises(RepositoryError, match="not a plain path"):
            forge.commit_files("remedy/x", {path: "x: 1\n"}, "m", start_branch="main")
    assert forge.list_files() == forge.list_files("main")
    assert "remedy/x" not in (repo / ".git" / "refs" / "heads").iterdir().__repr__()


def test_overlay_refuses_to_write_through_a_link(repo: Path) -> None:
    os.symlink("../../jobs/frontend-real.yaml", repo / "apps" / "shop" / "frontend.yaml")
    os.symlink("../jobs", repo / "apps" / "jobs-link")
    overlay = FileOverlay(repo)
    with pytest.raises(RepositoryError, match="symlink"):
        overlay.write("apps/shop/frontend.yaml", "kind: Pod\n")
    with pytest.raises(RepositoryError, match="symlink"):
        overlay.write("apps/jobs-link/new.yaml", "kind: Pod\n")
    assert overlay.changes() == ()


# --------------------------------------------------------------------------- Helm charts

CHART = "apiVersion: v2\nname: {name}\nversion: 0.1.0\n"
VALUES = "securityContext: {}\n"
TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          securityContext: {{{{- toYaml .Values.securityContext | nindent 12 }}}}
"""


def _chart(repo: Path, name: str) -> Path:
    chart = repo / "charts" / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART.format(name=name))
    (chart / "values.yaml").write_text(VALUES)
    (chart / "templates" / "deployment.yaml").write_text(TEMPLATE.format(name=name))
    return chart


def _plan(repo: Path, *findings: tuple[str, str]) -> Any:
    from bot.plan import build_plan
    from bot.sources.base import Report
    from fixers.model import Finding, ResourceRef, SourceHint

    return build_plan(
        Report(
            "kubescape",
            "test",
            tuple(
                Finding(
                    control_id=control,
                    resource=ResourceRef(
                        api_version="apps/v1", kind="Deployment", namespace="default", name=name
                    ),
                    container="web",
                    source=SourceHint(chart_path=f"charts/{name}"),
                )
                for control, name in findings
            ),
        ),
        repo,
    )


def _files(plan: Any) -> dict[str, str]:
    return {f.path: f.after for cs in plan.change_sets for f in cs.files}


def test_helm_values_file_link_is_fixed_at_its_target(tmp_path: Path) -> None:
    repo = tmp_path / "cd-config"
    chart = _chart(repo, "shop")
    (repo / "shared").mkdir()
    (chart / "values.yaml").rename(repo / "shared" / "shop-values.yaml")
    os.symlink("../../shared/shop-values.yaml", chart / "values.yaml")
    plan = _plan(repo, ("C-0016", "shop"))
    assert not plan.unfixable, [u.reason for u in plan.unfixable]
    files = _files(plan)
    assert set(files) == {"shared/shop-values.yaml"}  # the target, never the link
    assert "allowPrivilegeEscalation: false" in files["shared/shop-values.yaml"]
    assert os.readlink(chart / "values.yaml") == "../../shared/shop-values.yaml"
    [fix] = [f for cs in plan.change_sets for f in cs.fixes]
    assert "through the symlink charts/shop/values.yaml" in fix.location.why


def test_helm_template_link_is_fixed_at_its_target(tmp_path: Path) -> None:
    repo = tmp_path / "cd-config"
    chart = _chart(repo, "shop")
    (repo / "shared").mkdir()
    (chart / "templates" / "deployment.yaml").rename(repo / "shared" / "deployment.yaml")
    os.symlink("../../../shared/deployment.yaml", chart / "templates" / "deployment.yaml")
    plan = _plan(repo, ("C-0034", "shop"))  # automountServiceAccountToken: exposed in the template
    assert not plan.unfixable, [u.reason for u in plan.unfixable]
    files = _files(plan)
    assert "shared/deployment.yaml" in files
    assert ".Values.automountServiceAccountToken" in files["shared/deployment.yaml"]
    assert "charts/shop/templates/deployment.yaml" not in files
    assert (chart / "templates" / "deployment.yaml").is_symlink()


@pytest.mark.parametrize(
    ("make_link", "reason"),
    [
        (lambda chart, tmp: os.symlink(tmp / "evil.yaml", chart / "templates/x.yaml"), "outside"),
        (
            lambda chart, tmp: (
                (chart / "values.yaml").unlink(),
                os.symlink(tmp / "evil.yaml", chart / "values.yaml"),
            ),
            "outside",
        ),
        (lambda chart, tmp: os.symlink(tmp, chart / "templates/dir"), "outside"),
        (lambda chart, tmp: os.symlink("gone.yaml", chart / "templates/x.yaml"), "dangling"),
        (
            lambda chart, tmp: (
                os.symlink("b.yaml", chart / "templates/a.yaml"),
                os.symlink("a.yaml", chart / "templates/b.yaml"),
            ),
            "loop",
        ),
        (lambda chart, tmp: os.symlink("../templates", chart / "templates/up"), "not a file"),
    ],
    ids=["template-outside", "values-outside", "dir-outside", "dangling", "loop", "dir-inside"],
)
def test_helm_chart_with_a_bad_link_is_refused_before_rendering(
    tmp_path: Path, make_link: object, reason: str
) -> None:
    repo = tmp_path / "cd-config"
    bad = _chart(repo, "evil")
    _chart(repo, "shop")
    # Were Helm to read this template, the refusal would carry its failure (and its secret).
    (tmp_path / "evil.yaml").write_text('{{ fail "SECRET-READ-BY-HELM" }}\n')
    make_link(bad, tmp_path)  # type: ignore[operator]
    plan = _plan(repo, ("C-0016", "evil"), ("C-0016", "shop"))
    [refused] = plan.unfixable
    assert refused.finding.resource.name == "evil"
    assert "symlink" in refused.reason and reason in refused.reason, refused.reason
    assert "SECRET" not in refused.reason
    # the other chart's finding is fixed as usual
    assert set(_files(plan)) == {"charts/shop/values.yaml"}


# --------------------------------------------------------------------------- GitLab


def test_gitlab_link_is_fixed_at_its_target_and_an_escaping_link_refused_alone(
    gitlab_emulator: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through python-gitlab and the emulator: the tree says mode 120000, the files API gives
    the target text; the bot's branch changes the real file and leaves both links alone."""
    monkeypatch.setenv("REMEDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REMEDY_CONFIG", raising=False)
    pid = gitlab_emulator.create_project(
        "platform/cd-config",
        {
            "jobs/frontend-real.yaml": deployment("frontend"),
            "apps/shop/cart.yaml": deployment("cart"),
        },
        symlinks={
            "apps/shop/frontend.yaml": "../../jobs/frontend-real.yaml",
            "apps/shop/escape.yaml": "../../../etc/escape.yaml",
        },
    )
    report = checkov_report(
        tmp_path / "r.json",
        [
            ("apps/shop/frontend.yaml", "frontend"),
            ("apps/shop/escape.yaml", "escape"),
            ("apps/shop/cart.yaml", "cart"),
        ],
    )
    argv = ["run", "--gitlab-url", gitlab_emulator.url, "--project", "platform/cd-config"]
    code, out, err = run(capsys, *argv, "--token", gitlab_emulator.token, "--report", str(report))
    assert code == 1, out + err  # the escaping link's finding is left, with its reason
    assert "Traceback" not in out + err
    assert "1 findings not fixable" in out
    [dashboard] = gitlab_emulator.issues(pid)
    assert "escape" in dashboard["description"]
    assert "outside the repository" in dashboard["description"]
    repo = gitlab_emulator.repo_path(pid)
    branch = "remedy/security-context/jobs-frontend-real"
    assert set(branches(repo)) == {"remedy/security-context/apps-shop-cart", branch}
    main = tree(repo, "main")
    after = tree(repo, branch)
    assert after["apps/shop/frontend.yaml"] == main["apps/shop/frontend.yaml"]
    assert after["apps/shop/frontend.yaml"][0] == "120000"
    assert after["apps/shop/escape.yaml"] == main["apps/shop/escape.yaml"]
    assert after["jobs/frontend-real.yaml"] != main["jobs/frontend-real.yaml"]
    fixed = blob(repo, branch, "jobs/frontend-real.yaml").decode()
    assert "allowPrivilegeEscalation: false" in fixed and "kind: Deployment" in fixed
    assert set(after) == set(main)


def test_gitlab_forge_never_writes_through_a_link(gitlab_emulator: Any) -> None:
    from bot.forge.gitlab import GitLabForge

    pid = gitlab_emulator.create_project(
        "platform/links",
        {"jobs/real.yaml": "kind: Pod\n"},
        symlinks={"apps/link.yaml": "../jobs/real.yaml", "apps/dir": "../jobs"},
    )
    forge = GitLabForge(gitlab_emulator.url, gitlab_emulator.token, "platform/links")
    assert forge.links("main") == {"apps/link.yaml", "apps/dir"}
    assert forge.read_file("apps/link.yaml") == "../jobs/real.yaml"  # the files API: the target
    for path in ("apps/link.yaml", "apps/dir/real.yaml"):
        with pytest.raises(RepositoryError, match="symlink on main"):
            forge.commit_files("remedy/x", {path: "kind: Pod\n"}, "m", start_branch="main")
    assert "remedy/x" not in gitlab_emulator.branches(pid)
