"""A new NetworkPolicy must not select another workload's pods: its deny-by-default rules
would cut that workload's traffic, whose owners never asked for it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.plan import Plan, build_plan
from bot.sources.base import Report
from fixers.edits import load_documents
from fixers.model import Finding, ResourceRef, SourceHint
from fixers.rules._egress import named_egress
from fixers.view import (
    ManifestPodView,
    Pods,
    ServicePorts,
    bound_service_accounts,
    other_pods_selected,
    persistent_mounts,
)
from tests.conftest import corpus_path


def _deployment(name: str, labels: dict[str, str], namespace: str | None = None) -> str:
    meta = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    label_lines = "".join(f"        {k}: {v}\n" for k, v in labels.items())
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        + meta
        + "spec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n"
        "      labels:\n" + label_lines + "    spec:\n      containers:\n"
        f"        - name: {name}\n          image: nginx:1.27\n"
        "          ports:\n            - containerPort: 8080\n"
    )


def _policy_finding(name: str, namespace: str | None = None) -> Finding:
    return Finding(
        control_id="C-0260",
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", name=name, namespace=namespace
        ),
    )


def test_a_policy_that_would_select_another_workloads_pods_is_declined(tmp_path: Path) -> None:
    """``web``'s pods are labelled app=web; so are ``web-canary``'s (with track=canary too).
    A policy for web would select the canary's pods as well: declined, naming them. The
    canary's own labels select only its pods: its policy is proposed."""
    (tmp_path / "web.yaml").write_text(_deployment("web", {"app": "web"}))
    (tmp_path / "canary.yaml").write_text(
        _deployment("web-canary", {"app": "web", "track": "canary"})
    )
    findings = (_policy_finding("web"), _policy_finding("web-canary"))
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    (refused,) = [u for u in plan.unfixable if u.finding.resource.name == "web"]
    assert "Deployment/web-canary" in refused.reason
    assert refused.category == "needs-human"
    (policy,) = [cs for cs in plan.change_sets if cs.key.startswith("network-policy/")]
    document = load_documents(policy.files[0].after)[0]
    assert document["spec"]["podSelector"] == {"matchLabels": {"app": "web", "track": "canary"}}


def test_workloads_in_other_namespaces_are_not_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(_deployment("web", {"app": "web"}, "shop"))
    (tmp_path / "other.yaml").write_text(_deployment("web", {"app": "web"}, "blog"))
    plan = build_plan(Report("kubescape", "test", (_policy_finding("web", "shop"),)), tmp_path)
    assert [cs.key for cs in plan.change_sets if cs.key.startswith("network-policy/")]
    assert not plan.unfixable


def test_a_chart_test_pod_sharing_the_apps_labels_gets_no_policy(tmp_path: Path) -> None:
    """``helm create``'s test pod carries the chart's full labels, as the Deployment's pods
    do: a policy for the test pod (ingress closed, egress DNS only) would cut the app's
    traffic. The Deployment's own policy may select the test pod: a test runs for a moment
    under ``helm test`` and is no workload."""
    import helm_python

    (tmp_path / "charts").mkdir()
    helm_python.Chart.create("demo", str(tmp_path / "charts"))
    source = SourceHint(chart_path="charts/demo")
    findings = (
        Finding(
            control_id="C-0260",
            resource=ResourceRef(kind="Pod", name="demo-test-connection", namespace="default"),
            source=source,
        ),
        Finding(
            control_id="C-0260",
            resource=ResourceRef(kind="Deployment", name="demo", namespace="default"),
            source=source,
        ),
    )
    test_pod, deployment = findings
    plan = build_plan(Report("kubescape", "test", (test_pod,)), tmp_path)
    (refused,) = plan.unfixable
    assert "Deployment/demo" in refused.reason
    assert not plan.change_sets
    plan = build_plan(Report("kubescape", "test", (deployment,)), tmp_path)
    (policy,) = plan.change_sets
    assert "charts/demo/templates/deployment-networkpolicy.yaml" in {c.path for c in policy.files}
    # Planned together, the Deployment's policy selects the test pod as well: one change set.
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    (policy,) = plan.change_sets
    assert {f.finding.resource.kind for f in policy.fixes} == {"Deployment", "Pod"}


