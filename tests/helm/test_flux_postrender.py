"""Flux HelmRelease post-renderers: read as Flux applies them, and written when the chart has
no values key for a field.

The fixture repository (tests/helm/repos/flux-postrender) deploys a vendored chart (kvstore:
two containers with no securityContext, and no values key for any) through two HelmReleases:
``kvstore``, a kustomize base built by a staging and a production overlay (production patches
its values), and ``ledger``, whose post-renderers already harden the containers (a strategic
merge patch, a JSON6902 patch and an image tag).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.locate.base import FileOverlay
from bot.locate.helm import POST_RENDER, HelmIndex, locate_helm
from bot.locate.helm_postrender import post_render, write_patch
from bot.locate.helm_render import RenderedDoc
from bot.plan import build_plan
from bot.sources.base import Report
from fixers.model import AlreadyCompliant, AppendUnique, Remove, Set
from fixers.registry import fixer_for, run_fixer
from tests.helm.helpers import CTX, finding_for

HERE = Path(__file__).parent
REPO = HERE / "repos" / "flux-postrender"
EXPECTED = HERE / "postrender"
BASE = "apps/base/kvstore/release.yaml"
LEDGER = "apps/base/ledger/release.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    out = tmp_path / "cd-config"
    shutil.copytree(REPO, out)
    return out


def _plan(repo: Path, control: str, name: str, namespace: str):  # type: ignore[no-untyped-def]
    return build_plan(
        Report("kubescape", "cluster", (finding_for(control, "Deployment", name, namespace),)),
        repo,
    )


def _apply(repo: Path, control: str, name: str, namespace: str) -> dict[str, str]:
    """Plan one finding, write its one change set; the files it changes and the why."""
    plan = _plan(repo, control, name, namespace)
    assert not plan.unfixable, [u.reason for u in plan.unfixable]
    (cs,) = plan.change_sets
    for change in cs.files:
        (repo / change.path).write_text(change.after or "", encoding="utf-8")
    (fix,) = cs.fixes
    return {
        "files": ",".join(c.path for c in cs.files),
        "why": fix.location.why,
        "kind": fix.location.kind,
    }


def _compliant(repo: Path, control: str, name: str, namespace: str) -> None:
    plan = _plan(repo, control, name, namespace)
    assert not plan.change_sets and not plan.unfixable, plan


def test_existing_post_renderers_are_applied_when_reading(repo: Path) -> None:
    """ledger's patches already set allowPrivilegeEscalation on both containers (one by
    strategic merge, one by JSON6902) and its image tag: as deployed, it is compliant."""
    finding = finding_for("C-0016", "Deployment", "ledger-kvstore", "ledger")
    target = locate_helm(finding, repo, HelmIndex.build(repo))
    assert not isinstance(target, str), target
    images = [c.get("image") for c in target.view.containers]
    assert images == [
        "registry.example.com/kvstore:7.4.2",
        "registry.example.com/kv-exporter:1.0.2",
    ]
    fixer = fixer_for("C-0016")
    assert fixer is not None
    assert isinstance(run_fixer(fixer, target.view, finding, CTX), AlreadyCompliant)
    _compliant(repo, "C-0016", "ledger-kvstore", "ledger")


def test_a_field_with_no_values_key_is_patched_in_the_base_for_every_overlay(repo: Path) -> None:
    done = _apply(repo, "C-0016", "kvstore-kvstore", "staging")
    assert done["files"] == BASE
    assert done["kind"] == "helm-post-renderer"  # the plan's Helm table has a column for it
    assert (repo / BASE).read_text() == (EXPECTED / "kvstore-c0016.yaml").read_text()
    assert "a Flux post-renderer patch of Deployment kvstore-kvstore" in done["why"]
    assert "because chart kvstore has no values key for them" in done["why"]
    assert done["why"].endswith(
        "overlays whose rendered chart changes: apps/production, apps/staging"
    )
    for namespace in ("staging", "production"):
        _compliant(repo, "C-0016", "kvstore-kvstore", namespace)


def test_a_second_fix_extends_the_same_patch(repo: Path) -> None:
    _apply(repo, "C-0016", "kvstore-kvstore", "staging")
    _apply(repo, "C-0034", "kvstore-kvstore", "production")
    assert (repo / BASE).read_text() == (EXPECTED / "kvstore-c0016-c0034.yaml").read_text()
    for control in ("C-0016", "C-0034"):
        _compliant(repo, control, "kvstore-kvstore", "staging")


def test_the_patch_that_sets_a_field_is_extended_in_place(repo: Path) -> None:
    """ledger's JSON6902 patch replaces the exporter's securityContext after its strategic
    merge patch: the exporter's fix goes into the JSON6902 value, the other container's into
    the strategic merge patch; comments and layout stay."""
    done = _apply(repo, "C-0013", "ledger-kvstore", "ledger")
    assert done["files"] == LEDGER
    assert (repo / LEDGER).read_text() == (EXPECTED / "ledger-c0013.yaml").read_text()
    assert (
        "HelmRelease ledger (kustomize overlay apps/base/ledger)'s post-renderer patch that"
        in (done["why"])
    )
    _compliant(repo, "C-0013", "ledger-kvstore", "ledger")


def test_an_overlay_patching_the_post_renderers_gets_its_own_fix(repo: Path) -> None:
    """production's patch sets the release's post-renderers (an image tag): a base fix
    would not reach production alike, so staging's fix goes into a patch of its own, and
    production's into the patch that sets them."""
    patch = repo / "apps/production/kvstore-values.yaml"
    patch.write_text(
        patch.read_text()
        + "  postRenderers:\n"
        + "    - kustomize:\n"
        + "        images:\n"
        + "          - name: registry.example.com/kvstore\n"
        + '            newTag: "7.4.3"\n'
    )
    staging = _apply(repo, "C-0016", "kvstore-kvstore", "staging")
    assert staging["files"] == (
        "apps/staging/kustomization.yaml,apps/staging/remedy-patch-helmrelease-kvstore.yaml"
    )
    assert "overlays apps/production patch its post-renderers differently" in staging["why"]
    assert (repo / "apps/staging/remedy-patch-helmrelease-kvstore.yaml").read_text() == (
        EXPECTED / "staging-own-patch.yaml"
    ).read_text()
    production = _apply(repo, "C-0016", "kvstore-kvstore", "production")
    assert production["files"] == "apps/production/kvstore-values.yaml"
    assert patch.read_text() == (EXPECTED / "production-values-patch.yaml").read_text()
    assert (repo / BASE).read_text() == (REPO / BASE).read_text()
    for namespace in ("staging", "production"):
        _compliant(repo, "C-0016", "kvstore-kvstore", namespace)


