"""What a Flux HelmRelease deploys beyond its chart's values: the chart's tests only when the
release runs them, a NetworkPolicy the chart cannot render written beside the release, and a
release that two kustomize overlays build told apart by the path the scanner names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.locate.chart_sources import ChartCache
from bot.locate.helm import HelmIndex, locate_helm
from bot.model import Location
from bot.plan import build_plan
from bot.render import change_set_context
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef
from tests.helm.chart_cache import SHOP, cached_worker, flux_repo, tree_digest, write
from tests.helm.helpers import finding_for

HERE = Path(__file__).parent
TEST_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "worker.fullname" . }}-ping
  annotations:
    "helm.sh/hook": test
spec:
  restartPolicy: Never
  containers:
    - name: ping
      image: busybox:1.36
      command: ["wget", "-qO-", "{{ include "worker.fullname" . }}:8080"]
"""


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """The worker chart 0.3.0 as `helm pull --untar` leaves it, with a test pod."""
    folder = tmp_path / "cache"
    chart = cached_worker(folder, "0.3.0", archive=False)
    (chart / "templates" / "tests").mkdir()
    (chart / "templates" / "tests" / "ping.yaml").write_text(TEST_POD, encoding="utf-8")
    return folder


def _flux_repo(tmp_path: Path, spec_extra: str = "") -> Path:
    """The worker release at 0.3.0, its folder a kustomization (as Flux examples keep it)."""
    repo = flux_repo(tmp_path, "0.3.0", spec_extra)
    write(
        repo / "apps" / "worker" / "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - repository.yaml\n  - release.yaml\n",
    )
    return repo


def _plan(repo: Path, cache: Path, *findings: Finding):  # type: ignore[no-untyped-def]
    return build_plan(Report("checkov", "test", findings), repo, charts=ChartCache([cache]))


def test_chart_tests_a_release_never_runs_are_compliant_as_deployed(
    tmp_path: Path, cache: Path
) -> None:
    repo = _flux_repo(tmp_path)
    finding = finding_for("C-0013", "Pod", "shop-worker-ping", "shop")
    plan = _plan(repo, cache, finding)
    assert plan.change_sets == () and plan.unfixable == ()
    assert plan.already_compliant == (finding,)
    (note,) = plan.notes
    assert "Pod shop/shop-worker-ping is a Helm test hook" in note
    assert "HelmRelease worker" in note and "spec.test.enable: true" in note


def test_chart_tests_a_release_runs_are_fixed_like_any_pod(tmp_path: Path, cache: Path) -> None:
    repo = _flux_repo(tmp_path, "  test:\n    enable: true\n")
    finding = finding_for("C-0013", "Pod", "shop-worker-ping", "shop")
    plan = _plan(repo, cache, finding)
    assert plan.already_compliant == () and plan.notes == ()
    # the test pod has no values key for it in a remote chart: a post-renderer patch
    assert plan.fixed_findings == (finding,)
    (change_set,) = plan.change_sets
    assert "postRenderers:" in change_set.files[0].after


def test_argo_cd_never_creates_chart_tests(tmp_path: Path, cache: Path) -> None:
    """Argo CD maps no Helm test hook to a sync phase; a test that is also an Argo CD hook
    runs."""
    repo = tmp_path / "cd-config"
    write(
        repo / "apps" / "worker.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: worker\n"
        "spec:\n  destination:\n    namespace: shop\n  source:\n"
        f"    repoURL: {SHOP}\n    chart: worker\n    targetRevision: 0.x\n"
        "    helm:\n      releaseName: shop\n",
    )
    finding = finding_for("C-0013", "Pod", "shop-worker-ping", "shop")
    plan = _plan(repo, cache, finding)
    assert plan.already_compliant == (finding,)
    assert "Application worker never creates" in plan.notes[0]
    ping = next(cache.rglob("ping.yaml"))
    ping.write_text(
        ping.read_text().replace(
            '"helm.sh/hook": test', '"helm.sh/hook": test\n    argocd.argoproj.io/hook: PostSync'
        ),
        encoding="utf-8",
    )
    plan = _plan(repo, cache, finding)
    assert plan.already_compliant == () and plan.notes == ()


