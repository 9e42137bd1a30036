"""A fix through chart values must not take away what the chart rendered before."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.plan import build_plan
from bot.sources.base import Report
from bot.verify import newly_failing
from fixers.model import Finding, ResourceRef, SourceHint

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: plugin
spec:
  selector: {matchLabels: {app: plugin}}
  template:
    metadata: {labels: {app: plugin}}
    spec:
      containers:
        - name: plugin
          image: registry.example.com/plugin:1.0.0
          securityContext:
            {{- if .Values.securityContext }}
            {{- toYaml .Values.securityContext | nindent 12 }}
            {{- else }}
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
            {{- end }}
"""


def _chart(root: Path, template: str = DEPLOYMENT) -> None:
    chart = root / "charts" / "plugin"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: plugin\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(
        "# the template renders safe defaults while empty\nsecurityContext: {}\n"
    )
    (chart / "templates" / "deployment.yaml").write_text(template)


def _finding(control: str) -> Finding:
    return Finding(
        control_id=control,
        resource=ResourceRef(kind="Deployment", name="plugin", namespace="default"),
        source=SourceHint(chart_path="charts/plugin"),
    )


def test_a_fix_under_a_key_the_chart_renders_defaults_for_keeps_them(tmp_path: Path) -> None:
    """The NVIDIA device plugin's and Vault's charts render allowPrivilegeEscalation: false
    and drop ALL only while their securityContext value is empty: a seccomp fix that fills it
    writes those two beside it, as the chart rendered them, and says why."""
    _chart(tmp_path)
    plan = build_plan(Report("kubescape", "test", (_finding("C-0210"),)), tmp_path)
    assert not plan.unfixable
    (change_set,) = plan.change_sets
    (values,) = change_set.files
    written = yaml.safe_load(values.after)["securityContext"]
    assert written == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    (fix,) = change_set.fixes
    assert "kept what the chart rendered there before" in fix.location.why
    assert "securityContext.allowPrivilegeEscalation" in fix.location.why


def test_a_fix_that_empties_the_charts_own_defaults_is_refused(tmp_path: Path) -> None:
    """A template that, once the key is set, renders only the part it picks from it cannot
    keep its defaults through values: the fix is refused with the controls it would break."""
    picks = DEPLOYMENT.replace(
        "{{- toYaml .Values.securityContext | nindent 12 }}",
        "seccompProfile: {{- toYaml .Values.securityContext.seccompProfile | nindent 14 }}",
    )
    _chart(tmp_path, picks)
    plan = build_plan(Report("kubescape", "test", (_finding("C-0210"),)), tmp_path)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert refused.category == "verify-failed", refused
    assert "would make C-0016" in refused.reason and "passed before" in refused.reason


def test_newly_failing_compares_the_object_before_and_after() -> None:
    def deployment(security: dict[str, object]) -> dict[str, object]:
        container = {"name": "a", "image": "a:1", "securityContext": security}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "a"},
            "spec": {"template": {"spec": {"containers": [container]}}},
        }

    safe = deployment({"allowPrivilegeEscalation": False})
    assert "C-0016" in newly_failing(safe, deployment({}))
    assert newly_failing(deployment({}), safe) == ()
    assert newly_failing(safe, safe) == ()