def test_other_pods_selected() -> None:
    web = Pods.of(
        {
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}}},
        }
    )
    job = Pods.of(
        {
            "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "default"},
            "spec": {
                "jobTemplate": {
                    "spec": {"template": {"metadata": {"labels": {"app": "web", "job": "1"}}}}
                }
            },
        }
    )
    assert web is not None and job is not None
    assert Pods.of({"kind": "Service", "metadata": {"name": "web"}}) is None
    assert job.labels == {("app", "web"), ("job", "1")}
    pods = [web, job]
    # A namespace left unset is the default one; the workload itself is never in the way.
    assert other_pods_selected({"app": "web"}, None, pods, "Deployment", "web") == [
        "CronJob/report"
    ]
    assert other_pods_selected({"app": "web"}, "default", pods, "CronJob", "report") == [
        "Deployment/web"
    ]
    assert other_pods_selected({"app": "web", "job": "1"}, None, pods, "Deployment", "x") == [
        "CronJob/report"
    ]
    assert other_pods_selected({"app": "web"}, "shop", pods, "Deployment", "x") == []
    # An empty selector selects every pod of the namespace.
    assert other_pods_selected({}, None, pods, "Pod", "x") == ["CronJob/report", "Deployment/web"]
    # matchExpressions narrow what matchLabels select (a chart's rendered policy).
    no_job = [{"key": "job", "operator": "DoesNotExist"}]
    assert other_pods_selected({}, None, pods, "Pod", "x", expressions=no_job) == ["Deployment/web"]
    only_jobs = [{"key": "job", "operator": "In", "values": ["1", "2"]}]
    assert other_pods_selected({"app": "web"}, None, pods, "Pod", "x", expressions=only_jobs) == [
        "CronJob/report"
    ]


def test_an_overlays_other_workloads_are_in_the_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kustomize overlay puts the base's two Deployments in its namespace: the one whose
    labels the other's pods share gets no policy there."""
    monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")
    base, overlay = tmp_path / "base", tmp_path / "overlays" / "staging"
    base.mkdir()
    overlay.mkdir(parents=True)
    (base / "web.yaml").write_text(_deployment("web", {"app": "web"}))
    (base / "canary.yaml").write_text(_deployment("web-canary", {"app": "web", "track": "b"}))
    (base / "kustomization.yaml").write_text("resources: [web.yaml, canary.yaml]\n")
    (overlay / "kustomization.yaml").write_text("namespace: staging\nresources: [../../base]\n")
    finding = Finding(
        control_id="C-0260",
        resource=ResourceRef(
            api_version="apps/v1", kind="Deployment", name="web", namespace="staging"
        ),
        source=SourceHint(path="overlays/staging"),
    )
    plan = build_plan(Report("checkov", "test", (finding,)), tmp_path)
    (refused,) = plan.unfixable
    assert "Deployment/web-canary" in refused.reason, refused.reason


BINDING = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: controller
  namespace: shop
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: controller}
subjects:
  - kind: ServiceAccount
    name: controller
