"""Fixes land where a kustomize overlay's field comes from: base, patch, or a new overlay patch."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from bot.locate.kustomize import OVERLAYS_META
from bot.plan import build_plan
from bot.sources.base import Report
from fixers.edits import load_documents
from fixers.model import Finding, ResourceRef, Severity, SourceHint

SHOP = Path(__file__).parent / "repos" / "shop"


@pytest.fixture(params=["kubectl", "reader"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shop repository, built with the real engine and with the reader alone."""
    if request.param == "reader":
        monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")
    elif shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    shutil.copytree(SHOP, tmp_path / "repo")
    return tmp_path / "repo"


def finding(control: str, overlay: str, name: str, container: str | None = "app") -> Finding:
    return Finding(
        control_id=control,
        scanner="checkov",
        severity=Severity.HIGH,
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace=overlay, name=name
        ),
        container=container,
        source=SourceHint(path=f"overlays/{overlay}"),
    )


def plan_of(repo: Path, *findings: Finding):  # type: ignore[no-untyped-def]
    return build_plan(Report("checkov", "test", tuple(findings)), repo)


def only_change_set(plan):  # type: ignore[no-untyped-def]
    assert not plan.unfixable, plan.unfixable
    assert len(plan.change_sets) == 1, [cs.key for cs in plan.change_sets]
    return plan.change_sets[0]


def test_field_no_overlay_patches_is_fixed_in_the_base(repo: Path) -> None:
    cs = only_change_set(plan_of(repo, finding("C-0034", "staging", "staging-web", None)))
    assert [c.path for c in cs.files] == ["base/deployment.yaml"]
    spec = load_documents(cs.files[0].after)[0]["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert cs.meta[OVERLAYS_META] == "base, overlays/production, overlays/staging"


def test_both_overlays_findings_fixed_by_one_base_edit_are_both_fixed(repo: Path) -> None:
    """Staging's and production's copies of one base field: one edit, and both findings are
    the change set's (the second is not "already compliant in the repository")."""
    staging = finding("C-0034", "staging", "staging-web", None)
    production = finding("C-0034", "production", "web", None)
    plan = plan_of(repo, staging, production)
    cs = only_change_set(plan)
    assert [c.path for c in cs.files] == ["base/deployment.yaml"]
    assert plan.already_compliant == ()
    assert set(plan.fixed_findings) == {staging, production}


def test_field_an_overlay_patch_sets_is_fixed_in_that_patch(repo: Path) -> None:
    cs = only_change_set(plan_of(repo, finding("C-0016", "production", "web")))
    assert [c.path for c in cs.files] == ["overlays/production/debug.yaml"]
    assert "allowPrivilegeEscalation: false" in cs.files[0].after
    assert "allowPrivilegeEscalation: true" not in cs.files[0].after
    assert cs.meta[OVERLAYS_META] == "overlays/production"


def test_sidecar_injected_by_json_patch_is_fixed_in_the_operation_value(repo: Path) -> None:
    cs = only_change_set(plan_of(repo, finding("C-0016", "production", "web", "proxy")))
    assert [c.path for c in cs.files] == ["overlays/production/sidecar.yaml"]
    ops = load_documents(cs.files[0].after)[0]
    assert ops[0]["value"]["securityContext"]["allowPrivilegeEscalation"] is False
    assert cs.meta[OVERLAYS_META] == "overlays/production"


def test_field_another_overlay_patches_gets_a_patch_in_the_finding_overlay(repo: Path) -> None:
    cs = only_change_set(plan_of(repo, finding("C-0016", "staging", "staging-web")))
    paths = [c.path for c in cs.files]
    assert paths == [
        "overlays/staging/kustomization.yaml",
        "overlays/staging/remedy-patch-deployment-web.yaml",
    ]
    kustomization = load_documents(cs.files[0].after)[0]
    assert kustomization["patches"][-1] == {
        "path": "remedy-patch-deployment-web.yaml",
        "target": {"kind": "Deployment", "name": "web"},
    }
    patch = load_documents(cs.files[1].after)[0]
    container = patch["spec"]["template"]["spec"]["containers"][0]
    assert container == {"name": "app", "securityContext": {"allowPrivilegeEscalation": False}}
    assert cs.meta[OVERLAYS_META] == "overlays/staging"
    # the base stays as it is: production keeps what its own patch says
    assert "base/deployment.yaml" not in paths


def test_same_named_base_document_is_not_edited_for_an_overlay_finding(repo: Path) -> None:
    """The base file defines Deployment web too; an overlay's finding must go through the
    overlay, not land on the base document by name."""
    plan = plan_of(repo, finding("C-0016", "production", "web"))
    assert "base/deployment.yaml" not in [c.path for cs in plan.change_sets for c in cs.files]


def test_unknown_overlay_resource_is_refused_with_the_overlay(repo: Path) -> None:
    plan = plan_of(repo, finding("C-0016", "staging", "web"))
    assert not plan.change_sets
    assert "overlays/staging renders no Deployment staging/web" in plan.unfixable[0].reason


def test_network_policy_is_a_new_resource_beside_the_base(repo: Path) -> None:
    """Every overlay using the base gets the policy through its own namespace and prefix, as
    the workload does (one policy per overlay would collide when one overlay includes another)."""
    cs = only_change_set(plan_of(repo, finding("C-0260", "staging", "staging-web", None)))
    kustomization, policy = cs.files
    assert kustomization.path == "base/kustomization.yaml"
    assert policy.is_new and policy.path == "base/web-networkpolicy.yaml"
    resources = load_documents(kustomization.after)[0]["resources"]
    assert resources == ["deployment.yaml", "web-networkpolicy.yaml"]
    document = load_documents(policy.after)[0]
    assert document["kind"] == "NetworkPolicy"
    assert document["metadata"] == {"name": "web-networkpolicy"}
    assert document["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}
    assert cs.meta[OVERLAYS_META] == "base, overlays/production, overlays/staging"


def test_a_policy_another_overlay_already_has_stays_in_the_findings_overlay(
    repo: Path,
) -> None:
    """NetworkPolicies add up: production already lets only its frontend reach web, so a
    policy in the shared base (ingress from anywhere to the declared port) would widen it
    there. The new policy goes to the finding's overlay alone."""
    production = repo / "overlays" / "production"
    (production / "web-only-from-frontend.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
        "  name: web-only-from-frontend\nspec:\n  podSelector: {matchLabels: {app: web}}\n"
        "  ingress:\n    - from: [{podSelector: {matchLabels: {app: frontend}}}]\n"
    )
    kustomization = production / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace(
            "  - ../../base\n", "  - ../../base\n  - web-only-from-frontend.yaml\n"
        )
    )
    cs = only_change_set(plan_of(repo, finding("C-0260", "staging", "staging-web", None)))
    paths = sorted(f.path for f in cs.files)
    assert paths == [
        "overlays/staging/kustomization.yaml",
        "overlays/staging/staging-web-networkpolicy.yaml",
    ]
    assert cs.meta[OVERLAYS_META] == "overlays/staging"


def test_cluster_finding_goes_to_the_overlay_flux_deploys(repo: Path) -> None:
    """A finding read from the cluster names no file: the overlay a Flux Kustomization deploys
    renders it (the base renders a same-named Deployment too, but nothing deploys the base)."""
    cluster = Finding(
        control_id="C-0016",
        scanner="kubescape",
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace="production", name="web"
        ),
        container="app",
    )
    cs = only_change_set(plan_of(repo, cluster))
    assert [c.path for c in cs.files] == ["overlays/production/debug.yaml"]


