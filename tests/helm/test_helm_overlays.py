"""Flux HelmReleases in a kustomize base, deployed (and patched) by overlays."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.locate.gitops import scan_gitops
from bot.locate.helm_overlays import overlay_releases
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
    assert sorted((a.name, a.namespace, a.inline_path is None) for a in apps) == [
        ("worker (kustomize overlay apps/production)", "production", True),
        ("worker (kustomize overlay apps/staging)", "staging", False),
    ]
    assert {a.manifest for a in apps} == {"apps/base/worker.yaml"}


def _plan(repo: Path, namespace: str):  # type: ignore[no-untyped-def]
    finding = finding_for("C-0034", "Deployment", "shop-worker", namespace)
    return build_plan(Report("kubescape", "cluster", (finding,)), repo)


def test_a_fix_the_overlay_patch_would_override_is_not_claimed(tmp_path: Path) -> None:
    """Production patches the values the fix would change in the base: fixing the base file
    would leave production as it is, so no change set claims production fixed."""
    plan = _plan(_repo(tmp_path, patched=True), "production")
    edited = [f.path for cs in plan.change_sets for f in cs.files]
    assert "apps/base/worker.yaml" not in edited
    assert not plan.fixed_findings
    (left,) = plan.unfixable
    assert "the overlay's values patch apps/production/values.yaml" in left.reason


def test_an_overlay_that_keeps_the_base_values_is_fixed_in_the_base(tmp_path: Path) -> None:
    plan = _plan(_repo(tmp_path, patched=True), "staging")
    (cs,) = plan.change_sets
    assert [f.path for f in cs.files] == ["apps/base/worker.yaml"]
    values = load_documents(cs.files[0].after)[0]["spec"]["values"]
    assert values["serviceAccount"]["automountToken"] is False
