"""The planner routes findings on rendered chart resources to the chart's values."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.plan import build_plan
from bot.sources.base import Report
from fixers.edits import load_documents
from fixers.model import Finding, ResourceRef, SourceHint
from tests.conftest import corpus_path


def test_helm_create_chart_fixed_through_values(tmp_path: Path) -> None:
    shutil.copytree(corpus_path("charts", "helm-create-demo"), tmp_path / "charts" / "demo")
    ref = ResourceRef(api_version="apps/v1", kind="Deployment", namespace="default", name="demo")
    findings = tuple(
        Finding(
            control_id=control,
            resource=ref,
            container="demo",
            source=SourceHint(chart_path="charts/demo"),
        )
        for control in ("C-0016", "C-0017", "C-0004", "C-0260")
    )
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    by_key = {cs.key: cs for cs in plan.change_sets}
    security = by_key["security-context/charts-demo"]
    assert [c.path for c in security.files] == ["charts/demo/values.yaml"]
    values = load_documents(security.files[0].after)[0]
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    # the commented-out examples under the key survive the edit
    assert "  # capabilities:\n  #   drop:" in security.files[0].after
    assert all(fix.location.why for fix in security.fixes)
    # a read-only root travels alone
    read_only = by_key["security-context/charts-demo--read-only-root-filesystem"]
    values = load_documents(read_only.files[0].after)[0]
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    resources = by_key["resources/charts-demo"]
    assert load_documents(resources.files[0].after)[0]["resources"]["limits"]["memory"]
    # the in-house chart has no NetworkPolicy switch: a new template behind a new one
    assert not [u for u in plan.unfixable if u.finding.control_id == "C-0260"]
    netpol = by_key["network-policy/charts-demo"]
    files = {c.path: c for c in netpol.files}
    template = files["charts/demo/templates/deployment-networkpolicy.yaml"]
    assert template.before is None
    assert template.after.startswith(
        "{{- if and .Values.networkPolicy .Values.networkPolicy.enabled"
    )
    # the selector follows the release (instance label), not the chart name (name label)
    assert "app.kubernetes.io/instance: {{ .Release.Name }}" in template.after
    assert "app.kubernetes.io/name: demo" in template.after
    assert load_documents(files["charts/demo/values.yaml"].after)[0]["networkPolicy"] == {
        "enabled": True
    }


def test_chart_summary_in_remedy_plan(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import print_chart_summary

    shutil.copytree(corpus_path("charts", "helm-create-demo"), tmp_path / "charts" / "demo")
    ref = ResourceRef(api_version="apps/v1", kind="Deployment", namespace="default", name="demo")
    findings = tuple(
        Finding(
            control_id=c,
            resource=ref,
            container="demo",
            source=SourceHint(chart_path="charts/demo"),
        )
        for c in ("C-0016", "C-0034", "C-0260")
    )
    print_chart_summary(build_plan(Report("kubescape", "test", findings), tmp_path))
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "charts/demo" in line)
    assert "C-0016" in row  # through values.yaml
    assert "C-0034" in row  # by exposing automountServiceAccountToken in the template
    assert "C-0260" in row  # by a new NetworkPolicy template behind networkPolicy.enabled


def test_a_policy_template_travels_only_in_its_own_change_set(tmp_path: Path) -> None:
    """The network-policy fix of a resource adds a template to the chart; the resource's other
    change sets (planned on the same target afterwards) carry neither that template nor its
    explanation: a merge request for image pulls must not add a NetworkPolicy."""
    import helm_python

    (tmp_path / "charts").mkdir()
    helm_python.Chart.create("demo", str(tmp_path / "charts"))
    ref = ResourceRef(api_version="apps/v1", kind="Deployment", namespace="default", name="demo")
    findings = tuple(
        Finding(control_id=control, resource=ref, source=SourceHint(chart_path="charts/demo"))
        for control in ("C-0260", "C-0030", "C-0034", "C-9004", "C-0016", "C-0004")
    )
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    by_key = {cs.key: cs for cs in plan.change_sets}
    policy = "charts/demo/templates/deployment-networkpolicy.yaml"
    assert policy in {c.path for c in by_key["network-policy/charts-demo"].files}
    others = [cs for key, cs in by_key.items() if not key.startswith("network-policy/")]
    assert len(others) >= 3
    for cs in others:
        assert policy not in {c.path for c in cs.files}, cs.key
        for fix in cs.fixes:
            assert "NetworkPolicy" not in fix.location.why, (cs.key, fix.location.why)