"""


def _controller(automount: bool | None = None) -> str:
    text = _deployment("controller", {"app": "controller"}, "shop")
    extra = "      serviceAccountName: controller\n"
    if automount is not None:
        extra += f"      automountServiceAccountToken: {str(automount).lower()}\n"
    return text.replace("    spec:\n      containers:", "    spec:\n" + extra + "      containers:")


@pytest.mark.parametrize("automount", [None, False], ids=["token-mounted", "no-token"])
def test_a_pod_that_calls_the_api_keeps_its_egress_open(
    tmp_path: Path, automount: bool | None
) -> None:
    """A RoleBinding gives the pod's service account API access: its environment naming a
    Service is not all it calls, and the API server's addresses are not in the repository,
    so its policy restricts ingress only. A pod without the token cannot call the API: its
    egress goes to DNS and the Service."""
    controller = _controller(automount).replace(
        "          ports:\n",
        "          env:\n            - {name: API_URL, value: 'http://api:80'}\n          ports:\n",
    )
    (tmp_path / "controller.yaml").write_text(controller + "---\n" + BINDING)
    (tmp_path / "services.yaml").write_text(SERVICES)
    plan = build_plan(
        Report("kubescape", "test", (_policy_finding("controller", "shop"),)), tmp_path
    )
    assert not plan.unfixable
    (policy,) = plan.change_sets
    spec = load_documents(policy.files[0].after)[0]["spec"]
    (fix,) = policy.fixes
    if automount is None:
        assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
        assert any("service account controller is bound to RBAC roles" in n for n in fix.notes)
    else:
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert [rule["to"][0]["podSelector"] for rule in spec["egress"]] == [
            {"matchLabels": {"k8s-app": "kube-dns"}},
            {"matchLabels": {"app": "api"}},
        ]


def test_bound_service_accounts() -> None:
    binding = load_documents(BINDING)[0]
    assert bound_service_accounts(binding) == [("shop", "controller")]
    cluster = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "x"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "agent", "namespace": "monitoring"},
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "ops"},
        ],
    }
    assert bound_service_accounts(cluster) == [("monitoring", "agent")]
    assert bound_service_accounts({"kind": "Role", "metadata": {"name": "x"}}) == []


def _plan_bound_chart(root: Path, control: str) -> Plan:
    """The plan of ``control`` on a ``helm create`` chart whose RoleBinding gives the
    Deployment's service account API access."""
    import helm_python

    (root / "charts").mkdir()
    helm_python.Chart.create("demo", str(root / "charts"))
    (root / "charts" / "demo" / "templates" / "rolebinding.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n"
        '  name: {{ include "demo.fullname" . }}\n'
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}\n"
        "subjects:\n  - kind: ServiceAccount\n"
        '    name: {{ include "demo.serviceAccountName" . }}\n'
        "    namespace: {{ .Release.Namespace }}\n"
    )
    finding = Finding(
        control_id=control,
        resource=ResourceRef(kind="Deployment", name="demo", namespace="default"),
        source=SourceHint(chart_path="charts/demo"),
    )
    return build_plan(Report("kubescape", "test", (finding,)), root)


def test_a_chart_workload_that_calls_the_api_gets_an_ingress_policy_template(
    tmp_path: Path,
) -> None:
    """Nothing in the chart says what the Deployment calls (the API among others): its
    template restricts ingress only."""
    plan = _plan_bound_chart(tmp_path, "C-0260")
    assert not plan.unfixable
    (policy,) = plan.change_sets
    (template,) = [f for f in policy.files if f.path.endswith("-networkpolicy.yaml")]
    assert "  policyTypes:\n  - Ingress\n  ingress:\n" in template.after
    assert "Egress" not in template.after


SERVICES = """\
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
spec:
  selector: {app: api}
  ports:
    - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: cache
  namespace: data
spec:
  selector: {app: cache}
  ports:
    - {port: 6379}
---
apiVersion: v1
kind: Service
metadata:
  name: external-db
  namespace: shop
spec:
  type: ExternalName
  externalName: db.example.com
"""