def test_network_policy_beside_the_release_of_a_chart_without_a_switch(
    tmp_path: Path, cache: Path
) -> None:
    repo = _flux_repo(tmp_path)
    untouched = tree_digest(cache)
    plan = _plan(repo, cache, finding_for("C-0260", "Deployment", "shop-worker", "shop"))
    (change_set,) = plan.change_sets
    files = {f.path: f for f in change_set.files}
    assert set(files) == {
        "apps/worker/kustomization.yaml",
        "apps/worker/shop-worker-networkpolicy.yaml",
    }
    assert files["apps/worker/kustomization.yaml"].after.endswith(
        "  - release.yaml\n  - shop-worker-networkpolicy.yaml\n"
    )
    policy = files["apps/worker/shop-worker-networkpolicy.yaml"]
    assert policy.is_new
    assert "  name: shop-worker-networkpolicy\n  namespace: shop\n" in policy.after
    assert "  podSelector:\n    matchLabels:\n      app: shop-worker\n" in policy.after
    (fix,) = [f for f in change_set.fixes]
    assert isinstance(fix.location, Location)
    why = fix.location.why
    assert "a new NetworkPolicy beside HelmRelease worker (kustomize overlay apps/worker)" in why
    assert "listed in apps/worker/kustomization.yaml with the release" in why
    assert why.endswith("overlays that get apps/worker/shop-worker-networkpolicy.yaml: apps/worker")
    assert tree_digest(cache) == untouched
    tests = change_set_context(change_set, marker="m")["how_to_test"]
    assert tests["commands"] == [
        "kubectl kustomize apps/worker | kubectl apply --dry-run=server -f -"
    ]
    # merged, the next plan finds the pod selected
    for change in change_set.files:
        write(repo / change.path, change.after)
    again = _plan(repo, cache, finding_for("C-0260", "Deployment", "shop-worker", "shop"))
    assert again.change_sets == () and len(again.already_compliant) == 1


def test_the_scanned_path_names_the_overlay_that_built_the_release(tmp_path: Path) -> None:
    """Staging and production build one HelmRelease: a finding on staging's render that names
    no namespace (a scanner rendering the chart itself) is located in staging, not in the
    first overlay that renders the resource."""
    repo = tmp_path / "cd-config"
    shutil.copytree(HERE / "repos" / "flux-overlays", repo)
    shutil.copytree(HERE / "charts" / "worker", repo / "charts" / "worker")
    index = HelmIndex.build(repo)
    found = {}
    # checkov_before_after.py's render folder; Checkov's kustomize framework names the overlay
    paths = {
        "apps/staging": "_rendered/shop (kustomize overlay apps/staging)/deployment.yaml",
        "apps/production": "/apps/production",
    }
    for overlay, path in paths.items():
        finding = Finding(
            control_id="C-0034",
            resource=ResourceRef(kind="Deployment", name="shop-worker"),
            source={"path": path},
        )
        target = locate_helm(finding, repo, index)
        assert not isinstance(target, str), target
        found[overlay] = target.location.why
    assert "kustomize overlay apps/staging" in found["apps/staging"]
    assert "kustomize overlay apps/production" in found["apps/production"]


def test_no_new_manifest_where_it_would_not_be_deployed(tmp_path: Path, cache: Path) -> None:
    """A kustomization elsewhere lists the release file by file: a file beside it would not be
    deployed, so the finding stays unfixed with the reason."""
    repo = flux_repo(tmp_path, "0.3.0", "")
    write(
        repo / "apps" / "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - worker/repository.yaml\n  - worker/release.yaml\n",
    )
    plan = _plan(repo, cache, finding_for("C-0260", "Deployment", "shop-worker", "shop"))
    assert plan.change_sets == ()
    (item,) = plan.unfixable
    assert "cannot be added through chart values" in item.reason


def test_how_to_test_takes_inline_values_out_of_the_release(tmp_path: Path, cache: Path) -> None:
    """A HelmRelease is not a values file: the command renders its spec.values."""
    repo = _flux_repo(tmp_path, "  values:\n    serviceAccount:\n      automountToken: true\n")
    plan = _plan(repo, cache, finding_for("C-0034", "Deployment", "shop-worker", "shop"))
    (change_set,) = plan.change_sets
    assert [c.path for c in change_set.files] == ["apps/worker/release.yaml"]
    commands = change_set_context(change_set, marker="m")["how_to_test"]["commands"]
    assert commands == [
        "kubectl kustomize apps/worker | kubectl apply --dry-run=server -f -",
        f"helm template worker --repo {SHOP} -f <(yq '.spec.values' apps/worker/release.yaml)",
    ]
