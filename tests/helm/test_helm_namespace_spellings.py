"""One rendered resource named with and without its namespace by two scanners is one resource.

Trivy cannot tell a resource in "default" from one that sets no namespace, so its findings on a
chart rendered into the default namespace name none, while Checkov's name "default" for the
same document (a template that sets ``namespace: {{ .Release.Namespace }}``). Planned apart,
the merge request said "fixes for 2 workloads" and listed the Deployment twice, and the waiver
file got one entry per spelling; a waiver of the namespaced spelling alone must still cover the
finding that names none."""

from __future__ import annotations

from pathlib import Path

from bot.plan import Plan, build_plan
from bot.repo_config import RepoConfig, parse_repo_config
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef, SourceHint

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: {{ .Release.Namespace }}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
        - name: app
          image: registry.example.com/app:1.0.0
          securityContext: {{- toYaml .Values.securityContext | nindent 12 }}
"""


def _chart(root: Path) -> None:
    chart = root / "charts" / "app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: app\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("securityContext:\n  runAsNonRoot: true\n")
    (chart / "templates" / "deployment.yaml").write_text(DEPLOYMENT)


def _finding(scanner: str, scanner_id: str, namespace: str | None) -> Finding:
    return Finding(
        control_id="C-0016",
        scanner=scanner,
        scanner_ids=(scanner_id,),
        resource=ResourceRef(kind="Deployment", name="app", namespace=namespace),
        container="app",
        source=SourceHint(chart_path="charts/app"),
    )


def _plan(root: Path, config: RepoConfig | None = None) -> Plan:
    findings = (
        _finding("trivy", "KSV-0001", None),
        _finding("checkov", "CKV_K8S_20", "default"),
    )
    return build_plan(Report("trivy+checkov", "test", findings), root, config)


def test_a_resource_one_scanner_names_without_its_namespace_is_planned_once(
    tmp_path: Path,
) -> None:
    _chart(tmp_path)
    (change_set,) = _plan(tmp_path).change_sets
    assert [str(f.finding.resource) for f in change_set.fixes] == ["Deployment default/app"]
    assert "for Deployment default/app" in change_set.title, change_set.title
    assert {f.finding.resource.key for f in change_set.fixes} == {"Deployment/default/app"}
    ids = {i for f in change_set.fixes for i in f.finding.scanner_ids}
    assert ids == {"KSV-0001", "CKV_K8S_20"}


def test_a_waiver_naming_the_namespace_covers_the_finding_that_names_none(
    tmp_path: Path,
) -> None:
    """The waiver the bot writes names the namespace: the next scan's namespace-less finding
    of the same document is waived by it too, not planned again."""
    _chart(tmp_path)
    config = parse_repo_config(
        "ignore:\n"
        "  - control: C-0016\n"
        "    resource: Deployment/default/app\n"
        "    reason: the team's reason\n"
    )
    plan = _plan(tmp_path, config)
    assert not plan.change_sets
    assert plan.unfixable
    for refused in plan.unfixable:
        assert refused.category == "ignored", refused
        assert "the team's reason" in refused.reason