def test_a_post_renderer_kube_remedy_cannot_apply_is_named(repo: Path) -> None:
    release = repo / LEDGER
    release.write_text(
        release.read_text().replace(
            "    - kustomize:\n", "    - kustomize:\n        components: [x]\n"
        )
    )
    finding = finding_for("C-0016", "Deployment", "ledger-kvstore", "ledger")
    reason = locate_helm(finding, repo, HelmIndex.build(repo))
    assert isinstance(reason, str)
    assert "spec.postRenderers[0].kustomize uses components, which kube-remedy does not apply" in (
        reason
    )


def test_a_removal_is_a_null_in_the_strategic_merge_patch() -> None:
    text = "spec:\n  values: {}\n"
    resource = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    fields = [(("spec", "template", "spec", "hostNetwork"), None)]
    out = write_patch(text, 0, ("spec", "postRenderers"), resource, fields, "why")
    assert out == (
        "spec:\n"
        "  values: {}\n"
        "  postRenderers:\n"
        "    - kustomize:\n"
        "        patches:\n"
        "          - target:\n"
        "              kind: Deployment\n"
        "              name: web\n"
        "            patch: |-\n"
        "              # why\n"
        "              apiVersion: apps/v1\n"
        "              kind: Deployment\n"
        "              metadata:\n"
        "                name: web\n"
        "              spec:\n"
        "                template:\n"
        "                  spec:\n"
        "                    hostNetwork: null\n"
    )


