"""The Helm locator behind the planner: several resources of one chart, several charts."""

from __future__ import annotations

from pathlib import Path

from bot.plan import build_plan
from bot.sources.base import Report
from tests.helm.helpers import finding_for

FIXTURES = Path(__file__).parent / "charts"


def test_plan_fixes_two_resources_of_one_chart_through_values() -> None:
    findings = (
        finding_for("C-0004", "StatefulSet", "shop-postgresql", None, "api"),
        finding_for("C-0016", "Deployment", "shop-api", None, "api"),
        finding_for("C-0016", "Deployment", "shop-worker", "shop-prod"),
    )
    plan = build_plan(Report("kubescape", "test", findings), FIXTURES)
    planned = {
        (f.finding.resource.name, f.finding.control_id): f.location.path
        for cs in plan.change_sets
        for f in cs.fixes
    }
    assert planned == {
        ("shop-api", "C-0016"): "api/values.yaml",
        ("shop-worker", "C-0016"): "worker/values-prod.yaml",
    }
    files = {c.path for cs in plan.change_sets for c in cs.files}
    assert files == {
        "api/values.yaml",
        "api/templates/deployment.yaml",
        "worker/values-prod.yaml",
    }
    # a PostgreSQL subchart gets a sizing recommendation, never the generic default
    (database,) = plan.unfixable
    assert database.finding.resource.name == "shop-postgresql"
    assert "runs PostgreSQL; recommendation" in database.reason
