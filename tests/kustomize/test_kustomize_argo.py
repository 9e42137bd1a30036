"""Argo CD Applications that add their own ``kustomize:`` images and patches to an overlay.

The storefront repository's base runs ``frontend:latest``; each Application pins the image
(staging a tag, production a digest) and adds a patch (staging allows privilege escalation,
production mounts the service-account token; production's Application is the second document
of its file)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import regressions
from bot.locate.base import FileOverlay
from bot.locate.gitops import argo_image, deployed_paths
from bot.locate.kustomize import DIFF_META, INLINE_META, OVERLAYS_META
from bot.locate.kustomize_build import KustomizeReader
from fixers.edits import load_documents
from fixers.model import AlreadyCompliant, Finding, ResourceRef
from fixers.policy import FixContext
from fixers.registry import fixer_for, run_fixer
from fixers.view import ManifestPodView
from tests.kustomize.support import (
    changed_lines,
    engine_repo,
    kubectl_build,
    only_change_set,
    overlay_finding,
    plan_of,
)

STOREFRONT = Path(__file__).parent / "repos" / "storefront"
STAGING_APP, PRODUCTION_APP = "apps/storefront-staging.yaml", "apps/storefront-production.yaml"


@pytest.fixture(params=["kubectl", "reader"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return engine_repo(STOREFRONT, request.param, tmp_path, monkeypatch)


def cluster_finding(control: str, namespace: str, container: str | None) -> Finding:
    return Finding(
        control_id=control,
        scanner="kubescape",
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace=namespace, name="frontend"
        ),
        container=container,
    )


def as_argo_deploys(repo: Path, manifest: str, document: int, copy: Path) -> dict[str, Any]:
    """The frontend as Argo CD creates it: like Argo CD, append the Application's patches and
    images to the overlay's kustomization (in a ``copy`` of the repository) and build it
    with kubectl."""
    app = load_documents((repo / manifest).read_text())[document]
    source = app["spec"]["source"]
    shutil.copytree(repo, copy)
    kust_file = copy / source["path"] / "kustomization.yaml"
    kust = yaml.safe_load(kust_file.read_text())
    options = source["kustomize"]
    kust["patches"] = [*(kust.get("patches") or []), *options.get("patches", [])]
    images = []
    for entry in options.get("images", []):  # name:tag or name@digest, as Argo CD writes them
        if "@" in entry:
            name, _, digest = entry.partition("@")
            images.append({"name": name, "digest": digest})
        else:
            name, _, tag = entry.rpartition(":")
            images.append({"name": name, "newTag": tag})
    kust["images"] = images
    kust_file.write_text(yaml.safe_dump(kust))
    (frontend,) = kubectl_build(copy, source["path"])
    return frontend


def passes(document: dict[str, Any], finding: Finding) -> bool:
    view = ManifestPodView.from_document(document)
    fixer = fixer_for(finding.control_id)
    assert view is not None and fixer is not None
    return isinstance(run_fixer(fixer, view, finding, FixContext()), AlreadyCompliant)


# ---------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("entry", "kustomize"),
    [
        ("nginx:1.27", {"name": "nginx", "newTag": "1.27"}),
        ("registry:5000/team/app:2", {"name": "registry:5000/team/app", "newTag": "2"}),
        ("app@sha256:abc", {"name": "app", "digest": "sha256:abc"}),
        ("app=mirror/app:3", {"name": "app", "newName": "mirror/app", "newTag": "3"}),
        ("{{ .image }}", None),
    ],
)
def test_argo_cd_image_entries_in_kustomize_form(entry: str, kustomize: Any) -> None:
    assert argo_image(entry) == kustomize


def test_deployed_overlay_knows_the_applications_images_and_patches() -> None:
    deployed = deployed_paths(STOREFRONT)
    staging = deployed["overlays/staging"]
    assert staging.images == (
        {"name": "registry.example.com/storefront/frontend", "newTag": "1.8.2"},
    )
    assert len(staging.patches) == 1
    assert (staging.manifest, staging.document) == (STAGING_APP, 0)
    assert staging.options == ("spec", "source", "kustomize")
    assert deployed["overlays/production"].document == 1


def test_field_an_application_patch_sets_is_traced_to_the_application() -> None:
    deployment = deployed_paths(STOREFRONT)["overlays/production"]
    (frontend,) = KustomizeReader(FileOverlay(STOREFRONT)).deploy("overlays/production", deployment)
    touch = frontend.source_of(("spec", "template", "spec", "automountServiceAccountToken"))
    assert touch is not None
    assert (touch.source.file, touch.source.holder, touch.source.key) == (
        PRODUCTION_APP,
        1,
        ("spec", "source", "kustomize", "patches", 0, "patch"),
    )
    assert frontend.doc["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        "@sha256:4f1c2b8e2a9d3c7b6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
    )


# ---------------------------------------------------------------------- images


def test_tag_the_application_pins_is_what_the_tag_fixer_sees(repo: Path) -> None:
    """The base says latest; Argo CD runs 1.8.2: nothing to pin in staging."""
    finding = overlay_finding("C-9005", "overlays/staging", None, "frontend", "frontend")
    plan = plan_of(repo, finding)
    assert not plan.change_sets and not plan.unfixable
    assert [f.control_id for f in plan.already_compliant] == ["C-9005"]


def test_digest_the_application_pins_needs_no_pull_policy(repo: Path) -> None:
    plan = plan_of(repo, cluster_finding("C-9004", "storefront", "frontend"))
    assert not plan.change_sets and not plan.unfixable
    assert [f.control_id for f in plan.already_compliant] == ["C-9004"]


# ---------------------------------------------------------------------- patches


def test_field_an_application_patch_sets_is_fixed_in_that_patch(repo: Path, tmp_path: Path) -> None:
    finding = cluster_finding("C-0016", "storefront-staging", "frontend")
    cs = only_change_set(plan_of(repo, finding))
    (change,) = cs.files
    assert change.path == STAGING_APP
    assert changed_lines(change.before or "", change.after) == [
        (
            "                        allowPrivilegeEscalation: true\n",
            "                        allowPrivilegeEscalation: false\n",
        )
    ]
    assert cs.meta[OVERLAYS_META] == (
        f"overlays/staging (as the Argo CD Application in {STAGING_APP} deploys it)"
    )
    assert cs.meta[INLINE_META] == f"{STAGING_APP}: spec.source.kustomize.patches[0] edited"
    diff = cs.meta[DIFF_META]
    assert "overlays/staging as deployed (rendered, after)" in diff
    assert "+          allowPrivilegeEscalation: false" in diff
    before = {f: kubectl_build(repo, f) for f in ("base", "overlays/staging")}
    (repo / change.path).write_text(change.after)
    # the overlays themselves render as before; Argo CD's rendering now passes
    assert {f: kubectl_build(repo, f) for f in before} == before
    deployed = as_argo_deploys(repo, STAGING_APP, 0, tmp_path / "argo")
    assert passes(deployed, finding)
    assert deployed["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.8.2")


def test_application_second_in_its_file_is_edited_in_its_own_document(
    repo: Path, tmp_path: Path
) -> None:
    finding = cluster_finding("C-0034", "storefront", None)
    cs = only_change_set(plan_of(repo, finding))
    (change,) = cs.files
    assert change.path == PRODUCTION_APP
    assert changed_lines(change.before or "", change.after) == [
        ("              value: true\n", "              value: false\n")
    ]
    before = as_argo_deploys(repo, PRODUCTION_APP, 1, tmp_path / "before")
    (repo / change.path).write_text(change.after)
    deployed = as_argo_deploys(repo, PRODUCTION_APP, 1, tmp_path / "after")
    assert passes(deployed, finding)
    assert regressions.new_failures([before], [deployed]) == []


FLUX = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: storefront
  namespace: flux-system
spec:
  path: ./overlays/production
  targetNamespace: storefront
  images:
    - name: registry.example.com/storefront/frontend
      newTag: 1.8.3
  patches:
    - target:
        kind: Deployment
        name: frontend
      patch: |
        - op: add
          path: /spec/template/spec/automountServiceAccountToken
          value: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""


def test_flux_kustomization_images_and_patches_are_traced_to_it(tmp_path: Path) -> None:
    shutil.copytree(STOREFRONT, tmp_path / "repo", ignore=shutil.ignore_patterns("apps"))
    (tmp_path / "repo" / "clusters").mkdir()
    (tmp_path / "repo" / "clusters" / "production.yaml").write_text(FLUX)
    deployment = deployed_paths(tmp_path / "repo")["overlays/production"]
    assert deployment.what == "Flux Kustomization in clusters/production.yaml"
    (frontend,) = KustomizeReader(FileOverlay(tmp_path / "repo")).deploy(
        "overlays/production", deployment
    )
    assert frontend.doc["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.8.3")
    touch = frontend.source_of(("spec", "template", "spec", "automountServiceAccountToken"))
    assert touch is not None
    assert (touch.source.file, touch.source.key) == (
        "clusters/production.yaml",
        ("spec", "patches", 0, "patch"),
    )


def test_overlay_json_patch_after_the_applications_patch_is_the_place(
    repo: Path, tmp_path: Path
) -> None:
    """Argo CD adds its patches to the overlay's ``patches``; kustomize runs the overlay's
    patchesJson6902 after them, so the overlay's operation decides the field, and is fixed."""
    kust = repo / "overlays" / "staging" / "kustomization.yaml"
    kust.write_text(
        kust.read_text()
        + "patchesJson6902:\n"
        + "  - target: {group: apps, version: v1, kind: Deployment, name: frontend}\n"
        + "    patch: |-\n"
        + "      - op: add\n"
        + "        path: /spec/template/spec/containers/0/securityContext\n"
        + "        value:\n"
        + "          allowPrivilegeEscalation: true\n"
    )
    finding = cluster_finding("C-0016", "storefront-staging", "frontend")
    cs = only_change_set(plan_of(repo, finding))
    (change,) = cs.files
    assert change.path == "overlays/staging/kustomization.yaml"
    assert changed_lines(change.before or "", change.after) == [
        (
            "          allowPrivilegeEscalation: true\n",
            "          allowPrivilegeEscalation: false\n",
        )
    ]
    kust.write_text(change.after)
    assert passes(as_argo_deploys(repo, STAGING_APP, 0, tmp_path / "argo"), finding)