def test_cluster_finding_is_refused_when_two_overlays_render_it_alike(repo: Path) -> None:
    """Nothing says which of two overlays putting web in production the cluster runs."""
    (repo / "clusters" / "production.yaml").unlink()
    shutil.copytree(repo / "overlays" / "production", repo / "overlays" / "production-b")
    cluster = Finding(
        control_id="C-0016",
        scanner="kubescape",
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace="production", name="web"
        ),
        container="app",
    )
    plan = plan_of(repo, cluster)
    assert not plan.change_sets
    assert (
        "rendered by several kustomize overlays (overlays/production, overlays/production-b)"
        in (plan.unfixable[0].reason)
    )


def test_finding_on_the_base_build_is_fixed_in_the_base_document(repo: Path) -> None:
    """A scan of the base itself: its own document is the place, even where an overlay
    patches the field (that overlay's patch still wins there)."""
    base = Finding(
        control_id="C-0016",
        scanner="checkov",
        resource=ResourceRef(api_version="apps/v1", kind="Deployment", name="web"),
        container="app",
        source=SourceHint(path="base/deployment.yaml"),
    )
    cs = only_change_set(plan_of(repo, base))
    assert [c.path for c in cs.files] == ["base/deployment.yaml"]
    assert cs.meta[OVERLAYS_META] == "base, overlays/staging"


