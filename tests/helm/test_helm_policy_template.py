"""An in-house chart with no NetworkPolicy switch: a new template per workload behind one."""

from __future__ import annotations

from pathlib import Path

from bot.locate.base import FileOverlay
from bot.locate.helm import HelmIndex
from bot.plan import build_plan
from bot.safe_load import load_yaml
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef
from fixers.view import policies_selecting

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-%(name)s
spec:
  selector:
    matchLabels:
      app: %(name)s
      release: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: %(name)s
        release: {{ .Release.Name }}
        chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"
    spec:
      containers:
        - name: %(name)s
          image: "registry.example.com/%(name)s:1.0"
          ports:
            - containerPort: 8080
"""


def _chart(root: Path, values: str = "replicaCount: 1\n") -> None:
    chart = root / "charts" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(values)
    for name in ("api", "ui"):
        (chart / "templates" / f"{name}.yaml").write_text(DEPLOYMENT % {"name": name})


def _finding(name: str) -> Finding:
    ref = ResourceRef(api_version="apps/v1", kind="Deployment", namespace=None, name=name)
    return Finding(control_id="C-0260", resource=ref)


def test_one_switch_and_a_template_per_workload_following_the_release(tmp_path: Path) -> None:
    _chart(tmp_path)
    findings = (_finding("web-api"), _finding("web-ui"))
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    assert not plan.unfixable, [u.reason for u in plan.unfixable]
    files = {c.path: c for cs in plan.change_sets for c in cs.files}
    assert set(files) == {
        "charts/web/values.yaml",
        "charts/web/templates/api-networkpolicy.yaml",
        "charts/web/templates/ui-networkpolicy.yaml",
    }
    values = load_yaml(files["charts/web/values.yaml"].after, "values")
    assert values == {"replicaCount": 1, "networkPolicy": {"enabled": True}}
    api = files["charts/web/templates/api-networkpolicy.yaml"].after
    assert "name: {{ .Release.Name }}-api-networkpolicy" in api
    assert "release: {{ .Release.Name }}" in api and "app: api" in api
    assert "chart:" not in api  # the controller's selector, not the version-bearing labels
    # Deployed under another release, each policy selects its own workload's pods only.
    overlay = FileOverlay(tmp_path)
    for change in files.values():
        overlay.write(change.path, change.after)
    index = HelmIndex.build(tmp_path)
    chart_dir = index.chart_dir_for(index.charts["charts/web"], overlay)
    # (the chart copy holds the changed templates; values.yaml changes are given as values)
    docs = index.cache.docs(chart_dir, values, "other", "team")
    policies = [
        {**d.document, "metadata": {**d.document["metadata"], "namespace": "team"}}
        for d in docs
        if d.kind == "NetworkPolicy"
    ]
    for doc in docs:
        if doc.kind == "Deployment":
            labels = doc.document["spec"]["template"]["metadata"]["labels"]
            selecting = policies_selecting(policies, labels, "team")
            assert selecting == [f"{doc.name}-networkpolicy"]
    # Switched off, the chart renders no policy.
    off = index.cache.docs(chart_dir, {"networkPolicy": {"enabled": False}}, "other", "team")
    assert not [d for d in off if d.kind == "NetworkPolicy"]


def test_a_chart_key_named_network_policy_is_never_reused(tmp_path: Path) -> None:
    _chart(tmp_path, "networkPolicy:\n  ingressFrom: []\n")
    plan = build_plan(Report("kubescape", "test", (_finding("web-api"),)), tmp_path)
    (item,) = plan.unfixable
    assert "has no switch that renders one" in item.reason
    assert not plan.change_sets
