"""Deployments of charts that are not in the repository, rendered from a chart cache: the fix
goes to the deployment's values, never into the cached chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.locate.chart_sources import ChartCache
from bot.locate.helm import HelmIndex, locate_helm
from bot.plan import Locator, build_plan
from bot.sources.base import Report
from tests.helm.chart_cache import SHOP, cached_worker, tree_digest
from tests.helm.chart_cache import flux_repo as _flux_repo
from tests.helm.chart_cache import write as _write
from tests.helm.helpers import finding_for, fix_and_verify


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    cached_worker(folder, "0.2.0", archive=True)
    cached_worker(folder, "0.3.0", archive=False)
    cached_worker(folder, "1.0.0", archive=True)
    return folder


def test_flux_helmrelease_fixed_in_its_values_not_in_the_cache(tmp_path: Path, cache: Path) -> None:
    repo = _flux_repo(
        tmp_path, "<1.0.0", "  values:\n    serviceAccount:\n      automountToken: true\n"
    )
    before = tree_digest(cache)
    index = HelmIndex.build(repo, chart_cache=ChartCache([cache]))
    outcome = fix_and_verify(
        repo, finding_for("C-0034", "Deployment", "shop-worker", "shop"), index
    )
    assert outcome.diffs() == {
        "apps/worker/release.yaml": (
            ["      automountToken: true"],
            ["      automountToken: false"],
        )
    }
    why = outcome.target.location.why
    assert f"chart worker 0.3.0 from {SHOP}" in why
    assert "chart cache's worker-0.3.0/worker" in why and "the deployment asks for <1.0.0" in why
    assert outcome.target.location.chart_source == (
        f"worker 0.3.0 from {SHOP} (chart cache: worker-0.3.0/worker)"
    )
    # change sets are named for the chart, not its version: a newer cached one keeps them
    assert outcome.target.location.chart == f"worker --repo {SHOP}"
    assert tree_digest(cache) == before


def test_flux_helmrelease_without_values_gets_them(tmp_path: Path, cache: Path) -> None:
    """The chart default is wrong and the release sets nothing: the override is added to the
    release's spec.values (the archive picked by the constraint stays untouched)."""
    repo = _flux_repo(tmp_path, "~0.2", "")
    index = HelmIndex.build(repo, chart_cache=ChartCache([cache]))
    (chart,) = index.charts.values()
    assert chart.external is not None and chart.external.origin == "worker-0.2.0.tgz"
    outcome = fix_and_verify(
        repo, finding_for("C-0034", "Deployment", "shop-worker", "shop"), index
    )
    removed, added = outcome.diffs()["apps/worker/release.yaml"]
    assert removed == [] and "automountToken: false" in "\n".join(added)
    assert list(outcome.diffs()) == ["apps/worker/release.yaml"]


def test_argocd_application_from_a_chart_repository(tmp_path: Path, cache: Path) -> None:
    repo = tmp_path / "cd-config"
    _write(
        repo / "apps" / "worker.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: worker\n"
        "spec:\n  destination:\n    namespace: shop\n  source:\n"
        f"    repoURL: {SHOP}\n    chart: worker\n    targetRevision: 0.x\n"
        "    helm:\n      releaseName: shop\n      valueFiles: [values-prod.yaml]\n"
        "      valuesObject:\n        serviceAccount:\n          automountToken: true\n",
    )
    index = HelmIndex.build(repo, chart_cache=ChartCache([cache]))
    (app,) = index.apps
    assert app.chart == f"worker --repo {SHOP}"
    assert app.remote is not None and app.remote.chart_files == ("values-prod.yaml",)
    outcome = fix_and_verify(
        repo, finding_for("C-0034", "Deployment", "shop-worker", "shop"), index
    )
    assert outcome.diffs() == {
        "apps/worker.yaml": (
            ["          automountToken: true"],
            ["          automountToken: false"],
        )
    }


def test_argocd_multi_source_values_file_in_the_repository(tmp_path: Path, cache: Path) -> None:
    repo = tmp_path / "cd-config"
    _write(repo / "envs" / "prod" / "worker.yaml", "serviceAccount:\n  automountToken: true\n")
    _write(
        repo / "apps" / "worker.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: shop\n"
        "spec:\n  destination:\n    namespace: shop\n  sources:\n"
        f"    - repoURL: {SHOP}\n      chart: worker\n      targetRevision: '~0.2.0'\n"
        "      helm:\n        valueFiles: [$values/envs/prod/worker.yaml]\n"
        "    - repoURL: https://git.example.com/cd-config.git\n      ref: values\n",
    )
    index = HelmIndex.build(repo, chart_cache=ChartCache([cache]))
    outcome = fix_and_verify(
        repo, finding_for("C-0034", "Deployment", "shop-worker", "shop"), index
    )
    assert outcome.diffs() == {
        "envs/prod/worker.yaml": (["  automountToken: true"], ["  automountToken: false"])
    }
    assert "chart worker 0.2.0" in outcome.target.location.why


def test_helmfile_release_from_a_chart_repository(tmp_path: Path, cache: Path) -> None:
    repo = tmp_path / "cd-config"
    _write(
        repo / "helmfile.yaml",
        f"repositories:\n  - name: shop\n    url: {SHOP}\nreleases:\n"
        "  - name: shop\n    namespace: shop\n    chart: shop/worker\n    version: 1.0.0\n"
        "    values:\n      - serviceAccount:\n          automountToken: true\n",
    )
    index = HelmIndex.build(repo, chart_cache=ChartCache([cache]))
    outcome = fix_and_verify(
        repo, finding_for("C-0034", "Deployment", "shop-worker", "shop"), index
    )
    assert list(outcome.diffs()) == ["helmfile.yaml"]
    assert "chart worker 1.0.0" in outcome.target.location.why


