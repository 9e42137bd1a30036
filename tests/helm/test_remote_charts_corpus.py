"""The Flux example repository (a HelmRelease of podinfo from a HelmRepository, patched by
staging and production overlays), with the corpus podinfo chart as the chart cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.locate.chart_sources import ChartCache
from bot.locate.helm import HelmIndex, locate_helm
from bot.plan import Locator
from tests.conftest import corpus_path
from tests.helm.helpers import failing_controls, finding_for, fix_and_verify

pytestmark = pytest.mark.corpus

PODINFO = "https://stefanprodan.github.io/podinfo"
BASE = "apps/base/podinfo/release.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    copy = tmp_path / "flux2-kustomize-helm-example"
    shutil.copytree(corpus_path("kustomize", "flux2-kustomize-helm-example"), copy)
    return copy


@pytest.fixture
def index(repo: Path) -> HelmIndex:
    return HelmIndex.build(repo, chart_cache=ChartCache([corpus_path("charts", "podinfo")]))


def test_both_overlays_resolve_podinfo_from_the_cache(index: HelmIndex) -> None:
    """staging asks for >=1.0.0-alpha, production for >=1.0.0: both get the cached 6.14.1."""
    label = f"podinfo --repo {PODINFO}"
    assert sorted(a.name for a in index.apps if a.chart == label) == [
        "podinfo (kustomize overlay apps/production)",
        "podinfo (kustomize overlay apps/staging)",
    ]
    assert {a.remote.version for a in index.apps if a.remote} == {">=1.0.0", ">=1.0.0-alpha"}
    # The OCI charts of the infrastructure controllers are not cached: named, with the fix.
    missing = {m.chart: m.reason for m in index.missing}
    assert set(missing) == {"cert-manager", "gateway-helm"}
    assert (
        "helm pull oci://quay.io/jetstack/charts/cert-manager --version 1.x"
        in (missing["cert-manager"])
    )


def test_cluster_findings_on_rendered_podinfo_are_located(repo: Path, index: HelmIndex) -> None:
    """What the cluster reports (namespace podinfo, release podinfo) is the cached chart's
    Deployment as the overlays deploy it; the location names the version and its source."""
    rendered = [
        d
        for d in index.cache.docs(
            index.chart_root(index.charts[index.apps[0].chart]), {}, "podinfo", "podinfo"
        )
        if d.kind == "Deployment"
    ]
    (deployment,) = rendered
    failing = failing_controls(deployment.document)
    assert "C-0016" in failing and "C-0034" in failing
    for control in failing:
        target = locate_helm(finding_for(control, "Deployment", "podinfo", "podinfo"), repo, index)
        assert not isinstance(target, str), (control, target)
        assert target.deployment.chart.external is not None
        assert target.deployment.chart.external.version == "6.14.1"
        assert f"--repo {PODINFO} --version 6.14.1" in target.location.why


def test_fixed_in_the_base_release_when_every_overlay_inherits(
    repo: Path, index: HelmIndex
) -> None:
    finding = finding_for("C-0016", "Deployment", "podinfo", "podinfo")
    target = locate_helm(finding, repo, index)
    assert not isinstance(target, str), target
    outcome = fix_and_verify(repo, finding, index)
    assert list(outcome.diffs()) == [BASE]
    assert "6.14.1" in outcome.target.location.why


def test_without_a_cache_the_finding_says_how_to_add_the_chart(repo: Path) -> None:
    locator = Locator(repo, charts=ChartCache([]))
    reason = locator.locate(finding_for("C-0016", "Deployment", "podinfo", "podinfo"))
    assert isinstance(reason, str)
    assert reason.startswith("HelmRelease podinfo (kustomize overlay apps/")
    assert f"chart podinfo (>=1.0.0) from {PODINFO} is not in this repository" in reason
    assert f"`helm pull podinfo --repo {PODINFO} --version '>=1.0.0' --untar -d DIR`" in reason
    assert "cert-manager" not in reason  # another namespace's chart is not blamed


def test_overlays_patching_only_the_version_get_the_fix_in_the_base(repo: Path) -> None:
    """With the overlays' values patches dropped (each still pins its own version range),
    every overlay inherits spec.values from the base: the fix lands in the base release and
    the change names both environments."""
    for env in ("staging", "production"):
        patch = repo / "apps" / env / "podinfo-values.yaml"
        text = patch.read_text(encoding="utf-8")
        patch.write_text(text[: text.index("  values:")], encoding="utf-8")
    index = HelmIndex.build(repo, chart_cache=ChartCache([corpus_path("charts", "podinfo")]))
    for control in ("C-0016", "C-0013", "C-0004", "C-0050", "C-0055"):
        outcome = fix_and_verify(
            repo, finding_for(control, "Deployment", "podinfo", "podinfo"), index
        )
        assert list(outcome.diffs()) == [BASE], control
        why = outcome.target.location.why
        assert f"chart podinfo 6.14.1 from {PODINFO}" in why
        assert why.endswith("overlays whose rendered chart changes: apps/production, apps/staging")
    # A field the chart has no values key for: a Flux post-renderer patch in the base
    # release (the cached chart is never edited).
    outcome = fix_and_verify(repo, finding_for("C-0034", "Deployment", "podinfo", "podinfo"), index)
    assert list(outcome.diffs()) == [BASE]
    assert "  postRenderers:" in outcome.diffs()[BASE][1]
    assert "because chart podinfo has no values key" in outcome.target.location.why
