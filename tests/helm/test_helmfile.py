"""helmfile releases as a precedence source: values files and inline values in list order."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.locate.helm import HelmIndex
from bot.locate.helmfile import scan_helmfiles
from bot.plan import build_plan
from bot.safe_load import load_yaml, load_yaml_all
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef

SHOP = Path(__file__).parent / "repos" / "shop"

HELMFILE = """\
releases:
  - name: shop
    namespace: shop-staging
    chart: ./charts/shop
    values:
      - envs/values-staging.yaml
  - name: shop
    namespace: shop-prod
    chart: ./charts/shop
    values:
      - envs/values-prod.yaml
      - worker:
          resources: {}
  - name: ingress
    chart: ingress-nginx/ingress-nginx
"""


def _repo(tmp_path: Path, helmfile: str = HELMFILE) -> Path:
    repo = tmp_path / "repo"
    for part in ("charts", "envs"):
        shutil.copytree(SHOP / part, repo / part)
    (repo / "helmfile.yaml").write_text(helmfile, encoding="utf-8")
    return repo


def test_local_releases_with_files_then_inline(tmp_path: Path) -> None:
    staging, prod = scan_helmfiles(_repo(tmp_path))  # the remote chart is not ours
    assert (staging.chart, staging.release, staging.namespace) == (
        "charts/shop",
        "shop",
        "shop-staging",
    )
    assert staging.value_files == ("envs/values-staging.yaml",)
    assert staging.inline == {} and staging.inline_path is None
    assert prod.value_files == ("envs/values-prod.yaml",)
    assert prod.inline == {"worker": {"resources": {}}}
    assert prod.inline_path == ("releases", 1, "values", 1)


def test_file_after_inline_values_or_templated_helmfile_is_not_read(tmp_path: Path) -> None:
    reordered = "releases:\n  - name: a\n    chart: ./charts/shop\n    values:\n" + (
        "      - {x: 1}\n      - envs/values-prod.yaml\n"
    )
    assert scan_helmfiles(_repo(tmp_path / "a", reordered)) == []
    templated = HELMFILE.replace("envs/values-staging.yaml", "envs/{{ .Environment.Name }}.yaml")
    assert scan_helmfiles(_repo(tmp_path / "b", templated)) == []


def _finding(control: str, name: str, namespace: str) -> Finding:
    ref = ResourceRef(api_version="apps/v1", kind="Deployment", namespace=namespace, name=name)
    return Finding(control_id=control, resource=ref)


def test_fix_lands_in_the_layer_that_wins_for_each_release(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    index = HelmIndex.build(repo)
    assert {a.namespace for a in index.apps} == {"shop-staging", "shop-prod"}
    findings = (
        _finding("C-0270", "shop-api", "shop-prod"),  # prod's own file sets api.resources
        _finding("C-0270", "shop-worker", "shop-prod"),  # the helmfile's inline values win
    )
    plan = build_plan(Report("kubescape", "test", findings), repo)
    assert not plan.unfixable, [u.reason for u in plan.unfixable]
    files = {c.path: c.after for cs in plan.change_sets for c in cs.files}
    assert set(files) == {"envs/values-prod.yaml", "helmfile.yaml"}
    prod = load_yaml(files["envs/values-prod.yaml"], "prod")
    assert prod["api"]["resources"]["limits"]["cpu"]
    (doc,) = load_yaml_all(files["helmfile.yaml"], "helmfile")
    inline = doc["releases"][1]["values"][1]
    assert inline["worker"]["resources"]["limits"]["cpu"]
    # the staging release is untouched and the remote release stays as written
    assert doc["releases"][0] == load_yaml(HELMFILE, "h")["releases"][0]
    assert doc["releases"][2] == {"name": "ingress", "chart": "ingress-nginx/ingress-nginx"}


def test_staging_renders_without_the_worker_it_switches_off(tmp_path: Path) -> None:
    plan = build_plan(
        Report("kubescape", "test", (_finding("C-0270", "shop-worker", "shop-staging"),)),
        _repo(tmp_path),
    )
    (item,) = plan.unfixable
    assert not plan.change_sets
    assert "by helmfile release shop, not in shop-staging" in item.reason


def test_remote_releases_are_chart_references(tmp_path: Path) -> None:
    (tmp_path / "helmfile.yaml").write_text(
        "repositories:\n"
        "  - {name: bitnami, url: https://charts.bitnami.com/bitnami/}\n"
        "  - {name: ghcr, url: ghcr.io/shop/charts, oci: true}\n"
        "releases:\n"
        "  - {name: cache, chart: bitnami/redis, version: ~19.0}\n"
        "  - {name: api, chart: ghcr/api, version: 1.2.3}\n"
        "  - {name: proxy, chart: oci://registry.example.com/charts/proxy}\n"
        "  - {name: unknown, chart: elsewhere/thing}\n"
    )
    refs = {a.name: a.remote for a in scan_helmfiles(tmp_path)}
    assert set(refs) == {"cache", "api", "proxy"}  # an unlisted repository is not guessed
    cache, api, proxy = refs["cache"], refs["api"], refs["proxy"]
    assert cache is not None and api is not None and proxy is not None
    assert (cache.name, cache.repository, cache.version) == (
        "redis",
        "https://charts.bitnami.com/bitnami",
        "~19.0",
    )
    assert (api.name, api.repository) == ("api", "oci://ghcr.io/shop/charts")
    assert (proxy.name, proxy.repository, proxy.version) == (
        "proxy",
        "oci://registry.example.com/charts",
        "",
    )