@pytest.mark.parametrize("outside", [False, True], ids=["services-only", "also-outside"])
def test_egress_to_the_services_the_environment_names(tmp_path: Path, outside: bool) -> None:
    """A URL to a Service of the same namespace (by its full name, a named target port) and a
    host:port of another namespace's Service in a list become egress rules beside DNS. With
    a Service without a selector and an address outside the repository named too, what the
    pod calls is not all known: egress stays open, and the notes say which values."""
    env = (
        "          env:\n"
        "            - {name: API_URL, value: 'http://api.shop.svc.cluster.local:80/v1'}\n"
        "            - {name: CACHES, value: 'cache.data:6379'}\n"
        "            - {name: GREETING, value: 'hello: world'}\n"
    )
    if outside:
        env += (
            "            - {name: DB, value: 'postgres://u@external-db:5432/app'}\n"
            "            - {name: PAYMENTS, value: 'https://pay.example.com:443'}\n"
        )
    web = _deployment("web", {"app": "web"}, "shop").replace(
        "          ports:\n", env + "          ports:\n"
    )
    (tmp_path / "web.yaml").write_text(web)
    (tmp_path / "services.yaml").write_text(SERVICES)
    plan = build_plan(Report("kubescape", "test", (_policy_finding("web", "shop"),)), tmp_path)
    (policy,) = plan.change_sets
    spec = load_documents(policy.files[0].after)[0]["spec"]
    (fix,) = policy.fixes
    if outside:
        assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
        (said,) = [n for n in fix.notes if n.startswith("egress is not restricted")]
        assert "DB of web (external-db:5432)" in said
        assert "PAYMENTS of web (pay.example.com:443)" in said
        assert "egress is left open" in policy.files[0].after
        return
    assert spec["egress"][1:] == [
        {
            "to": [{"podSelector": {"matchLabels": {"app": "api"}}}],
            "ports": [{"protocol": "TCP", "port": "http"}],
        },
        {
            "to": [
                {
                    "podSelector": {"matchLabels": {"app": "cache"}},
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "data"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 6379}],
        },
    ]
    assert any("Service api (http/TCP), named by API_URL of web" in n for n in fix.notes)
    assert "the Services its environment names" in policy.files[0].after


def test_malformed_documents_are_no_neighbours_and_break_nothing() -> None:
    """Lists that are not lists, ports that are not numbers, subjects that are not mappings:
    read as nothing, never an error."""
    assert ServicePorts.of({"kind": "Service", "metadata": {"name": "s"}, "spec": 5}) is None
    odd = ServicePorts.of(
        {
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"selector": {"app": "s"}, "ports": 80},
        }
    )
    assert odd is not None and odd.ports == ()
    mixed = ServicePorts.of(
        {
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {
                "selector": {"app": "s"},
                "ports": ["80", {"port": True}, {"port": "http"}, {"port": 81, "targetPort": []}],
            },
        }
    )
    assert mixed is not None and mixed.ports == ((81, "TCP", 81),)
    assert bound_service_accounts({"kind": "RoleBinding", "subjects": "everyone"}) == []
    assert bound_service_accounts({"kind": "RoleBinding", "subjects": [1, None]}) == []
    assert Pods.of({"kind": "Deployment", "spec": {"template": {"metadata": {"labels": 7}}}})
    view = ManifestPodView.from_document(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "odd"},
            "spec": {
                "template": {
                    "spec": {
                        "volumes": 3,
                        "containers": [
                            {"name": "c", "image": "c:1", "volumeMounts": "data", "env": 4}
                        ],
                    }
                }
            },
        }
    )
    assert view is not None
    assert persistent_mounts(view, view.containers[0]) == []
    assert named_egress(view, ()) == ([], [])