def test_a_network_policy_the_chart_has_no_switch_for_joins_the_release(repo: Path) -> None:
    """Beside the base HelmRelease, listed in its kustomization: every overlay deploys it in
    the namespace it gives the release, selecting the Deployment's own selector labels."""
    done = _apply(repo, "C-0260", "kvstore-kvstore", "staging")
    assert done["files"] == (
        "apps/base/kvstore/kustomization.yaml,apps/base/kvstore/kvstore-kvstore-networkpolicy.yaml"
    )
    assert "has no values switch that renders a NetworkPolicy" in done["why"]
    policy = repo / "apps/base/kvstore/kvstore-kvstore-networkpolicy.yaml"
    assert policy.read_text() == (EXPECTED / "kvstore-networkpolicy.yaml").read_text()
    assert (repo / "apps/base/kvstore/kustomization.yaml").read_text() == (
        (REPO / "apps/base/kvstore/kustomization.yaml").read_text()
        + "  - kvstore-kvstore-networkpolicy.yaml\n"
    )
    for namespace in ("staging", "production"):
        _compliant(repo, "C-0260", "kvstore-kvstore", namespace)


def test_a_network_policy_selects_only_labels_every_overlay_shares(repo: Path) -> None:
    """production names the release otherwise: the instance label differs, so the policy in
    the shared base selects by the chart's name label alone."""
    patch = repo / "apps/production/kvstore-values.yaml"
    patch.write_text(patch.read_text().replace("spec:\n", "spec:\n  releaseName: kv-prod\n"))
    _apply(repo, "C-0260", "kvstore-kvstore", "staging")
    policy = (repo / "apps/base/kvstore/kvstore-kvstore-networkpolicy.yaml").read_text()
    assert "      app.kubernetes.io/name: kvstore\n  policyTypes:" in policy
    _compliant(repo, "C-0260", "kv-prod-kvstore", "production")


def test_a_release_no_kustomization_builds_is_patched_in_its_own_file(tmp_path: Path) -> None:
    """A HelmRelease file Flux applies as it is: the patch and the policy go beside it."""
    repo = tmp_path / "cd-config"
    shutil.copytree(REPO / "charts", repo / "charts")
    release = (REPO / LEDGER).read_text()
    release = release[: release.index("  postRenderers:")].replace(
        "  name: ledger\n", "  name: ledger\n  namespace: books\n"
    )
    (repo / "clusters").mkdir()
    (repo / "clusters" / "ledger.yaml").write_text(release)
    done = _apply(repo, "C-0016", "ledger-kvstore", "books")
    assert done["files"] == "clusters/ledger.yaml"
    text = (repo / "clusters" / "ledger.yaml").read_text()
    assert text.startswith(release + "  postRenderers:\n    - kustomize:\n")
    _compliant(repo, "C-0016", "ledger-kvstore", "books")
    done = _apply(repo, "C-0260", "ledger-kvstore", "books")
    assert done["files"] == "clusters/ledger-kvstore-networkpolicy.yaml"
    policy = (repo / "clusters" / "ledger-kvstore-networkpolicy.yaml").read_text()
    assert "  namespace: books\n" in policy
    _compliant(repo, "C-0260", "ledger-kvstore", "books")


def test_removing_an_item_of_a_merge_keyed_list_is_a_patch_delete(repo: Path) -> None:
    finding = finding_for("C-0016", "Deployment", "kvstore-kvstore", "staging")
    target = locate_helm(finding, repo, HelmIndex.build(repo))
    assert not isinstance(target, str), target
    overlay = FileOverlay(repo)
    target.write([Remove((POST_RENDER, "spec", "template", "spec", "containers", 1))], overlay)
    text = overlay.read(BASE) or ""
    assert text.endswith(
        "                    containers:\n"
        "                      - name: exporter\n"
        "                        $patch: delete\n"
    )
    view = target.reread(overlay)
    assert not isinstance(view, str), view
    assert [c.name for c in view.containers] == ["kvstore"]