def test_a_chart_no_cache_holds_is_named_with_how_to_add_it(tmp_path: Path, cache: Path) -> None:
    repo = _flux_repo(tmp_path, ">=2.0.0", "")
    locator = Locator(repo, charts=ChartCache([cache]))
    reason = locator.locate(finding_for("C-0034", "Deployment", "shop-worker", "shop"))
    assert isinstance(reason, str)
    assert reason.startswith(
        "HelmRelease worker (apps/worker/release.yaml): chart worker (>=2.0.0) from "
        f"{SHOP} is not in the chart cache (it holds 0.2.0, 0.3.0, 1.0.0); add it with "
        f"`helm pull worker --repo {SHOP} --version '>=2.0.0' --untar -d DIR` and pass "
        "--charts DIR; "
    ), reason
    # A resource of another namespace is not blamed on it.
    other = locator.locate(finding_for("C-0034", "Deployment", "api", "payments"))
    assert isinstance(other, str) and "chart cache" not in other


def test_chart_path_hints_never_reach_the_cache(tmp_path: Path, cache: Path) -> None:
    """A scanner's chart path naming a directory outside the repository is a hint: matching
    by kind and name still finds the cached chart's resource, nothing is read through it."""
    repo = _flux_repo(tmp_path, "", "  values:\n    serviceAccount:\n      automountToken: true\n")
    index = HelmIndex.build(repo, chart_cache=ChartCache([cache]))
    finding = finding_for("C-0034", "Deployment", "shop-worker", "shop", "../../cache/worker")
    target = locate_helm(finding, repo, index)
    assert not isinstance(target, str), target
    external = target.deployment.chart.external
    assert external is not None and external.version == "1.0.0"
    assert not target.chart_dir.is_relative_to(repo)


def test_the_plan_names_the_chart_version_and_the_uncached_charts(
    tmp_path: Path, cache: Path
) -> None:
    repo = _flux_repo(
        tmp_path, "<1.0.0", "  values:\n    serviceAccount:\n      automountToken: true\n"
    )
    _write(
        repo / "apps" / "api" / "release.yaml",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
        "metadata:\n  name: api\n  namespace: payments\nspec:\n"
        "  chartRef: {kind: OCIRepository, name: api}\n---\n"
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\n"
        "metadata:\n  name: api\n  namespace: payments\n"
        "spec:\n  url: oci://ghcr.io/shop/charts/api\n  ref: {semver: '>=2.1.0'}\n",
    )
    findings = (
        finding_for("C-0034", "Deployment", "shop-worker", "shop"),
        finding_for("C-0034", "Deployment", "api", "payments"),
    )
    plan = build_plan(Report("kubescape", "test", findings), repo, charts=ChartCache([cache]))
    (change_set,) = plan.change_sets
    assert [c.path for c in change_set.files] == ["apps/worker/release.yaml"]
    (fix,) = change_set.fixes
    assert f"chart worker 0.3.0 from {SHOP}" in fix.location.why
    (unfixable,) = plan.unfixable
    assert unfixable.category == "not-in-repo"
    assert unfixable.reason.startswith(
        "HelmRelease api (apps/api/release.yaml): chart api (>=2.1.0) from "
        "oci://ghcr.io/shop/charts is not in the chart cache; add it with "
        "`helm pull oci://ghcr.io/shop/charts/api --version '>=2.1.0' --untar -d DIR`"
    ), unfixable.reason


def test_environments_asking_for_different_ranges_render_their_own_version(
    tmp_path: Path, cache: Path
) -> None:
    repo = _flux_repo(tmp_path, "~0.2", "")
    prod = (repo / "apps" / "worker" / "release.yaml").read_text()
    _write(
        repo / "apps" / "prod.yaml",
        prod.replace("name: worker\n", "name: worker-prod\n", 1).replace("~0.2", "<1.0.0"),
    )
    index = HelmIndex.build(repo, chart_cache=ChartCache([cache]))
    versions = {
        app.name: index.charts[app.chart].external.version  # type: ignore[union-attr]
        for app in index.apps
    }
    assert versions == {"worker": "0.2.0", "worker-prod": "0.3.0"}
    assert len(index.charts) == 2


def test_remedy_plan_shows_the_chart_rendered(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import _charts_line, main
    from bot.sources import parse_report

    repo = _flux_repo(
        tmp_path, "<1.0.0", "  values:\n    serviceAccount:\n      automountToken: true\n"
    )
    check = {
        "check_id": "CKV_K8S_38",
        "check_name": "Ensure that Service Account Tokens are only mounted where necessary",
        "file_path": "/rendered/worker.yaml",
        "file_line_range": [1, 20],
        "resource": "Deployment.shop.shop-worker",
    }
    report = tmp_path / "checkov.json"
    report.write_text(
        json.dumps({"check_type": "kubernetes", "results": {"failed_checks": [check]}})
    )
    argv = ["plan", "--report", str(report), "--repo", str(repo), "--charts", str(cache)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "apps/worker/release.yaml" in out and "rendered chart:" in out
    plan = build_plan(
        parse_report(json.loads(report.read_text()), "checkov"), repo, charts=ChartCache([cache])
    )
    (change_set,) = plan.change_sets
    assert _charts_line(change_set) == (
        f"\n  rendered chart: worker 0.3.0 from {SHOP} (chart cache: worker-0.3.0/worker)"
    )
