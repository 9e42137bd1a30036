"""A chart's own NetworkPolicy switch is turned on only when what it renders is safe, and the
merge request says what that policy allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.plan import Plan, build_plan
from bot.sources.base import Report
from fixers.model import Finding, ResourceRef, SourceHint

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      serviceAccountName: app
      containers:
        - name: app
          image: registry.example.com/app:1.0.0
          ports: [{containerPort: 8080}]
"""

POLICY = """\
{{- if .Values.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: app
spec:
  podSelector: %s
  policyTypes: [Ingress, Egress]
  ingress: %s
  egress: %s
{{- end }}
"""

BINDING = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: app
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: app}
subjects: [{kind: ServiceAccount, name: app, namespace: "{{ .Release.Namespace }}"}]
"""


OPEN_INGRESS = "[{ports: [{port: 8080}]}]"
DNS = "[{ports: [{port: 53, protocol: UDP}]}]"


def _plan(
    root: Path,
    selector: str,
    egress: str,
    binding: bool = False,
    ingress: str = OPEN_INGRESS,
    extra: dict[str, str] | None = None,
) -> Plan:
    chart = root / "charts" / "app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: app\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("networkPolicy:\n  enabled: false\n")
    (chart / "templates" / "deployment.yaml").write_text(DEPLOYMENT)
    (chart / "templates" / "networkpolicy.yaml").write_text(POLICY % (selector, ingress, egress))
    if binding:
        (chart / "templates" / "rolebinding.yaml").write_text(BINDING)
    for name, text in (extra or {}).items():
        (chart / "templates" / name).write_text(text)
    finding = Finding(
        control_id="C-0260",
        resource=ResourceRef(kind="Deployment", name="app", namespace="default"),
        source=SourceHint(chart_path="charts/app"),
    )
    return build_plan(Report("kubescape", "test", (finding,)), root)


def test_a_switch_whose_policy_is_safe_is_turned_on_and_described(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "{matchLabels: {app: app}}", DNS)
    (change_set,) = plan.change_sets
    (values,) = change_set.files
    assert "enabled: true" in values.after
    (fix,) = change_set.fixes
    why = fix.location.why
    assert "networkPolicy.enabled is true: the existing switch is turned on" in why
    assert "app: ingress only from any source on 8080/TCP; egress only to anywhere on 53/UDP" in why
    # The values comment and the notes speak of the chart's policy, not one of kube-remedy's.
    assert "Turned on by kube-remedy for Deployment app: chart app's own NetworkPolicies" in (
        values.after
    )
    assert "DNS" not in values.after and "-networkpolicy" not in values.after
    assert fix.notes == (
        "no NetworkPolicy of kube-remedy's: chart app's own switch networkPolicy.enabled is "
        "turned on, and the chart's policies decide the traffic",
        "chart app's NetworkPolicy app: ingress only from any source on 8080/TCP; egress only "
        "to anywhere on 53/UDP",
        "the policy is enforced only when the cluster's CNI supports NetworkPolicy",
    )
    assert not fix.values_used


@pytest.mark.parametrize("selector", ["{}", "{matchLabels: {}}"])
def test_a_switch_whose_policy_selects_the_whole_namespace_is_left_alone(
    tmp_path: Path, selector: str
) -> None:
    plan = _plan(tmp_path, selector, "[{}]")
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "selects every pod of namespace default" in refused.reason, refused.reason


def test_a_switch_that_cuts_an_api_caller_off_is_left_alone(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "{matchLabels: {app: app}}", "[]", binding=True)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "bound to call the Kubernetes API" in refused.reason, refused.reason
    # an egress rule that allows everything keeps the API reachable
    other = tmp_path / "other"
    assert _plan(other, "{matchLabels: {app: app}}", "[{}]", binding=True).change_sets


SELF_ONLY = "[{from: [{podSelector: {matchLabels: {app: app}}}], ports: [{port: 8080}]}]"


def test_a_switch_that_admits_a_server_only_its_own_pods_is_left_alone(tmp_path: Path) -> None:
    """The chart's policy admits ingress only from the app's own pods (keycloakx with no
    extraFrom): clients outside the chart would lose it. A rule admitting a namespace too
    keeps it reachable: the switch is turned on, each rule described."""
    plan = _plan(tmp_path, "{matchLabels: {app: app}}", DNS, ingress=SELF_ONLY)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "admits ingress to Deployment app (8080/TCP) only from the pods it selects" in (
        refused.reason
    )
    assert "ingress only from its own pods on 8080/TCP" in refused.reason
    wider = SELF_ONLY.replace("}}}]", "}}}, {namespaceSelector: {matchLabels: {edge: 'yes'}}}]")
    (change_set,) = _plan(
        tmp_path / "wider", "{matchLabels: {app: app}}", DNS, ingress=wider
    ).change_sets
    (fix,) = change_set.fixes
    assert (
        "ingress only from its own pods or any pod of namespaces labelled edge=yes on 8080/TCP"
        in fix.location.why
    )


def test_a_switch_that_admits_only_clients_labelled_as_no_pod_is_left_alone(
    tmp_path: Path,
) -> None:
    """zookeeper with allowExternal false admits its port only from its own pods and pods
    labelled zk-client=true: every existing client would need that label first."""
    labelled = SELF_ONLY.replace("}}}]", "}}}, {podSelector: {matchLabels: {zk-client: 'true'}}}]")
    plan = _plan(tmp_path, "{matchLabels: {app: app}}", DNS, ingress=labelled)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "only from its own pods and pods labelled zk-client=true" in refused.reason, (
        refused.reason
    )


SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  type: %s
  selector: {app: app}
  ports: [{port: 443, targetPort: 8080}]
"""

