"""The in-house fixture repository `repos/shop`, planned as deployed by its Argo CD Applications."""

from __future__ import annotations

from pathlib import Path

from bot.plan import build_plan
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef
from tests.helm.helpers import finding_for

REPO = Path(__file__).parent / "repos" / "shop"


def _plan(*findings):  # type: ignore[no-untyped-def]
    return build_plan(Report("checkov", "test", tuple(findings)), REPO)


def _files(plan) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """path -> the files' texts after each change set (one MR each), joined."""
    out: dict[str, str] = {}
    for cs in plan.change_sets:
        for change in cs.files:
            out[change.path] = out.get(change.path, "") + change.after
    return out


def test_existing_switches_and_the_key_the_template_reads() -> None:
    # A scanner that rendered the chart itself (a file scan) names its own namespace and
    # release: hints, not blockers.
    plan = _plan(
        finding_for("C-0017", "Deployment", "shop-api", "default", "."),
        finding_for("C-0260", "Deployment", "shop-api", "default", "."),
        finding_for("C-0211", "Deployment", "shop-frontend", "shop-prod"),
    )
    files = _files(plan)
    values = files["charts/shop/values.yaml"]
    assert "readOnlyRootFileSystem: true" in values  # the spelling the template reads
    assert "create: true" in values  # networkPolicies.create switched on, no new manifest
    assert "enable: true" in values  # seccompProfile.enable switched on
    whys = " ".join(f.location.why for cs in plan.change_sets for f in cs.fixes)
    assert "environments changed: shop-prod (shop-prod), shop-staging (shop-staging)" in whys
    assert not [u for u in plan.unfixable if u.finding.control_id in ("C-0017", "C-0260")]


def test_one_key_exposed_in_every_template_that_needs_it() -> None:
    plan = _plan(
        *(
            finding_for("C-0034", "Deployment", f"shop-{c}", "shop-prod")
            for c in ("api", "frontend", "worker")
        )
    )
    files = _files(plan)
    for component in ("api", "frontend", "worker"):
        assert (
            ".Values.automountServiceAccountToken"
            in files[f"charts/shop/templates/{component}.yaml"]
        )
    assert plan.unfixable == ()


def test_vendored_chart_is_overridden_in_its_application() -> None:
    plan = _plan(finding_for("C-0016", "StatefulSet", "cache-cache", "shop-cache"))
    files = _files(plan)
    assert set(files) == {"apps/cache.yaml"}
    assert "allowPrivilegeEscalation: false" in files["apps/cache.yaml"]


def test_a_cluster_finding_in_another_namespace_or_container_is_not_this_repository() -> None:
    """Exact matching holds for charts too: the namespace the deployment gives the resource,
    and a container the rendered resource has."""
    elsewhere = finding_for("C-0017", "Deployment", "shop-api", "payments")
    ghost = Finding(
        control_id="C-0017",
        resource=ResourceRef(kind="Deployment", name="shop-api", namespace="shop-prod"),
        container="php-redis",
    )
    plan = _plan(elsewhere, ghost)
    assert plan.change_sets == ()
    reasons = {u.finding.resource.namespace: u for u in plan.unfixable}
    assert {u.category for u in plan.unfixable} == {"not-in-repo"}
    assert "not in this repository" in reasons["payments"].reason
    assert "in namespace shop-prod by Application" in reasons["payments"].reason
    assert "not in payments" in reasons["payments"].reason
    assert "has no container 'php-redis'; containers: api" in reasons["shop-prod"].reason


def test_default_namespace_is_compliant_as_deployed() -> None:
    # The scan rendered without a namespace; every Application deploys to a namespace of its own.
    plan = _plan(
        finding_for("C-0061", "Deployment", "shop-api", "default", "."),
        finding_for("C-0061", "StatefulSet", "cache-cache", None),
    )
    assert sorted(f.resource.name for f in plan.already_compliant) == ["cache-cache", "shop-api"]
    assert plan.unfixable == ()
    assert plan.change_sets == ()


def test_default_namespace_of_an_undeployed_chart_still_needs_a_person(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(REPO / "charts", tmp_path / "charts")  # no Application deploys it
    plan = build_plan(
        Report("checkov", "test", (finding_for("C-0061", "Deployment", "shop-api", "default"),)),
        tmp_path,
    )
    assert plan.already_compliant == ()
    assert [u.category for u in plan.unfixable] == ["needs-human"]