def _big_overlay(repo: Path) -> None:
    """overlays/big asks for 1Gi of memory for the base's container; the base sets no limit."""
    big = repo / "overlays" / "big"
    big.mkdir()
    (big / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: big\nresources:\n  - ../../base\npatches:\n  - path: memory.yaml\n"
    )
    (big / "memory.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n"
        "    spec:\n      containers:\n        - name: app\n          resources:\n"
        "            requests:\n              memory: 1Gi\n"
    )
    base = repo / "base" / "deployment.yaml"
    base.write_text(
        base.read_text().replace(
            "          ports:\n",
            "          resources:\n            requests:\n              cpu: 100m\n          ports:\n",
        )
    )


def test_base_fix_that_would_break_another_overlay_becomes_a_patch_in_the_finding_overlay(
    repo: Path,
) -> None:
    """A memory limit in the base would sit below the 1Gi that overlays/big requests: the API
    server refuses such a Deployment. Staging's fix goes to a patch in staging instead, and
    overlays/big renders as before."""
    _big_overlay(repo)
    cs = only_change_set(plan_of(repo, finding("C-0004", "staging", "staging-web")))
    paths = [c.path for c in cs.files]
    assert "base/deployment.yaml" not in paths
    assert paths == [
        "overlays/staging/kustomization.yaml",
        "overlays/staging/remedy-patch-deployment-web.yaml",
    ]
    assert "overlays/big" not in cs.meta[OVERLAYS_META]


def test_a_base_fix_that_keeps_every_overlay_valid_stays_in_the_base(repo: Path) -> None:
    _big_overlay(repo)
    (repo / "overlays" / "big" / "memory.yaml").write_text(
        (repo / "overlays" / "big" / "memory.yaml").read_text().replace("1Gi", "64Mi")
    )
    cs = only_change_set(plan_of(repo, finding("C-0004", "staging", "staging-web")))
    # the limit every overlay shares goes to the base; the request overlays/big patches
    # differently stays staging's own
    base = next(c for c in cs.files if c.path == "base/deployment.yaml")
    limits = load_documents(base.after)[0]["spec"]["template"]["spec"]["containers"][0]
    assert limits["resources"]["limits"] == {"memory": "256Mi"}
    assert "overlays/big" in cs.meta[OVERLAYS_META]


ARGO_STAGING = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop-staging
  namespace: argocd
spec:
  destination:
    server: https://kubernetes.default.svc
  source:
    repoURL: https://gitlab.example.com/platform/cd-config.git
    path: overlays/staging
    kustomize:
      namePrefix: eu-
      nameSuffix: -v2
      namespace: staging-eu
