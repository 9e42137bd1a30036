"""Rendered templates are split into manifests where Helm splits them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.locate.helm_render import helm_documents, parse_rendered
from bot.plan import build_plan
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef, SourceHint


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("---# the web deployment\nkind: Deployment\n", ["Deployment"]),
        ("kind: Service\n---# second\nkind: Deployment\n", ["Service", "Deployment"]),
        ("---\n---\nkind: ConfigMap\n---\n", ["ConfigMap"]),
        ("--- \nkind: Secret\n...\n", ["Secret"]),
        ("kind: ConfigMap\ndata:\n  a: |\n    ---\n    kept\n", ["ConfigMap"]),
        ("", []),
    ],
    ids=[
        "comment-on-marker",
        "second-document",
        "empty-documents",
        "end-marker",
        "indented",
        "empty",
    ],
)
def test_documents_split_as_helm_splits_them(text: str, kinds: list[str]) -> None:
    assert [d["kind"] for d in helm_documents(text) if d] == kinds


def test_an_indented_marker_in_a_block_scalar_stays_its_text() -> None:
    """Helm also trims each manifest: a block scalar that ends the template loses its last
    line break, as deployed."""
    (doc,) = helm_documents("kind: ConfigMap\ndata:\n  a: |\n    ---\n    kept\n")
    assert doc["data"]["a"] == "---\nkept"


def test_a_chart_whose_template_comments_its_marker_is_fixed(tmp_path: Path) -> None:
    """cert-manager's templates start documents with ``---# comment``: Helm and Trivy read
    them, so the bot must too (it called the chart invalid and fixed nothing)."""
    chart = tmp_path / "charts" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("resources: {}\n")
    (chart / "templates" / "deployment.yaml").write_text(
        "---# the web deployment\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        "  name: web\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n"
        "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
        "        - name: web\n          image: nginx:1.27\n"
        "          resources: {{- toYaml .Values.resources | nindent 12 }}\n"
    )
    rendered = {
        "web/templates/deployment.yaml": (chart / "templates" / "deployment.yaml").read_text()
    }
    assert [
        d.kind for d in parse_rendered({k: v.split("resources:")[0] for k, v in rendered.items()})
    ] == ["Deployment"]
    finding = Finding(
        control_id="C-0271",
        resource=ResourceRef(kind="Deployment", name="web", namespace="default"),
        source=SourceHint(chart_path="charts/web"),
    )
    plan = build_plan(Report("kubescape", "test", (finding,)), tmp_path)
    assert not plan.unfixable, plan.unfixable
    (change_set,) = plan.change_sets
    assert [f.path for f in change_set.files] == ["charts/web/values.yaml"]