def test_several_items_appended_to_one_list_are_all_in_the_patch(repo: Path) -> None:
    """A strategic merge replaces ``capabilities.add`` (no merge key): the patch carries the
    capability the chart already adds and every one the edits add back, once each."""
    template = repo / "charts/kvstore/templates/deployment.yaml"
    template.write_text(
        template.read_text()
        + "          securityContext:\n"
        + "            capabilities:\n"
        + "              add: [NET_BIND_SERVICE]\n"
    )
    finding = finding_for("C-0046", "Deployment", "kvstore-kvstore", "staging")
    target = locate_helm(finding, repo, HelmIndex.build(repo))
    assert not isinstance(target, str), target
    caps = (POST_RENDER, "spec", "template", "spec", "containers", 1, "securityContext")
    caps += ("capabilities",)
    edits = [AppendUnique((*caps, "drop"), "ALL")]
    edits += [AppendUnique((*caps, "add"), c) for c in ("CHOWN", "DAC_OVERRIDE", "FOWNER")]
    overlay = FileOverlay(repo)
    target.write(edits, overlay)
    assert (overlay.read(BASE) or "").endswith(
        "                      - name: exporter\n"
        "                        securityContext:\n"
        "                          capabilities:\n"
        "                            drop:\n"
        "                              - ALL\n"
        "                            add:\n"
        "                              - NET_BIND_SERVICE\n"
        "                              - CHOWN\n"
        "                              - DAC_OVERRIDE\n"
        "                              - FOWNER\n"
    )
    assert (
        "sets containers[exporter].securityContext.capabilities.drop, containers[exporter]"
        ".securityContext.capabilities.add, because" in target.location.why
    )
    view = target.reread(overlay)
    assert not isinstance(view, str), view
    assert view.containers[1].get("securityContext") == {
        "capabilities": {
            "drop": ["ALL"],
            "add": ["NET_BIND_SERVICE", "CHOWN", "DAC_OVERRIDE", "FOWNER"],
        }
    }


def test_an_item_appended_after_a_set_joins_the_list_the_set_wrote(repo: Path) -> None:
    finding = finding_for("C-0046", "Deployment", "kvstore-kvstore", "staging")
    target = locate_helm(finding, repo, HelmIndex.build(repo))
    assert not isinstance(target, str), target
    context = (POST_RENDER, "spec", "template", "spec", "containers", 0, "securityContext")
    overlay = FileOverlay(repo)
    target.write(
        [
            Set(context, {"capabilities": {"drop": ["ALL"], "add": ["SYS_TIME"]}}),
            AppendUnique((*context, "capabilities", "add"), "NET_BIND_SERVICE"),
            AppendUnique((*context, "capabilities", "drop"), "ALL"),
        ],
        overlay,
    )
    view = target.reread(overlay)
    assert not isinstance(view, str), view
    assert view.containers[0].get("securityContext") == {
        "capabilities": {"drop": ["ALL"], "add": ["SYS_TIME", "NET_BIND_SERVICE"]}
    }


def test_deprecated_post_renderer_lists_are_applied_in_kustomize_order() -> None:
    """patchesStrategicMerge (objects) before patches, patchesJson6902 (operations as
    objects) after them; each field remembers the patch that set it."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}
    docs = [
        RenderedDoc("c/templates/d.yaml", 0, deployment),
        RenderedDoc("c/templates/s.yaml", 0, service),
    ]
    renderers = [
        {
            "kustomize": {
                "patchesJson6902": [
                    {
                        "target": {"kind": "Deployment", "name": "web"},
                        "patch": [
                            {
                                "op": "replace",
                                "path": "/spec/template/spec/containers/0/securityContext/runAsUser",
                                "value": 1000,
                            }
                        ],
                    }
                ],
                "patchesStrategicMerge": [
                    {
                        "kind": "Deployment",
                        "metadata": {"name": "web"},
                        "spec": {
                            "template": {
                                "spec": {
                                    "containers": [
                                        {"name": "app", "securityContext": {"runAsUser": 0}}
                                    ]
                                }
                            }
                        },
                    }
                ],
            }
        }
    ]
    out = post_render(docs, renderers, "HelmRelease web", "web.yaml", 0)
    container = out.docs[0].document["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"] == {"runAsUser": 1000}
    assert deployment["spec"]["template"]["spec"]["containers"][0] == {
        "name": "app",
        "image": "a:1",
    }
    assert out.docs[1] is docs[1]
    (*_, last) = out.touches[("c/templates/d.yaml", "Deployment", "web")]
    assert last.source.kind == "json6902"
    assert last.source.key == (
        "spec",
        "postRenderers",
        0,
        "kustomize",
        "patchesJson6902",
        0,
        "patch",
    )
