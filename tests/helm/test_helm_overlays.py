"""Flux HelmReleases in a kustomize base, deployed (and patched) by overlays."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.locate.gitops import scan_gitops
from bot.locate.helm_overlays import OverlayRelease, overlay_releases
from bot.plan import build_plan
from bot.sources.base import Report
from fixers.edits import load_documents
from tests.helm.helpers import finding_for

FIXTURES = Path(__file__).parent / "charts"

RELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: worker
spec:
  releaseName: shop
  chart:
    spec:
      chart: ./charts/worker
      sourceRef: {kind: GitRepository, name: cd-config}
  values:
    serviceAccount:
      automountToken: true
"""
KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
PRODUCTION_PATCH = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: worker
spec:
  values:
    serviceAccount:
      automountToken: true  # production's jobs call the API
"""


def _repo(tmp_path: Path, patched: bool) -> Path:
    repo = tmp_path / "cd-config"
    shutil.copytree(FIXTURES / "worker", repo / "charts" / "worker")
    files = {
        "apps/base/worker.yaml": RELEASE,
        "apps/base/kustomization.yaml": KUSTOMIZATION + "resources: [worker.yaml]\n",
        "apps/staging/kustomization.yaml": KUSTOMIZATION
        + "namespace: staging\nresources: [../base]\n",
        "apps/production/kustomization.yaml": KUSTOMIZATION
        + "namespace: production\nresources: [../base]\n"
        + ("patches:\n  - path: values.yaml\n" if patched else ""),
        "apps/production/values.yaml": PRODUCTION_PATCH,
    }
    for relpath, text in files.items():
        (repo / relpath).parent.mkdir(parents=True, exist_ok=True)
        (repo / relpath).write_text(text)
    return repo


def test_each_deploying_overlay_is_a_deployment_and_the_base_alone_is_not(tmp_path: Path) -> None:
    repo = _repo(tmp_path, patched=True)
    apps = overlay_releases(repo, scan_gitops(repo))
    assert sorted((a.name, a.namespace) for a in apps) == [
        ("worker (kustomize overlay apps/production)", "production"),
        ("worker (kustomize overlay apps/staging)", "staging"),
    ]
    assert all(isinstance(a, OverlayRelease) for a in apps)
    assert {a.manifest for a in apps} == {"apps/base/worker.yaml"}


def _plan(repo: Path, namespace: str):  # type: ignore[no-untyped-def]
    finding = finding_for("C-0034", "Deployment", "shop-worker", namespace)
    return build_plan(Report("kubescape", "cluster", (finding,)), repo)


def test_a_value_the_overlay_patch_sets_is_fixed_in_the_patch(tmp_path: Path) -> None:
    """Production patches the values the fix changes: the patch is edited, not the base (a
    fix there would leave production as it is)."""
    repo = _repo(tmp_path, patched=True)
    patch = repo / "apps/production/values.yaml"
    patch.write_text(patch.read_text().replace("  # production's jobs call the API", ""))
    plan = _plan(repo, "production")
    (cs,) = plan.change_sets
    assert [f.path for f in cs.files] == ["apps/production/values.yaml"]
    values = load_documents(cs.files[0].after)[0]["spec"]["values"]
    assert values["serviceAccount"]["automountToken"] is False
    assert "overlays whose rendered chart changes: apps/production" in cs.fixes[0].location.why


def test_a_patched_value_whose_comment_says_why_is_left_to_a_person(tmp_path: Path) -> None:
    plan = _plan(_repo(tmp_path, patched=True), "production")
    assert not plan.change_sets
    (left,) = plan.unfixable
    assert 'comment ("production\'s jobs call the API") says why' in left.reason


def test_an_overlay_other_overlays_patch_differently_gets_a_patch_of_its_own(
    tmp_path: Path,
) -> None:
    plan = _plan(_repo(tmp_path, patched=True), "staging")
    (cs,) = plan.change_sets
    assert [f.path for f in cs.files] == [
        "apps/staging/kustomization.yaml",
        "apps/staging/remedy-patch-helmrelease-worker.yaml",
    ]
    kustomization = load_documents(cs.files[0].after)[0]
    assert kustomization["patches"] == [
        {
            "path": "remedy-patch-helmrelease-worker.yaml",
            "target": {"kind": "HelmRelease", "name": "worker"},
        }
    ]


def test_a_value_every_overlay_inherits_is_fixed_in_the_base(tmp_path: Path) -> None:
    plan = _plan(_repo(tmp_path, patched=False), "staging")
    (cs,) = plan.change_sets
    assert [f.path for f in cs.files] == ["apps/base/worker.yaml"]
    values = load_documents(cs.files[0].after)[0]["spec"]["values"]
    assert values["serviceAccount"]["automountToken"] is False
    why = cs.fixes[0].location.why
    assert "overlays whose rendered chart changes: apps/production, apps/staging" in why
