"""GitOps manifests that deploy repository charts: ArgoCD Application/ApplicationSet, Flux."""

from __future__ import annotations

from pathlib import Path

from bot.locate.gitops import link_chart_sources, scan_gitops
from bot.locate.helm_render import split_template_output


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_argocd_application_value_files_and_inline(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "apps/web.yaml",
        """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source:
    path: ./charts/web
    helm:
      releaseName: shop
      valueFiles: [values.yaml, ../../envs/prod/web.yaml]
      valuesObject: {replicaCount: 3}
  destination: {namespace: prod}
""",
    )
    (app,) = scan_gitops(tmp_path)
    assert (app.chart, app.release, app.namespace) == ("charts/web", "shop", "prod")
    assert app.value_files == ("charts/web/values.yaml", "envs/prod/web.yaml")
    assert app.inline == {"replicaCount": 3}
    assert app.inline_path == ("spec", "source", "helm", "valuesObject")


def test_argocd_values_string_is_read_only(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "app.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: w}\n"
        "spec:\n  source:\n    path: w\n    helm:\n      values: |\n        a: 1\n",
    )
    (app,) = scan_gitops(tmp_path)
    assert app.inline == {"a": 1} and app.inline_path is None
    assert app.release == "w"


def test_applicationset_template_and_templated_paths(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "appsets.yaml",
        """\
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: fixed}
spec:
  template:
    metadata: {name: fixed}
    spec:
      source: {path: charts/api, helm: {valueFiles: [values-staging.yaml]}}
      destination: {namespace: staging}
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: generated}
spec:
  template:
    spec:
      source: {path: "charts/{{name}}"}
""",
    )
    (app,) = scan_gitops(tmp_path)
    assert (app.kind, app.chart, app.namespace) == ("ApplicationSet", "charts/api", "staging")
    assert app.value_files == ("charts/api/values-staging.yaml",)


def test_flux_helmrelease_from_git_path(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "clusters/prod/api.yaml",
        """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: api, namespace: flux-system}
spec:
  targetNamespace: prod
  chart:
    spec:
      chart: ./charts/api
      valuesFiles: [values.yaml, values-prod.yaml]
      sourceRef: {kind: GitRepository, name: cd-config}
  values:
    resources: {limits: {memory: 1Gi}}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: redis}
spec:
  chart:
    spec: {chart: redis, sourceRef: {kind: HelmRepository, name: bitnami}}
""",
    )
    app, redis = scan_gitops(tmp_path)
    assert (app.chart, app.release, app.namespace) == ("charts/api", "prod-api", "prod")
    assert app.value_files == ("charts/api/values.yaml", "charts/api/values-prod.yaml")
    assert app.inline_path == ("spec", "values")
    assert app.document_index == 0 and app.remote is None
    # A chart from a Helm repository is a remote reference (resolved from a chart cache).
    assert redis.remote is not None and redis.remote.name == "redis"
    assert redis.remote.lookup == ("HelmRepository", None, "bitnami")


def test_paths_escaping_the_repository_are_ignored(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "app.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\n"
        "spec:\n  source: {path: ../../etc}\n",
    )
    assert scan_gitops(tmp_path) == []


def test_helm_template_output_is_split_by_source() -> None:
    text = (
        "---\n# Source: demo/templates/service.yaml\nkind: Service\n"
        "---\n# Source: demo/templates/deployment.yaml\nkind: Deployment\n"
    )
    out = split_template_output(text)
    assert sorted(out) == ["demo/templates/deployment.yaml", "demo/templates/service.yaml"]
    assert "kind: Deployment" in out["demo/templates/deployment.yaml"]


def test_renderer_choice() -> None:
    from bot.locate.helm_render import BinaryRenderer, SdkRenderer, make_renderer

    assert isinstance(make_renderer(None), SdkRenderer)
    binary = make_renderer("/opt/helm/bin/helm")
    assert isinstance(binary, BinaryRenderer) and binary.helm == "/opt/helm/bin/helm"


def test_missing_helm_binary_is_a_chart_error(tmp_path: Path) -> None:
    import pytest

    from bot.errors import ChartError
    from bot.locate.helm_render import BinaryRenderer

    with pytest.raises(ChartError, match="cannot run"):
        BinaryRenderer(str(tmp_path / "no-helm")).render(tmp_path, {}, "r", "ns")


def test_flux_chart_sources_are_linked(tmp_path: Path) -> None:
    """A HelmRelease's HelmRepository (OCI or not) or OCIRepository gives the chart's URL,
    name and version; a source object missing from the repository leaves the URL unknown."""
    _write(
        tmp_path,
        "apps/releases.yaml",
        """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: shop}
spec:
  chart:
    spec:
      chart: web
      version: ~1.2
      valuesFiles: [values-prod.yaml]
      sourceRef: {kind: HelmRepository, name: oci-charts}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: certs, namespace: cert-manager}
spec:
  chartRef: {kind: OCIRepository, name: cert-manager}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: pinned, namespace: shop}
spec:
  chartRef: {kind: OCIRepository, name: pinned, namespace: shop}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: lost, namespace: shop}
spec:
  chart:
    spec: {chart: lost, sourceRef: {kind: HelmRepository, name: nowhere}}
""",
    )
    _write(
        tmp_path,
        "apps/sources.yaml",
        """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: oci-charts, namespace: shop}
spec: {type: oci, url: oci://ghcr.io/shop/charts}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: cert-manager, namespace: cert-manager}
spec: {url: oci://quay.io/jetstack/charts/cert-manager, ref: {semver: 1.x}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: pinned, namespace: shop}
spec: {url: oci://ghcr.io/shop/pinned, ref: {digest: "sha256:abc"}}
""",
    )
    apps = {a.name: a.remote for a in link_chart_sources(tmp_path, scan_gitops(tmp_path))}
    web, certs, pinned, lost = apps["web"], apps["certs"], apps["pinned"], apps["lost"]
    assert web is not None and certs is not None and pinned is not None and lost is not None
    assert (web.name, web.repository, web.version) == ("web", "oci://ghcr.io/shop/charts", "~1.2")
    assert web.chart_files == ("values-prod.yaml",)
    assert (certs.name, certs.repository, certs.version) == (
        "cert-manager",
        "oci://quay.io/jetstack/charts",
        "1.x",
    )
    assert "pins the digest sha256:abc" in pinned.unusable
    assert (lost.repository, lost.lookup) == ("", None)
    assert (
        str(lost)
        == "chart lost (any version) from HelmRepository nowhere (not found in the repository)"
    )


def test_argocd_chart_files_after_repository_files_are_not_modelled(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "app.yaml",
        """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  sources:
    - repoURL: registry-1.docker.io/bitnamicharts
      chart: nginx
      targetRevision: 18.x
      helm: {valueFiles: [$values/envs/prod.yaml, values-prod.yaml]}
    - {repoURL: "https://git.example.com/cd.git", ref: values}
""",
    )
    (app,) = scan_gitops(tmp_path)
    assert app.remote is not None
    assert app.remote.repository == "oci://registry-1.docker.io/bitnamicharts"
    assert app.value_files == ("envs/prod.yaml",)
    assert "lists the chart's own values-prod.yaml after envs/prod.yaml" in app.remote.unusable
