"""Flux HelmRelease values as kustomize overlays and ``valuesFrom`` give them: each fix goes
where the failing value comes from, and every overlay is rendered again afterwards.

The fixture repository (tests/helm/repos/flux-overlays) deploys the worker chart twice from
kustomize bases: ``shop`` takes its shared values from a ``configMapGenerator`` file (and a
Secret it never reads), ``batch`` from a ConfigMap manifest; staging builds both, production
builds ``shop`` with a strategic-merge values patch and a JSON6902 one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.locate import helm
from bot.locate.base import FileOverlay
from bot.locate.helm import Deployment, HelmIndex
from bot.locate.helm_overlays import OverlayRelease, apply_values_edits, changed_overlays
from bot.locate.kustomize import KustomizeIndex
from bot.plan import Locator, build_plan
from bot.regressions import failing_controls, new_failures
from bot.sources.base import Report
from fixers.edits import load_documents
from fixers.model import Set
from tests.helm.helpers import finding_for

HERE = Path(__file__).parent
REPO = HERE / "repos" / "flux-overlays"


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "cd-config"
    shutil.copytree(REPO, repo)
    shutil.copytree(HERE / "charts" / "worker", repo / "charts" / "worker")
    return repo


def _renders(repo: Path) -> dict[str, dict[str, Any]]:
    """overlay/release -> the Deployment it renders, as the files on disk say."""
    index = HelmIndex.build(repo)
    out = {}
    for app in index.apps:
        assert isinstance(app, OverlayRelease)
        chart = index.charts[app.chart]
        dep = Deployment(
            chart, app.release, app.namespace or "default", ("charts/worker/values.yaml",), app
        )
        docs = index.cache.docs(
            repo / app.chart, dep.render_values(FileOverlay(repo)), dep.release, dep.namespace
        )
        (deployment,) = [d.document for d in docs if d.kind == "Deployment"]
        out[f"{app.overlay_dir}:{app.release}"] = dict(deployment)
    return out


def _fix(repo: Path, control: str, name: str, namespace: str):  # type: ignore[no-untyped-def]
    """Plan one finding and write its change set to disk: the change set and the renders
    before and after."""
    before = _renders(repo)
    originals = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    plan = build_plan(
        Report("kubescape", "cluster", (finding_for(control, "Deployment", name, namespace),)), repo
    )
    (cs,) = plan.change_sets
    for change in cs.files:
        (repo / change.path).write_text(change.after or "")
    edited = {repo / f.path for f in cs.files}
    untouched = [p for p, data in originals.items() if p not in edited and p.read_bytes() != data]
    assert untouched == []
    return cs, before, _renders(repo)


def _check_overlays(
    before: dict[str, Any], after: dict[str, Any], fixed: str, control: str
) -> list[str]:
    """The fixed render passes ``control``; no render fails a control it passed; the keys of
    the renders that changed."""
    assert control in failing_controls(before[fixed])
    assert control not in failing_controls(after[fixed])
    for key in before:
        assert failing_controls(after[key]) <= failing_controls(before[key]), key
    return sorted(k for k in before if before[k] != after[k])


def test_each_overlay_builds_its_own_release_with_its_values_sources(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    apps = HelmIndex.build(repo).apps
    assert sorted(
        (a.overlay_dir, a.release, a.namespace) for a in apps if isinstance(a, OverlayRelease)
    ) == [
        ("apps/production", "shop", "production"),
        ("apps/staging", "batch", "staging"),
        ("apps/staging", "shop", "staging"),
    ]
    shop = next(
        a for a in apps if isinstance(a, OverlayRelease) and a.overlay_dir == "apps/production"
    )
    values = shop.values(FileOverlay(repo))
    # valuesFrom first (the generated ConfigMap), then spec.values as production patches it
    assert values["image"] == {"tag": "1.2.0"}
    assert values["serviceAccount"] == {"automountToken": True}
    assert values["replicaCount"] == 3
    read = shop.read(FileOverlay(repo))
    assert [w for _, w in read.unread] == [
        "Secret shop-registry (kube-remedy never reads a Secret's data)"
    ]


def test_the_shared_index_is_reused(tmp_path: Path) -> None:
    """The Locator's kustomize index is the one the Helm index reads (not a second build)."""
    repo = _repo(tmp_path)
    locator = Locator(repo)
    assert locator.kustomize is not None
    apps = HelmIndex.build(repo, kustomize=locator.kustomize).apps
    assert apps
    assert all(isinstance(a, OverlayRelease) and a.kustomize is locator.kustomize for a in apps)