WEBHOOK = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: app
webhooks:
  - name: app.example.com
    clientConfig:
      service: {name: app, namespace: "{{ .Release.Namespace }}", path: /validate}
"""

ANY_POD = "[{from: [{namespaceSelector: {}}], ports: [{port: 8080}]}]"


@pytest.mark.parametrize(
    ("extra", "cut_off"),
    [
        (
            {"service.yaml": SERVICE % "LoadBalancer"},
            "clients outside the cluster through Service app (type LoadBalancer) on port 8080",
        ),
        (
            {"service.yaml": SERVICE % "NodePort"},
            "clients outside the cluster through Service app (type NodePort) on port 8080",
        ),
        (
            {"service.yaml": SERVICE % "ClusterIP", "webhook.yaml": WEBHOOK},
            "the Kubernetes API server through Service app (ValidatingWebhookConfiguration "
            "app) on port 8080",
        ),
    ],
    ids=["load-balancer", "node-port", "admission-webhook"],
)
def test_a_switch_that_admits_only_pods_to_a_pod_reached_from_outside_is_left_alone(
    tmp_path: Path, extra: dict[str, str], cut_off: str
) -> None:
    """vault's server policy admits 8200 from every pod of every namespace (namespaceSelector:
    {}); with ui.serviceType LoadBalancer its clients outside the cluster are not pods, nor is
    the API server calling an admission webhook or an APIService: the policy would cut them
    off. A rule that admits any source (or an ipBlock) on that port keeps them: turned on."""
    plan = _plan(tmp_path, "{matchLabels: {app: app}}", DNS, ingress=ANY_POD, extra=extra)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "only from pods (ingress only from any pod of namespaces (any) on 8080/TCP)" in (
        refused.reason
    )
    assert cut_off in refused.reason, refused.reason
    open_too = ANY_POD[:-1] + ", {from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 8080}]}]"
    assert _plan(
        tmp_path / "open", "{matchLabels: {app: app}}", DNS, ingress=open_too, extra=extra
    ).change_sets
    # a Service only pods reach: the namespace-wide rule is enough
    assert _plan(
        tmp_path / "cluster-ip",
        "{matchLabels: {app: app}}",
        DNS,
        ingress=ANY_POD,
        extra={"service.yaml": SERVICE % "ClusterIP"},
    ).change_sets


@pytest.mark.parametrize(
    "egress",
    [
        "[{ports: [{port: 9000}]}]",
        "[{to: [{podSelector: {matchLabels: {app: dns}}}], ports: [{port: 53, protocol: UDP}]}]",
        "[]",
    ],
    ids=["other-ports-only", "port-53-in-own-namespace-only", "all-denied"],
)
def test_a_switch_whose_policy_cuts_dns_is_left_alone(tmp_path: Path, egress: str) -> None:
    """minio's post-job policy allows egress only to 9000/9001: the job calls the server by
    its Service name and could not resolve it."""
    plan = _plan(tmp_path, "{matchLabels: {app: app}}", egress)
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "without allowing DNS (port 53)" in refused.reason, refused.reason


def test_a_switch_whose_comment_says_why_it_is_off_is_left_alone(tmp_path: Path) -> None:
    """``enabled: false  # disabled while migrating to Cilium`` is the team's reason: the
    switch is not turned on under a comment it would make false."""
    values = tmp_path / "charts" / "app" / "values.yaml"
    assert _plan(tmp_path, "{matchLabels: {app: app}}", DNS).change_sets  # without the comment
    values.write_text("networkPolicy:\n  enabled: false  # disabled while migrating to Cilium\n")
    plan = build_plan(
        Report(
            "kubescape",
            "test",
            (
                Finding(
                    control_id="C-0260",
                    resource=ResourceRef(kind="Deployment", name="app", namespace="default"),
                    source=SourceHint(chart_path="charts/app"),
                ),
            ),
        ),
        tmp_path,
    )
    assert not plan.change_sets
    (refused,) = plan.unfixable
    assert "whose comment ('disabled while migrating to Cilium') says why" in refused.reason, (
        refused.reason
    )