def test_a_huge_environment_value_is_read_in_linear_time() -> None:
    """A megabyte of near-addresses (a hostile manifest) is scanned once, quickly."""
    value = (
        "a" * 200_000 + ":" + "9" * 200_000 + " " + "x://" + "@" * 300_000 + " " + "b:" * 100_000
    )
    document = load_documents(_deployment("web", {"app": "web"}))[0]
    container = document["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "HOSTILE", "value": value}]
    view = ManifestPodView.from_document(document)
    assert view is not None
    service = ServicePorts.of(load_documents(SERVICES)[0])
    assert service is not None
    start = time.perf_counter()
    assert named_egress(view, (service,)) == ([], [])
    assert time.perf_counter() - start < 5


def test_real_manifests_keep_their_workloads_whole(tmp_path: Path) -> None:
    """The corpus's online-boutique frontend may reach its backends (named in its env); the
    CSI hostpath plugin, whose sidecars call the API, keeps its egress open."""
    import shutil

    from bot.sources import load_report

    repo = tmp_path / "boutique"
    shutil.copytree(corpus_path("manifests", "kubescape-online-boutique"), repo)
    report = load_report(corpus_path("scans", "kubescape", "defectdojo__many_findings.json"))
    plan = build_plan(report, repo)
    (frontend,) = [cs for cs in plan.change_sets if cs.key == "network-policy/frontend"]
    egress = load_documents(frontend.files[0].after)[0]["spec"]["egress"]
    peers = {rule["to"][0]["podSelector"]["matchLabels"]["app"] for rule in egress[1:]}
    assert {"productcatalogservice", "cartservice", "checkoutservice"} <= peers

    csi = tmp_path / "csi"
    shutil.copytree(corpus_path("manifests", "csi-driver-host-path"), csi, symlinks=True)
    plugin = next(csi.rglob("csi-hostpath-plugin.yaml"))
    finding = Finding(
        control_id="C-0260",
        resource=ResourceRef(kind="StatefulSet", name="csi-hostpathplugin", namespace="default"),
        source=SourceHint(path=plugin.relative_to(csi).as_posix()),
    )
    plan = build_plan(Report("kubescape", "test", (finding,)), csi)
    (policy,) = plan.change_sets
    assert load_documents(policy.files[0].after)[0]["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize("control", ["C-0034", "C-0190"])
def test_a_pod_that_calls_the_api_keeps_its_token_with_a_waiver(
    tmp_path: Path, control: str
) -> None:
    """A RoleBinding of the repository gives the pod's service account API access: turning
    the token off would break its API calls, so a waiver is proposed instead. A pod whose
    account nothing binds gets the fix."""
    (tmp_path / "controller.yaml").write_text(_controller() + "---\n" + BINDING)
    (tmp_path / "web.yaml").write_text(_deployment("web", {"app": "web"}, "shop"))
    findings = tuple(
        Finding(
            control_id=control, resource=ResourceRef(kind="Deployment", name=n, namespace="shop")
        )
        for n in ("controller", "web")
    )
    plan = build_plan(Report("kubescape", "test", findings), tmp_path)
    (refused,) = plan.unfixable
    assert refused.finding.resource.name == "controller"
    assert refused.reason.startswith("not fixed, a waiver is proposed instead: the pod needs")
    assert "service account controller is bound to RBAC roles" in refused.reason
    keys = sorted(cs.key for cs in plan.change_sets)
    assert keys == ["service-account/web", "waivers/remedy-yaml"], keys


def test_a_chart_workload_bound_by_the_charts_rbac_keeps_its_token(tmp_path: Path) -> None:
    plan = _plan_bound_chart(tmp_path, "C-0034")
    (refused,) = plan.unfixable
    assert "the pod needs its service account token" in refused.reason, refused.reason
    assert [cs.key for cs in plan.change_sets] == ["waivers/remedy-yaml"]


def test_kubernetes_examples_keep_their_peers_and_backends(tmp_path: Path) -> None:
    """The corpus's Cassandra ring (members on the port named intra-node, seeds naming
    cassandra-0) may talk among its pods; the guestbook frontend, which calls redis-master
    by a name its environment does not hold, keeps its egress open."""
    import shutil

    repo = tmp_path / "examples"
    repo.mkdir()
    for name in (
        "databases_cassandra_cassandra-statefulset",
        "web_guestbook_all-in-one_guestbook-all-in-one",
    ):
        shutil.copy(corpus_path("manifests", "kubernetes-examples", f"{name}.yaml"), repo)
    findings = (
        Finding(control_id="C-0260", resource=ResourceRef(kind="StatefulSet", name="cassandra")),
        _policy_finding("frontend"),
    )
    plan = build_plan(Report("kubescape", "test", findings), repo)
    assert not plan.unfixable
    specs = {
        fix.finding.resource.name: load_documents(change.after)[0]["spec"]
        for cs in plan.change_sets
        for fix in cs.fixes
        for change in cs.files
        if change.path.endswith(f"{fix.finding.resource.name}-networkpolicy.yaml")
    }
    assert specs["cassandra"]["policyTypes"] == ["Ingress"]
    assert {"from": [{"podSelector": {"matchLabels": {"app": "cassandra"}}}]} in specs["cassandra"][
        "ingress"
    ]
    assert specs["frontend"]["policyTypes"] == ["Ingress"]
    assert "egress" not in specs["frontend"]


CLUSTER_BINDING = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: controller
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: controller}
subjects:
  - kind: ServiceAccount
    name: controller
    namespace: shop
"""


def _scanned_file(control: str, path: str) -> Finding:
    """A file scanner's finding: the namespace the file writes (none), the file scanned."""
    return Finding(
        control_id=control,
        resource=ResourceRef(kind="Deployment", name="controller"),
        source=SourceHint(path=path),
    )


def test_a_namespace_only_the_kustomization_gives_still_binds_the_pods_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Deployment names no namespace; its kustomization puts it in ``shop``, where a
    ClusterRoleBinding grants its account API access (the flagger base). A scan of the file
    says namespace none: the pod is still the bound one, so it keeps its token (a waiver),
    and its new policy is listed in the kustomization beside it."""
    monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")
    base = tmp_path / "base"
    base.mkdir()
    controller = _controller().replace("  namespace: shop\n", "", 1)
    (base / "deployment.yaml").write_text(controller)
    (base / "rbac.yaml").write_text(CLUSTER_BINDING)
    (base / "kustomization.yaml").write_text(
        "namespace: shop\nresources: [rbac.yaml, deployment.yaml]\n"
    )
    findings = tuple(_scanned_file(c, "scan/base/deployment.yaml") for c in ("C-0034", "C-0260"))
    plan = build_plan(Report("checkov", "test", findings), tmp_path)
    (refused,) = plan.unfixable
    assert refused.finding.control_id == "C-0034"
    assert "service account controller is bound to RBAC roles" in refused.reason
    (policy,) = [cs for cs in plan.change_sets if cs.key.startswith("network-policy/")]
    files = {f.path: f.after for f in policy.files}
    assert sorted(files) == ["base/controller-networkpolicy.yaml", "base/kustomization.yaml"]
    assert (
        "controller-networkpolicy.yaml"
        in load_documents(files["base/kustomization.yaml"])[0]["resources"]
    )


def test_a_namespace_only_argo_cd_gives_still_binds_the_pods_account(tmp_path: Path) -> None:
    """Plain manifests without a namespace, deployed by an Argo CD Application into ``shop``
    where a ClusterRoleBinding grants the pod's account API access: it keeps its token."""
    apps = tmp_path / "apps" / "controller"
    apps.mkdir(parents=True)
    (apps / "deployment.yaml").write_text(_controller().replace("  namespace: shop\n", "", 1))
    (tmp_path / "rbac.yaml").write_text(CLUSTER_BINDING)
    (tmp_path / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: controller}\n"
        "spec:\n  destination: {namespace: shop}\n  source: {path: apps/controller}\n"
    )
    finding = _scanned_file("C-0034", "apps/controller/deployment.yaml")
    plan = build_plan(Report("checkov", "test", (finding,)), tmp_path)
    (refused,) = plan.unfixable
    assert "service account controller is bound to RBAC roles" in refused.reason, refused.reason


def test_a_new_policy_is_listed_by_the_kustomization_listing_its_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kustomization the bot does not build (it pulls a remote base) lists the Deployment's
    file: the plain file is fixed, and the NetworkPolicy written beside it is listed there
    too, or it would never be deployed."""
    monkeypatch.setenv("REMEDY_KUSTOMIZE_ENGINE", "reader")
    (tmp_path / "web.yaml").write_text(_deployment("web", {"app": "web"}))
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n  - ./web.yaml\n  - https://github.com/example/base//deploy?ref=v1\n"
    )
    finding = Finding(
        control_id="C-0260",
        resource=ResourceRef(kind="Deployment", name="web"),
        source=SourceHint(path="web.yaml"),
    )
    plan = build_plan(Report("checkov", "test", (finding,)), tmp_path)
    assert not plan.unfixable, plan.unfixable
    (policy,) = plan.change_sets
    files = {f.path: f.after for f in policy.files}
    assert sorted(files) == ["kustomization.yaml", "web-networkpolicy.yaml"]
    assert load_documents(files["kustomization.yaml"])[0]["resources"][-1] == (
        "web-networkpolicy.yaml"
    )