"""


def test_cluster_finding_names_what_argo_cds_kustomize_options_deploy(repo: Path) -> None:
    """Argo CD adds its own name prefix, suffix and namespace to the overlay's output: the
    cluster runs staging-eu/eu-staging-web-v2, which only overlays/staging renders."""
    (repo / "clusters" / "staging.yaml").write_text(ARGO_STAGING)
    cluster = Finding(
        control_id="C-0034",
        scanner="kubescape",
        resource=ResourceRef(
            api_version="apps/v1",
            kind="Deployment",
            namespace="staging-eu",
            name="eu-staging-web-v2",
        ),
    )
    cs = only_change_set(plan_of(repo, cluster))
    assert [c.path for c in cs.files] == ["base/deployment.yaml"]
    # the overlay's own name is not what the cluster runs under Argo CD
    plain = Finding(
        control_id="C-0034",
        scanner="kubescape",
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace="staging-eu", name="staging-web"
        ),
    )
    assert not plan_of(repo, plain).change_sets


def test_a_scan_of_a_patch_file_alone_is_refused_with_the_overlay_to_scan(repo: Path) -> None:
    """A file scanner (Trivy, Checkov's kubernetes framework) reads an overlay's patch as a
    Deployment of its own and reports what the fragment lacks. The patch is no object: the
    finding is refused with the overlay to scan instead, and the patch is never edited as if
    it were a whole Deployment (it once was: its limits 'fixed' to the default)."""
    scanned = Finding(
        control_id="C-0017",
        scanner="trivy",
        severity=Severity.HIGH,
        resource=ResourceRef(api_version="apps/v1", kind="Deployment", name="web"),
        container="app",
        source=SourceHint(path="overlays/production/debug.yaml"),
    )
    plan = plan_of(repo, scanned)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "overlays/production/debug.yaml is a kustomize patch that overlays/production" in (
        refused.reason
    )
    assert "kubectl kustomize overlays/production" in refused.reason


def test_a_patch_path_that_leaves_the_repository_names_no_patch_file(repo: Path) -> None:
    """A Component (never built alone) whose patch path escapes the repository, or is
    remote, marks no file as a patch and makes nothing unreadable: the overlays' findings
    are planned as before."""
    component = repo / "components" / "evil"
    component.mkdir(parents=True)
    (component / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n"
        "  - path: ../../../../etc/passwd\n  - path: https://example.com/patch.yaml\n"
    )
    from bot.locate.kustomize import KustomizeIndex

    index = KustomizeIndex.build(repo)
    assert "components/evil" not in index.unreadable
    assert not any(p.startswith(("..", "/", "https:")) for p in index.patches)
    assert "overlays/production/debug.yaml" in index.patches
    cs = only_change_set(plan_of(repo, finding("C-0260", "staging", "staging-web", None)))
    assert cs.files


def _own_user_overlay(repo: Path) -> None:
    """overlays/hardened runs the base's pods as user 100 (pod level), its own choice."""
    hardened = repo / "overlays" / "hardened"
    hardened.mkdir()
    (hardened / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: hardened\nresources:\n  - ../../base\npatches:\n  - path: user.yaml\n"
    )
    (hardened / "user.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n"
        "    spec:\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: 100\n"
        "        runAsGroup: 100\n"
    )


def test_a_base_fix_never_overrides_a_setting_another_overlay_chose(repo: Path) -> None:
    """A container-level user id in the base would override the pod-level user 100 that
    overlays/hardened sets: staging's fix goes to a patch in staging, and a fix of the base's
    own build is refused with the setting it would change. Without that overlay, the user id
    goes to the base every overlay shares."""
    shutil.rmtree(repo / "overlays" / "production")  # it patches the container's context
    (repo / "clusters" / "production.yaml").unlink()
    cs = only_change_set(plan_of(repo, finding("C-0013", "staging", "staging-web")))
    assert [c.path for c in cs.files] == ["base/deployment.yaml"]

    _own_user_overlay(repo)
    cs = only_change_set(plan_of(repo, finding("C-0013", "staging", "staging-web")))
    assert [c.path for c in cs.files] == [
        "overlays/staging/kustomization.yaml",
        "overlays/staging/remedy-patch-deployment-web.yaml",
    ]
    base = Finding(
        control_id="C-0013",
        scanner="checkov",
        resource=ResourceRef(api_version="apps/v1", kind="Deployment", name="web"),
        container="app",
        source=SourceHint(path="base/deployment.yaml"),
    )
    plan = plan_of(repo, base)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "hardened/web sets containers[app].securityContext.runAsUser to 100 itself" in (
        refused.reason
    ), refused.reason


def test_a_bare_kustomization_path_is_the_overlay_that_renders_the_resource(repo: Path) -> None:
    """A kustomize scan run inside an overlay names only "kustomization.yaml": the overlay is
    the one rendering the resource, so the base edit is checked against every other overlay
    (before, the base document was edited as a plain manifest, unchecked)."""
    scanned = finding("C-0034", "staging", "staging-web", None)
    bare = dataclasses.replace(scanned, source=SourceHint(path="kustomization.yaml"))
    cs = only_change_set(plan_of(repo, bare))
    assert [c.path for c in cs.files] == ["base/deployment.yaml"]
    assert cs.meta[OVERLAYS_META] == "base, overlays/production, overlays/staging"
    assert "kustomize overlay overlays/staging" in cs.fixes[0].location.why


@pytest.mark.slow
def test_real_checkov_kustomize_scan_run_inside_an_overlay_is_planned_in_that_overlay(
    tmp_path: Path,
) -> None:
    """Real Checkov, its kustomize framework run on overlays/staging alone: its file path
    is "/kustomization.yaml", its repo_file_path names the overlay, and every finding is
    planned through overlays/staging (never the base document as a plain manifest)."""
    import json

    from bot.sources import parse_report
    from tests.scanners import checkov_json

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (Checkov's kustomize framework runs it)")
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo)
    output = checkov_json(repo / "overlays" / "staging", "kustomize", cwd=tmp_path)
    report = parse_report(json.loads(output), "checkov kustomize")
    assert report.findings
    # (graph checks give the path from the filesystem's root: it ends the same way)
    paths = {f.source.path or "" for f in report.findings}
    assert "repo/overlays/staging/kustomization.yaml" in paths
    assert all(p.endswith("repo/overlays/staging/kustomization.yaml") for p in paths), paths
    plan = plan_of(repo, *report.findings)
    assert plan.change_sets
    for change_set in plan.change_sets:
        for fix in change_set.fixes:
            assert "kustomize overlay overlays/staging" in fix.location.why, fix.location.why
