"""A finding applies only to the resource it names: kind, name, namespace and container."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.locate.gitops import deployed_namespaces
from bot.plan import build_plan
from bot.repo_config import parse_repo_config
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef, Severity, SourceHint

FRONTEND = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
spec:
  selector:
    matchLabels: {app: frontend}
  template:
    metadata:
      labels: {app: frontend}
    spec:
      containers:
        - name: CONTAINER
          image: nginx:1.27
"""


def frontend(container: str) -> str:
    return FRONTEND.replace("CONTAINER", container)


def shop_frontend(
    namespace: str | None = "shop", container: str = "web", path: str | None = None
) -> Finding:
    return Finding(
        control_id="C-0016",
        scanner="kubescape",
        scanner_ids=("C-0016",),
        severity=Severity.HIGH,
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", namespace=namespace, name="frontend"
        ),
        container=container,
        source=SourceHint(path=path),
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text, encoding="utf-8")
    return root


def plan_for(root: Path, *findings: Finding, config: str | None = None):  # type: ignore[no-untyped-def]
    return build_plan(Report("kubescape", "test", findings), root, parse_repo_config(config))


def test_another_frontend_in_another_file_is_not_the_target(tmp_path: Path) -> None:
    """The issue's case: shop/frontend (container web, apps/shop/frontend.yaml) must not edit
    a namespace-less frontend whose container is php-redis."""
    write(tmp_path, {"guestbook/frontend.yaml": frontend("php-redis")})
    plan = plan_for(tmp_path, shop_frontend(path="apps/shop/frontend.yaml"))
    assert plan.change_sets == ()
    (unfixable,) = plan.unfixable
    assert unfixable.category == "not-in-repo"
    assert unfixable.reason.startswith("not in this repository: ")
    assert "guestbook/frontend.yaml (default)" in unfixable.reason


def test_a_container_the_resource_does_not_have_is_not_matched(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "frontend.yaml": frontend("php-redis").replace(
                "  name: frontend\n", "  name: frontend\n  namespace: shop\n", 1
            )
        },
    )
    (unfixable,) = plan_for(tmp_path, shop_frontend()).unfixable
    assert "has no container 'web'" in unfixable.reason
    assert "php-redis" in unfixable.reason


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(
            {"apps/shop/kustomization.yaml": "namespace: shop\nresources: [frontend.yaml]\n"},
            id="kustomization-namespace",
        ),
        pytest.param(
            {
                "argo/shop.yaml": (
                    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop}\n"
                    "spec:\n  source: {repoURL: x, path: apps/shop}\n"
                    "  destination: {namespace: shop, server: https://kubernetes.default.svc}\n"
                )
            },
            id="argo-destination",
        ),
        pytest.param(
            {
                "clusters/shop.yaml": (
                    "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
                    "metadata: {name: shop}\nspec: {path: ./apps/shop, targetNamespace: shop}\n"
                )
            },
            id="flux-target-namespace",
        ),
        pytest.param({".remedy.yaml": "default_namespace: shop\n"}, id="remedy-default"),
    ],
)
def test_the_deployment_gives_the_namespace(tmp_path: Path, files: dict[str, str]) -> None:
    write(tmp_path, {"apps/shop/frontend.yaml": frontend("web"), **files})
    config = (tmp_path / ".remedy.yaml").read_text() if ".remedy.yaml" in files else None
    plan = plan_for(tmp_path, shop_frontend(), config=config)
    (change_set,) = plan.change_sets
    assert [f.path for f in change_set.files] == ["apps/shop/frontend.yaml"]
    assert "Deployment shop/frontend" in change_set.title
    # the same document is not in another namespace
    other = plan_for(tmp_path, shop_frontend(namespace="staging"), config=config)
    assert other.change_sets == ()
    assert other.unfixable[0].category == "not-in-repo"


def test_base_shared_by_two_overlays_has_both_namespaces(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "base/frontend.yaml": frontend("web"),
            "overlays/a/kustomization.yaml": "namespace: shop\nresources: [../../base]\n",
            "overlays/b/kustomization.yaml": "namespace: staging\nresources: [../../base]\n",
        },
    )
    assert deployed_namespaces(tmp_path).of("base/frontend.yaml") == {"shop", "staging"}
    assert deployed_namespaces(tmp_path).of("elsewhere.yaml") == {"default"}


def test_file_scanners_default_and_unset_namespace_name_a_namespace_less_document(
    tmp_path: Path,
) -> None:
    write(tmp_path, {"frontend.yaml": frontend("web")})
    for namespace in (None, "default"):
        plan = plan_for(tmp_path, shop_frontend(namespace=namespace, path="frontend.yaml"))
        assert [cs.files[0].path for cs in plan.change_sets] == ["frontend.yaml"]
    # a cluster scan (no file) of default/frontend is the document deployed into default
    plan = plan_for(tmp_path, shop_frontend(namespace="default"))
    assert len(plan.change_sets) == 1


def test_argo_keeps_an_explicit_namespace_and_kustomize_overrides_it(tmp_path: Path) -> None:
    doc = frontend("web").replace("  name: frontend\n", "  name: frontend\n  namespace: ops\n", 1)
    argo = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop}\n"
        "spec: {source: {path: apps/shop}, destination: {namespace: shop}}\n"
    )
    write(tmp_path, {"apps/shop/frontend.yaml": doc, "argo.yaml": argo})
    assert plan_for(tmp_path, shop_frontend(namespace="ops")).change_sets
    assert not plan_for(tmp_path, shop_frontend(namespace="shop")).change_sets
    write(
        tmp_path, {"apps/shop/kustomization.yaml": "namespace: shop\nresources: [frontend.yaml]\n"}
    )
    assert plan_for(tmp_path, shop_frontend(namespace="shop")).change_sets
    assert not plan_for(tmp_path, shop_frontend(namespace="ops")).change_sets
    # a scan of the file itself still names the namespace it is written with
    assert plan_for(
        tmp_path, shop_frontend(namespace="ops", path="apps/shop/frontend.yaml")
    ).change_sets


def test_default_namespace_setting_is_validated() -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="default_namespace"):
        parse_repo_config("default_namespace: Not_A_Namespace\n")