def test_a_value_from_a_generated_configmap_is_fixed_in_its_file(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    cs, before, after = _fix(repo, "C-0016", "shop-worker", "staging")
    assert [f.path for f in cs.files] == ["apps/base/shop/shop-values.yaml"]
    original = (REPO / "apps/base/shop/shop-values.yaml").read_text()
    assert cs.files[0].after == original.replace(
        "allowPrivilegeEscalation: true", "allowPrivilegeEscalation: false"
    )
    (fix,) = cs.fixes
    assert "configMapGenerator of apps/base/shop" in fix.location.why
    # production's JSON6902 patch sets its own securityContext: only staging changes
    assert _check_overlays(before, after, "apps/staging:shop", "C-0016") == ["apps/staging:shop"]
    assert "overlays whose rendered chart changes: apps/staging" in fix.location.why


def test_a_value_an_overlay_patch_sets_is_fixed_in_that_patch(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    cs, before, after = _fix(repo, "C-0034", "shop-worker", "production")
    assert [f.path for f in cs.files] == ["apps/production/shop-values-patch.yaml"]
    assert "      automountToken: false\n" in cs.files[0].after
    assert _check_overlays(before, after, "apps/production:shop", "C-0034") == [
        "apps/production:shop"
    ]
    (fix,) = cs.fixes
    assert "values patch apps/production/shop-values-patch.yaml sets it for" in fix.location.why


def test_a_value_a_json6902_patch_sets_is_fixed_in_its_operation(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    cs, before, after = _fix(repo, "C-0016", "shop-worker", "production")
    assert [f.path for f in cs.files] == ["apps/production/shop-security.yaml"]
    assert cs.files[0].after == (REPO / "apps/production/shop-security.yaml").read_text().replace(
        "allowPrivilegeEscalation: true", "allowPrivilegeEscalation: false"
    )
    assert _check_overlays(before, after, "apps/production:shop", "C-0016") == [
        "apps/production:shop"
    ]


def test_a_value_in_a_configmap_block_is_fixed_inside_the_block(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    cs, before, after = _fix(repo, "C-0016", "batch-worker", "staging")
    assert [f.path for f in cs.files] == ["apps/base/batch/configmap.yaml"]
    expected = (
        (REPO / "apps/base/batch/configmap.yaml")
        .read_text()
        .replace("      allowPrivilegeEscalation: true", "      allowPrivilegeEscalation: false")
    )
    assert cs.files[0].after == expected
    assert _check_overlays(before, after, "apps/staging:batch", "C-0016") == ["apps/staging:batch"]


def test_a_configmap_value_not_safe_to_edit_is_overridden_in_spec_values(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    configmap = repo / "apps/base/batch/configmap.yaml"
    configmap.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: batch-values\ndata:\n"
        '  values.yaml: "securityContext:\\n  allowPrivilegeEscalation: true\\n"\n'
    )
    cs, before, after = _fix(repo, "C-0016", "batch-worker", "staging")
    assert [f.path for f in cs.files] == ["apps/base/batch/helmrelease.yaml"]
    (fix,) = cs.fixes
    assert "is not a literal block (|)" in fix.location.why
    assert "spec.values wins" in fix.location.why
    _check_overlays(before, after, "apps/staging:batch", "C-0016")


def test_an_overlay_others_patch_differently_gets_a_patch_of_its_own(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    shop = repo / "apps/base/shop/helmrelease.yaml"
    shop.write_text(shop.read_text().replace("automountToken: false", "automountToken: true"))
    cs, before, after = _fix(repo, "C-0034", "shop-worker", "staging")
    # production patches the key itself: a fix in the base would not reach both alike
    assert [f.path for f in cs.files] == [
        "apps/staging/kustomization.yaml",
        "apps/staging/remedy-patch-helmrelease-shop.yaml",
    ]
    (fix,) = cs.fixes
    assert "overlays apps/production patch it differently" in fix.location.why
    assert _check_overlays(before, after, "apps/staging:shop", "C-0034") == ["apps/staging:shop"]


def test_a_key_only_a_secret_may_override_is_fixed_in_spec_values_and_says_so(
    tmp_path: Path,
) -> None:
    """No values source of the release sets the key (the chart default does): the Secret
    merged through valuesFrom might, so the fix goes to spec.values, which wins over it."""
    repo = _repo(tmp_path)
    shop = repo / "apps/base/shop/helmrelease.yaml"
    text = shop.read_text()
    shop.write_text(text[: text.index("  values:\n")])
    cs, before, after = _fix(repo, "C-0034", "shop-worker", "staging")
    (fix,) = cs.fixes
    assert "spec.values wins over Secret shop-registry (kube-remedy never reads" in fix.location.why
    assert "apps/staging/remedy-patch-helmrelease-shop.yaml" in [f.path for f in cs.files]
    _check_overlays(before, after, "apps/staging:shop", "C-0034")


def test_values_keys_target_paths_and_optional_sources_are_read_as_flux_does(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    release = repo / "apps/base/batch/helmrelease.yaml"
    release.write_text(
        release.read_text().replace(
            "      name: batch-values\n",
            "      name: batch-values\n"
            "    - kind: ConfigMap\n      name: batch-values\n"
            "      valuesKey: replicas\n      targetPath: replicaCount\n"
            "    - kind: ConfigMap\n      name: not-deployed-here\n      optional: true\n",
        )
    )
    configmap = repo / "apps/base/batch/configmap.yaml"
    configmap.write_text(configmap.read_text() + '  replicas: "2"\n')
    (batch,) = [
        a
        for a in HelmIndex.build(repo).apps
        if isinstance(a, OverlayRelease) and a.release == "batch"
    ]
    read = batch.read(FileOverlay(repo))
    assert read.unread == ()
    assert [s.label for s in read.sources] == [
        "ConfigMap batch-values (apps/base/batch/configmap.yaml, data key values.yaml)",
        "ConfigMap batch-values (apps/base/batch/configmap.yaml, data key replicas)",
    ]
    values = batch.values(FileOverlay(repo))
    assert values["replicaCount"] == 2
    assert values["securityContext"]["allowPrivilegeEscalation"] is True
    assert values["serviceAccount"] == {"automountToken": False}


def test_values_edits_inside_a_block_keep_every_other_byte() -> None:
    text = "kind: ConfigMap\ndata:\n  values.yaml: |\n    a:\n      b: 1  # keep\n    c: 2\n  other: x\n"
    out = apply_values_edits(text, [Set(("data", "values.yaml", "a", "b"), 3)])
    assert out == text.replace("b: 1", "b: 3")


def test_kustomize_index_is_not_built_twice(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path)
    builds = []
    real = KustomizeIndex.build.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        KustomizeIndex,
        "build",
        classmethod(lambda cls, root: builds.append(root) or real(cls, root)),
    )
    plan = build_plan(
        Report(
            "kubescape",
            "cluster",
            (finding_for("C-0034", "Deployment", "shop-worker", "production"),),
        ),
        repo,
    )
    assert plan.change_sets
    assert len(builds) == 1


def test_a_base_fix_that_would_make_another_overlay_worse_goes_to_the_findings_overlay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production inherits the generated values file once its own securityContext patch is
    gone: when the shared edit makes production worse, staging gets a patch of its own."""
    repo = _repo(tmp_path)
    kustomization = repo / "apps/production/kustomization.yaml"
    text = kustomization.read_text()
    kustomization.write_text(text[: text.index("  - path: shop-security.yaml")])
    real = helm.changed_overlays

    def production_worse(*args: Any) -> tuple[list[str], str | None]:
        changed, worse = real(*args)
        if "apps/production" in changed:
            return changed, "the edit would make overlay apps/production worse: (test)"
        return changed, worse

    monkeypatch.setattr(helm, "changed_overlays", production_worse)
    cs, before, after = _fix(repo, "C-0016", "shop-worker", "staging")
    assert [f.path for f in cs.files] == [
        "apps/staging/kustomization.yaml",
        "apps/staging/remedy-patch-helmrelease-shop.yaml",
    ]
    assert _check_overlays(before, after, "apps/staging:shop", "C-0016") == ["apps/staging:shop"]
    patch = load_documents(cs.files[1].after)[0]
    assert patch["spec"]["values"] == {"securityContext": {"allowPrivilegeEscalation": False}}


def test_an_overlay_a_change_makes_fail_a_control_is_named(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    apps = HelmIndex.build(repo).apps
    safe = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop-worker"}}
    worse = {**safe, "spec": {"template": {"spec": {"hostNetwork": True, "containers": []}}}}
    edited = FileOverlay(repo)
    edited.write("apps/base/shop/shop-values.yaml", "{}\n")

    def render(app: Any, overlay: FileOverlay) -> list[dict[str, Any]]:
        return [worse if overlay.changes() and app.overlay_dir == "apps/production" else safe]

    changed, why = changed_overlays(apps, edited, render, new_failures)
    assert changed == ["apps/production"]
    assert why is not None
    assert why.startswith(
        "the edit would make overlay apps/production worse: Deployment shop-worker"
    )


def test_a_scalar_json6902_operation_is_edited_in_place(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "apps/production/shop-values-patch.yaml").write_text(
        (REPO / "apps/production/shop-values-patch.yaml")
        .read_text()
        .replace("    serviceAccount:\n      automountToken: true\n", "")
    )
    ops = repo / "apps/production/shop-security.yaml"
    ops.write_text(
        ops.read_text()
        + "- op: replace\n  # the release team's operation\n"
        + "  path: /spec/values/serviceAccount/automountToken\n  value: true\n"
    )
    cs, before, after = _fix(repo, "C-0034", "shop-worker", "production")
    assert [f.path for f in cs.files] == ["apps/production/shop-security.yaml"]
    assert cs.files[0].after == ops.read_text().replace("  value: true\n", "  value: false\n")
    _check_overlays(before, after, "apps/production:shop", "C-0034")


def test_a_patch_of_the_overlay_targeting_several_releases_is_not_extended(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    shop = repo / "apps/base/shop/helmrelease.yaml"
    shop.write_text(shop.read_text().replace("automountToken: false", "automountToken: true"))
    staging = repo / "apps/staging"
    (staging / "interval.yaml").write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: any\n"
        "spec:\n  interval: 1h\n  values:\n    image:\n      pullPolicy: IfNotPresent\n"
    )
    (staging / "kustomization.yaml").write_text(
        (staging / "kustomization.yaml").read_text()
        + "patches:\n  - path: interval.yaml\n    target:\n      kind: HelmRelease\n"
    )
    cs, before, after = _fix(repo, "C-0034", "shop-worker", "staging")
    assert "apps/staging/interval.yaml" not in [f.path for f in cs.files]
    assert "apps/staging/remedy-patch-helmrelease-shop.yaml" in [f.path for f in cs.files]
    _check_overlays(before, after, "apps/staging:shop", "C-0034")


@pytest.mark.parametrize(
    ("generator_file", "content", "reason"),
    [
        (
            "../../../../outside.yaml",
            None,
            "its file ../../../../outside.yaml lies outside the repository",
        ),
        ("shop-values.yaml", "- not\n- a mapping\n", "is not a mapping"),
        ("missing.yaml", None, "its file apps/base/shop/missing.yaml does not exist"),
    ],
)
def test_a_values_source_kube_remedy_cannot_read_says_why(
    tmp_path: Path, generator_file: str, content: str | None, reason: str
) -> None:
    repo = _repo(tmp_path)
    kustomization = repo / "apps/base/shop/kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace(
            "values.yaml=shop-values.yaml", f"values.yaml={generator_file}"
        )
    )
    if content is not None:
        (repo / "apps/base/shop" / generator_file).write_text(content)
    apps = HelmIndex.build(repo).apps
    shop = next(
        a for a in apps if isinstance(a, OverlayRelease) and a.overlay_dir == "apps/staging"
    )
    (unread,) = [w for w in shop.unread_values if w.startswith("ConfigMap")]
    assert unread.startswith("ConfigMap shop-values (")
    assert reason in unread
