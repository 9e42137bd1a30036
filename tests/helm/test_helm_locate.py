"""Helm locator: findings on rendered chart resources are fixed through values (or, for in-house
charts without a key, through a template that exposes one), then verified by re-rendering."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.errors import ChartError
from bot.locate.base import FileOverlay
from bot.locate.helm import HelmIndex, locate_helm
from bot.locate.helm_render import render_chart_findings
from bot.plan import build_plan
from bot.sources.base import Report
from fixers.model import Fixed, NeedsHuman, Set
from fixers.registry import fixer_for, run_fixer
from fixers.view import FieldNotExposed
from tests.conftest import corpus_path
from tests.helm.helpers import CTX, failing_controls, finding_for, fix_and_verify, locate

FIXTURES = Path(__file__).parent / "charts"
POD = ("spec", "template", "spec")


def _corpus_repo() -> Path:
    return corpus_path("charts")


@pytest.fixture(scope="module")
def corpus_index() -> HelmIndex:
    return HelmIndex.build(_corpus_repo())


@pytest.fixture(scope="module")
def fixture_index() -> HelmIndex:
    return HelmIndex.build(FIXTURES)


def _only_under(changes: set, resource: str, allowed: tuple[tuple, ...]) -> None:
    """Every rendered change is in ``resource`` and under one of the ``allowed`` paths."""
    for ident, path in changes:
        assert ident == resource, f"{ident} changed at {path}"
        assert any(path[: len(a)] == a for a in allowed), f"unexpected change at {path}"


def _stable(outcome) -> set:
    """Rendered changes on resources present before and after (test pods get random names)."""
    names = {f"{d.kind}/{d.name}" for d in outcome.before} & {
        f"{d.kind}/{d.name}" for d in outcome.after
    }
    return {c for c in outcome.rendered_changes() if c[0] in names}


# --------------------------------------------------------------------------- helm create


def test_helm_create_chart_created_at_test_time(tmp_path: Path) -> None:
    import helm_python

    helm_python.Chart.create("demo", str(tmp_path))
    docs = render_chart_findings(tmp_path / "demo", release="demo")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert "C-0016" in failing_controls(deployment)
    outcome = fix_and_verify(tmp_path, finding_for("C-0016", "Deployment", "demo"))
    ((path, (removed, added)),) = outcome.diffs().items()
    assert path == "demo/values.yaml"
    assert removed == ["securityContext: {}"]
    assert added == ["securityContext:", "  allowPrivilegeEscalation: false"]
    # helm create's commented hint lines under securityContext are kept.
    assert "  # capabilities:" in outcome.overlay.read("demo/values.yaml")
    _only_under(
        _stable(outcome),
        "Deployment/demo",
        ((*POD, "containers", 0, "securityContext", "allowPrivilegeEscalation"),),
    )


def _with_service_port(charts: Path, name: str, tmp_path: Path, port: int = 8080) -> Path:
    """A copy of ``charts`` whose chart ``name`` serves (and listens) on ``port``."""
    repo = tmp_path / "charts"
    shutil.copytree(charts / name, repo / name)
    values = repo / name / "values.yaml"
    text = values.read_text()
    assert "\n  port: 80\n" in text
    values.write_text(text.replace("\n  port: 80\n", f"\n  port: {port}\n", 1))
    return repo


def test_helm_create_nginx_on_port_80_keeps_root_with_a_waiver(corpus_index: HelmIndex) -> None:
    """helm create's nginx listens on port 80 as root and switches its workers to the nginx
    user: as user 10001 it could bind neither the port nor create its cache, so no fix."""
    name = "helm-create-demo"
    target = locate(_corpus_repo(), finding_for("C-0013", "Deployment", name, None, name))
    result = run_fixer(
        fixer_for("C-0013"), target.view, finding_for("C-0013", "Deployment", name), CTX
    )
    assert fixer_for("C-0013") is not None
    assert isinstance(result, NeedsHuman) and "listens on port 80" in result.reason, result


@pytest.mark.parametrize(
    ("control", "keys"),
    [
        ("C-0016", ["securityContext:", "  allowPrivilegeEscalation: false"]),
        ("C-0013", ["securityContext:", "  runAsNonRoot: true"]),
        ("C-0055", ["securityContext:", "  seccompProfile:"]),
        ("C-0004", ["resources:", "  limits:", "    memory: 256Mi"]),
        ("C-0050", ["resources:", "  limits:", "    cpu: 500m"]),
        ("C-0017", ["  readOnlyRootFilesystem: true", "volumes:", "volumeMounts:"]),
    ],
)
def test_helm_create_demo_controls(
    corpus_index: HelmIndex, control: str, keys: list[str], tmp_path: Path
) -> None:
    repo = _corpus_repo()
    name = "helm-create-demo"
    index: HelmIndex | None = corpus_index
    if control == "C-0013":  # nginx on port 80 keeps root (see the test below): use 8080
        repo = _with_service_port(repo, name, tmp_path)
        index = None
    docs = render_chart_findings(repo / name, release=name)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert control in failing_controls(deployment)
    outcome = fix_and_verify(repo, finding_for(control, "Deployment", name, None, name), index)
    diffs = outcome.diffs()
    assert list(diffs) == [f"{name}/values.yaml"]
    removed, added = diffs[f"{name}/values.yaml"]
    for key in keys:
        assert key in added
    # Only `key: {}` / `key: []` lines are rewritten into blocks; nothing else is removed.
    assert all(line.endswith(("{}", "[]")) for line in removed), removed
    field = "resources" if control in ("C-0004", "C-0050") else "securityContext"
    allowed = [(*POD, "containers", 0, field)]
    if control == "C-0017":
        allowed += [(*POD, "volumes"), (*POD, "containers", 0, "volumeMounts")]
    _only_under(_stable(outcome), f"Deployment/{name}", tuple(allowed))


def test_helm_create_demo_automount_exposed_in_template(corpus_index: HelmIndex) -> None:
    """helm create's serviceAccount.automount feeds the ServiceAccount, not the pod: the chart's
    own template gets a pod-level key (the chart lives in the repository)."""
    name = "helm-create-demo"
    finding = finding_for("C-0034", "Deployment", name, None, name)
    outcome = fix_and_verify(_corpus_repo(), finding, corpus_index)
    diffs = outcome.diffs()
    assert set(diffs) == {f"{name}/templates/deployment.yaml", f"{name}/values.yaml"}
    assert diffs[f"{name}/values.yaml"] == ([], ["automountServiceAccountToken: false"])
    assert outcome.target.location.kind == "helm-template"
    _only_under(_stable(outcome), f"Deployment/{name}", ((*POD, "automountServiceAccountToken"),))


def test_helm_create_test_pod_reads_the_existing_key(corpus_index: HelmIndex) -> None:
    """The chart's securityContext key feeds the Deployment; the test pod's template is made to
    read the same key instead of refusing because the key exists (it blocked itself)."""
    name = "helm-create-demo-test-connection"
    finding = finding_for("C-0016", "Pod", name, None, "helm-create-demo")
    target = locate(_corpus_repo(), finding, corpus_index)
    result = run_fixer(fixer_for("C-0016"), target.view, finding, CTX)
    assert isinstance(result, Fixed), result
    assert result.edits[0].path == ("securityContext", "allowPrivilegeEscalation")
    overlay = FileOverlay(_corpus_repo())
    target.write(result.edits, overlay)
    changed = {c.path: c.after for c in overlay.changes()}
    assert (
        "{{- with .Values.securityContext }}"
        in changed["helm-create-demo/templates/tests/test-connection.yaml"]
    )


# --------------------------------------------------------------------------- upstream charts


def test_grafana_pod_and_container_contexts(corpus_index: HelmIndex) -> None:
    finding = finding_for("C-0016", "Deployment", "grafana", None, "grafana")
    target = locate(_corpus_repo(), finding, corpus_index)
    container = target.view.containers[0]
    # The trap: grafana's top-level securityContext is the POD context.
    assert container.path("securityContext", "readOnlyRootFilesystem") == (
        "containerSecurityContext",
        "readOnlyRootFilesystem",
    )
    assert target.view.path("securityContext", "runAsNonRoot") == (
        "securityContext",
        "runAsNonRoot",
    )


@pytest.mark.parametrize(
    ("control", "added", "allowed"),
    [
        (
            "C-0034",
            ["automountServiceAccountToken: false"],
            ((*POD, "automountServiceAccountToken"),),
        ),
        (
            "C-0004",
            ["  limits:", "    memory: 256Mi"],
            # grafana adds GOMEMLIMIT (a resourceFieldRef) once a memory limit exists.
            ((*POD, "containers", 0, "resources"), (*POD, "containers", 0, "env")),
        ),
    ],
)
def test_grafana_controls(corpus_index: HelmIndex, control: str, added: list, allowed) -> None:
    repo = _corpus_repo()
    outcome = fix_and_verify(
        repo, finding_for(control, "Deployment", "grafana", None, "grafana"), corpus_index
    )
    (removed_lines, added_lines) = outcome.diffs()["grafana/values.yaml"]
    for line in added:
        assert line in added_lines
    assert len(removed_lines) <= 1
    _only_under(_stable(outcome), "Deployment/grafana", allowed)


def test_grafana_read_only_root_needs_upstream_key(corpus_index: HelmIndex) -> None:
    finding = finding_for("C-0017", "Deployment", "grafana", None, "grafana")
    target = locate(_corpus_repo(), finding, corpus_index)
    result = run_fixer(fixer_for("C-0017"), target.view, finding, CTX)
    assert isinstance(result, NeedsHuman)
    assert "maintained upstream (grafana)" in result.reason


def test_bitnami_redis_roles(corpus_index: HelmIndex) -> None:
    finding = finding_for("C-0016", "StatefulSet", "bitnami-redis-master", None, "bitnami-redis")
    target = locate(_corpus_repo(), finding, corpus_index)
    container = target.view.containers[0]
    assert container.path("securityContext", "allowPrivilegeEscalation") == (
        "master",
        "containerSecurityContext",
        "allowPrivilegeEscalation",
    )
    assert target.view.path("securityContext", "runAsNonRoot") == (
        "master",
        "podSecurityContext",
        "runAsNonRoot",
    )
    assert container.path("resources", "limits", "memory") == (
        "master",
        "resources",
        "limits",
        "memory",
    )


def test_bitnami_disabled_switch_is_a_prerequisite(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(_corpus_repo() / "bitnami-nginx", repo / "nginx")
    values = repo / "nginx" / "values.yaml"
    text = values.read_text(encoding="utf-8")
    marker = "containerSecurityContext:\n  enabled: true"
    assert marker in text
    values.write_text(text.replace(marker, "containerSecurityContext:\n  enabled: false"))
    finding = finding_for("C-0016", "Deployment", "nginx", None, "nginx")
    target = locate(repo, finding)
    edit = Set(target.view.containers[0].path("securityContext", "allowPrivilegeEscalation"), False)
    assert edit.path == ("containerSecurityContext", "allowPrivilegeEscalation")
    assert target.view.prerequisites([edit]) == (
        Set(("containerSecurityContext", "enabled"), True),
    )
    # The switch also renders the chart's runAsUser 1001 and read-only root: not hidden in a
    # privilege-escalation fix (see tests/helm/test_helm_collateral.py).
    overlay = FileOverlay(repo)
    with pytest.raises(ChartError) as refused:
        target.write((*target.view.prerequisites([edit]), edit), overlay)
    assert str(refused.value).startswith(
        "turning on containerSecurityContext.enabled also changes Deployment nginx: "
    )
    assert "securityContext.runAsUser 1001" in str(refused.value)


def test_argo_cd_component_resources(corpus_index: HelmIndex) -> None:
    finding = finding_for("C-0004", "Deployment", "argo-cd-argocd-server", None, "argo-cd")
    target = locate(_corpus_repo(), finding, corpus_index)
    assert target.view.containers[0].path("resources", "limits", "memory") == (
        "server",
        "resources",
        "limits",
        "memory",
    )


def test_trivy_flow_style_values(corpus_index: HelmIndex) -> None:
    repo = _corpus_repo()
    name = "trivy-helm-testchart"
    outcome = fix_and_verify(
        repo, finding_for("C-0016", "Deployment", name, None, name), corpus_index
    )
    removed, added = outcome.diffs()[f"{name}/values.yaml"]
    assert removed == []
    assert added == ['    "allowPrivilegeEscalation": false,']
    _only_under(
        _stable(outcome),
        f"Deployment/{name}",
        ((*POD, "containers", 0, "securityContext", "allowPrivilegeEscalation"),),
    )


def test_podinfo_env_file_precedence(tmp_path: Path) -> None:
    """With an ArgoCD app using values-prod.yaml, resources defined there are fixed there."""
    repo = tmp_path / "cd-config"
    shutil.copytree(_corpus_repo() / "podinfo", repo / "charts" / "podinfo")
    (repo / "apps").mkdir()
    (repo / "apps" / "podinfo.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: podinfo\n"
        "spec:\n  source:\n    path: charts/podinfo\n    helm:\n      valueFiles:\n"
        "        - values.yaml\n        - values-prod.yaml\n"
        "  destination:\n    namespace: prod\n"
    )
    prod = (repo / "charts/podinfo/values-prod.yaml").read_text(encoding="utf-8")
    finding = finding_for("C-0016", "Deployment", "podinfo", "prod")
    outcome = fix_and_verify(repo, finding)
    changed = outcome.diffs()
    # values-prod.yaml sets `securityContext`? Then it wins; otherwise the base holds the default.
    expected = (
        "charts/podinfo/values-prod.yaml"
        if "\nsecurityContext:" in prod
        else "charts/podinfo/values.yaml"
    )
    assert list(changed) == [expected]
    assert "allowPrivilegeEscalation: false" in "\n".join(changed[expected][1])
    assert outcome.target.location.path == expected
    assert "values" in outcome.target.location.why


# --------------------------------------------------------------------------- in-house fixtures


def test_inhouse_chart_gets_a_template_key(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0016", "Deployment", "shop-webapp", None, "webapp")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    diffs = outcome.diffs()
    assert set(diffs) == {"webapp/templates/deployment.yaml", "webapp/values.yaml"}
    template_added = diffs["webapp/templates/deployment.yaml"][1]
    assert "          {{- with .Values.webappSecurityContext }}" in template_added
    assert "            {{- toYaml . | nindent 12 }}" in template_added
    assert diffs["webapp/values.yaml"] == (
        [],
        [
            "webappSecurityContext:",
            "  allowPrivilegeEscalation: false",
            "logShipperSecurityContext:",
            "  allowPrivilegeEscalation: false",
        ],
    )
    assert outcome.target.location.kind == "helm-template"
    _only_under(
        _stable(outcome),
        "Deployment/shop-webapp",
        (
            (*POD, "containers", 0, "securityContext"),
            (*POD, "containers", 1, "securityContext"),
        ),
    )


def test_inhouse_resources_key(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0004", "Deployment", "shop-webapp", None, "webapp")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    values_added = outcome.diffs()["webapp/values.yaml"][1]
    assert values_added[:3] == ["webappResources:", "  limits:", "    memory: 256Mi"]


def test_argocd_app_env_file_wins(fixture_index: HelmIndex) -> None:
    """worker-prod's values-prod.yaml re-enables escalation: the fix goes there, not the base."""
    finding = finding_for("C-0016", "Deployment", "shop-worker", "shop-prod")
    target = locate(FIXTURES, finding, fixture_index)
    assert target.deployment.app is not None and target.deployment.app.name == "worker-prod"
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    assert outcome.diffs() == {
        "worker/values-prod.yaml": (
            ["  allowPrivilegeEscalation: true"],
            ["  allowPrivilegeEscalation: false"],
        )
    }
    assert "values-prod.yaml sets this key" in outcome.target.location.why


def test_argocd_app_base_fix_without_override(fixture_index: HelmIndex) -> None:
    """Limits are set nowhere: the base values.yaml gets them, commented example kept."""
    finding = finding_for("C-0004", "Deployment", "shop-worker", "shop-prod")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    assert list(outcome.diffs()) == ["worker/values.yaml"]
    text = outcome.overlay.read("worker/values.yaml") or ""
    assert "  # limits:" in text
    assert "    memory: 128Mi" in text


def test_scalar_values_key_via_helper(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0034", "Deployment", "shop-worker", "shop-prod")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    assert outcome.diffs() == {
        "worker/values.yaml": (["  automountToken: true"], ["  automountToken: false"])
    }


def test_inline_values_of_the_application_win(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "worker", repo / "worker")
    (repo / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: w\n"
        "spec:\n  source:\n    path: worker\n    helm:\n      releaseName: shop\n"
        "      valuesObject:\n        serviceAccount:\n          automountToken: true\n"
    )
    outcome = fix_and_verify(repo, finding_for("C-0034", "Deployment", "shop-worker"))
    assert outcome.diffs() == {
        "app.yaml": (["          automountToken: true"], ["          automountToken: false"])
    }


def test_subchart_values_under_dependency_key(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0004", "StatefulSet", "shop-postgresql", None, "api")
    target = locate(FIXTURES, finding, fixture_index)
    assert target.view.containers[0].path("resources", "limits", "memory") == (
        "postgresql",
        "primary",
        "resources",
        "limits",
        "memory",
    )
    # a database gets no generic limit; allowPrivilegeEscalation is written under the key too
    finding = finding_for("C-0016", "StatefulSet", "shop-postgresql", None, "api")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    assert list(outcome.diffs()) == ["api/values.yaml"]
    _only_under(
        _stable(outcome),
        "StatefulSet/shop-postgresql",
        ((*POD, "containers", 0, "securityContext"),),
    )


def test_vendored_subchart_field_without_key_is_unfixable(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0034", "StatefulSet", "shop-postgresql", None, "api")
    target = locate(FIXTURES, finding, fixture_index)
    with pytest.raises(FieldNotExposed, match="vendored third-party chart"):
        target.view.path("automountServiceAccountToken")


def test_template_that_no_longer_renders_is_reported(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0016", "Deployment", "shop-webapp", None, "webapp")
    target = locate(FIXTURES, finding, fixture_index)
    overlay = FileOverlay(FIXTURES)
    overlay.write("webapp/templates/deployment.yaml", "{{ .Values.nope.missing }}\n")
    reason = target.reread(overlay)
    assert isinstance(reason, str) and "no longer renders" in reason


def test_unknown_resource_gives_reason(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0016", "Deployment", "does-not-exist")
    reason = locate_helm(finding, FIXTURES, fixture_index)
    assert reason == "no chart in the repository renders Deployment does-not-exist"


def test_trivy_override_file_sets_root(tmp_path: Path) -> None:
    """The override values file sets runAsUser: 0; the fix lands in that file, which wins."""
    repo = tmp_path / "cd-config"
    shutil.copytree(_corpus_repo() / "trivy-helm-testchart", repo / "testchart")
    # listening on 8080: on port 80 as root it would keep root (a waiver, not this fix)
    template = repo / "testchart" / "templates" / "deployment.yaml"
    text = template.read_text()
    assert "containerPort: 80\n" in text
    template.write_text(text.replace("containerPort: 80\n", "containerPort: 8080\n"))
    shutil.copy(
        _corpus_repo() / "_overrides" / "trivy-helm-testchart__helm_values.yaml",
        repo / "testchart" / "values-overridden.yaml",
    )
    (repo / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: testchart\n"
        "spec:\n  sources:\n    - path: testchart\n      helm:\n        valueFiles:\n"
        "          - $values/testchart/values-overridden.yaml\n"
        "    - repoURL: https://gitlab.example.com/cd-config.git\n      ref: values\n"
        "  destination:\n    namespace: scan\n"
    )
    finding = finding_for("C-0013", "Deployment", "testchart", "scan")
    target = locate(repo, finding)
    assert target.deployment.value_files == (
        "testchart/values.yaml",
        "testchart/values-overridden.yaml",
    )
    outcome = fix_and_verify(repo, finding)
    diffs = outcome.diffs()
    assert list(diffs) == ["testchart/values-overridden.yaml"]
    assert diffs["testchart/values-overridden.yaml"][0] == ["  runAsUser: 0"]


def test_chart_that_does_not_render_gets_static_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "worker", repo / "worker")
    helpers = repo / "worker" / "templates" / "_helpers.tpl"
    helpers.write_text(
        helpers.read_text() + '\n{{- define "broken" -}}{{ fail "boom" }}{{- end }}\n'
    )
    deployment = repo / "worker" / "templates" / "deployment.yaml"
    deployment.write_text(deployment.read_text() + '{{ include "broken" . }}\n')
    reason = locate_helm(
        finding_for("C-0016", "Deployment", "shop-worker"), repo, HelmIndex.build(repo)
    )
    assert isinstance(reason, str)
    assert reason.startswith(
        "no chart renders Deployment shop-worker: chart worker does not render"
    )
    assert "boom" in reason
    assert "static analysis: worker/templates/deployment.yaml" in reason
    assert ".Values.serviceAccount.automountToken" in reason


def test_inhouse_pod_automount_exposed_with_haskey(fixture_index: HelmIndex) -> None:
    """`with` would drop `false`, so the scalar key is exposed with hasKey."""
    finding = finding_for("C-0034", "Deployment", "shop-webapp", None, "webapp")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    diffs = outcome.diffs()
    assert diffs["webapp/values.yaml"] == ([], ["automountServiceAccountToken: false"])
    assert diffs["webapp/templates/deployment.yaml"][1] == [
        '      {{- if hasKey .Values "automountServiceAccountToken" }}',
        "      automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}",
        "      {{- end }}",
    ]
    _only_under(
        _stable(outcome), "Deployment/shop-webapp", ((*POD, "automountServiceAccountToken"),)
    )


def test_inhouse_read_only_root_exposes_volumes(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0017", "Deployment", "shop-webapp", None, "webapp")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    values_added = outcome.diffs()["webapp/values.yaml"][1]
    for line in ("webappVolumeMounts:", "logShipperVolumeMounts:", "volumes:", "  - name: tmp"):
        assert line in values_added
    allowed = [(*POD, "volumes")]
    for index in (0, 1):
        allowed += [
            (*POD, "containers", index, "securityContext", "readOnlyRootFilesystem"),
            (*POD, "containers", index, "volumeMounts"),
        ]
    _only_under(_stable(outcome), "Deployment/shop-webapp", tuple(allowed))


def test_source_path_inside_a_chart_is_a_chart_hint(fixture_index: HelmIndex) -> None:
    from fixers.model import Finding, ResourceRef

    finding = Finding(
        control_id="C-0016",
        resource=ResourceRef(kind="Deployment", name="shop-webapp"),
        source={"path": "webapp/templates/deployment.yaml"},
    )
    target = locate(FIXTURES, finding, fixture_index)
    assert target.deployment.chart.path == "webapp"
    assert target.location.chart == "webapp"


def test_reread_view_answers_in_values_keys_across_fixes(fixture_index: HelmIndex) -> None:
    """The pipeline plans on `reread` views and stacks fixes in one overlay: after the first
    fix exposed a template key, the second plans through that key without a new exposure."""
    from fixers.model import AlreadyCompliant, Fixed

    overlay = FileOverlay(FIXTURES)
    first = finding_for("C-0016", "Deployment", "shop-webapp", None, "webapp")
    target = locate(FIXTURES, first, fixture_index)
    for finding in (first, finding_for("C-0013", "Deployment", "shop-webapp", None, "webapp")):
        view = target.reread(overlay)
        assert not isinstance(view, str), view
        fixer = fixer_for(finding.control_id)
        result = run_fixer(fixer, view, finding, CTX)
        assert isinstance(result, Fixed), result
        assert all(e.path[0] in ("webappSecurityContext", "logShipperSecurityContext")
                   for e in result.edits)  # fmt: skip
        target.write((*view.prerequisites(result.edits), *result.edits), overlay)
        after = target.reread(overlay)
        assert isinstance(run_fixer(fixer, after, finding, CTX), AlreadyCompliant)
    template = overlay.read("webapp/templates/deployment.yaml") or ""
    assert template.count("{{- with .Values.webappSecurityContext }}") == 1
    values = overlay.read("webapp/values.yaml") or ""
    assert "  allowPrivilegeEscalation: false\n  runAsNonRoot: true" in values


def test_exposure_is_explained(fixture_index: HelmIndex) -> None:
    finding = finding_for("C-0016", "Deployment", "shop-api", None, "api")
    outcome = fix_and_verify(FIXTURES, finding, fixture_index)
    why = outcome.target.location.why
    assert "api/values.yaml: no values file sets this key" in why
    assert "api/templates/deployment.yaml: chart api lives in this repository" in why
    assert ".Values.securityContext" in why


def test_podinfo_prod_limits_go_to_the_env_file(tmp_path: Path) -> None:
    repo = tmp_path / "cd-config"
    shutil.copytree(_corpus_repo() / "podinfo", repo / "podinfo")
    (repo / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: podinfo\n"
        "spec:\n  source:\n    path: podinfo\n    helm:\n      valueFiles: [values-prod.yaml]\n"
    )
    outcome = fix_and_verify(repo, finding_for("C-0050", "Deployment", "podinfo"))
    diffs = outcome.diffs()
    assert list(diffs) == ["podinfo/values-prod.yaml"]
    assert diffs["podinfo/values-prod.yaml"] == ([], ["    cpu: 200m"])
    assert "values-prod.yaml sets resources.limits (an override)" in outcome.target.location.why


def _worker_release(tmp_path: Path, spec_tail: str) -> Path:
    """cd-config with the worker chart, deployed by a Flux HelmRelease ending in ``spec_tail``."""
    repo = tmp_path / "cd-config"
    shutil.copytree(FIXTURES / "worker", repo / "charts" / "worker")
    release = repo / "clusters" / "prod" / "worker.yaml"
    release.parent.mkdir(parents=True)
    release.write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
        "metadata:\n  name: worker\n  namespace: shop\nspec:\n  releaseName: shop\n"
        "  chart:\n    spec:\n      chart: ./charts/worker\n"
        "      sourceRef: {kind: GitRepository, name: cd-config}\n" + spec_tail
    )
    return repo


def test_flux_helmrelease_inline_values_are_edited(tmp_path: Path) -> None:
    repo = _worker_release(
        tmp_path,
        "  values:\n    # the token is needed by nothing\n"
        "    serviceAccount:\n      automountToken: true\n",
    )
    outcome = fix_and_verify(repo, finding_for("C-0034", "Deployment", "shop-worker", "shop"))
    assert outcome.diffs() == {
        "clusters/prod/worker.yaml": (
            ["      automountToken: true"],
            ["      automountToken: false"],
        )
    }
    assert "inline values of HelmRelease worker" in outcome.target.location.why


def test_mapping_is_confirmed_by_rendering(tmp_path: Path) -> None:
    """A template that drops the key from the map: the probe finds the map, the confirming
    render shows the field never arrives, so the view declines instead of a no-op edit."""
    chart = tmp_path / "svc"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: svc\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("securityContext:\n  runAsUser: 1000\n")
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: svc\n"
        "          image: svc:1\n          securityContext:\n"
        '            {{- toYaml (omit .Values.securityContext "allowPrivilegeEscalation")'
        " | nindent 12 }}\n"
    )
    finding = finding_for("C-0016", "Deployment", "svc", None, "svc")
    target = locate(tmp_path, finding)
    container = target.view.containers[0]
    assert container.path("securityContext", "runAsNonRoot") == ("securityContext", "runAsNonRoot")
    with pytest.raises(FieldNotExposed, match="hard-codes securityContext"):
        container.path("securityContext", "allowPrivilegeEscalation")


def test_bitnami_redis_replicas_role(corpus_index: HelmIndex) -> None:
    finding = finding_for("C-0004", "StatefulSet", "bitnami-redis-replicas", None, "bitnami-redis")
    target = locate(_corpus_repo(), finding, corpus_index)
    assert target.view.containers[0].path("resources", "limits", "memory") == (
        "replica",
        "resources",
        "limits",
        "memory",
    )


def test_argo_cd_repo_server_resources_fixed(corpus_index: HelmIndex) -> None:
    name = "argo-cd-argocd-repo-server"
    outcome = fix_and_verify(
        _corpus_repo(), finding_for("C-0004", "Deployment", name, None, "argo-cd"), corpus_index
    )
    removed, added = outcome.diffs()["argo-cd/values.yaml"]
    # repoServer's container and its copyutil init container each have their own key.
    assert sorted(removed) == ["    resources: {}", "  resources: {}"]
    assert added.count("      memory: 256Mi") + added.count("        memory: 256Mi") == 2
    _only_under(
        _stable(outcome),
        f"Deployment/{name}",
        ((*POD, "containers", 0, "resources"), (*POD, "initContainers", 0, "resources")),
    )


def test_probes_leave_the_deployment_values_alone(tmp_path: Path) -> None:
    """Probing renders with marker keys on a copy: the user values stay as the files say."""
    repo = tmp_path / "cd-config"
    shutil.copytree(_corpus_repo() / "podinfo", repo / "podinfo")
    (repo / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: podinfo\n"
        "spec:\n  source:\n    path: podinfo\n    helm:\n      valueFiles: [values-prod.yaml]\n"
    )
    target = locate(repo, finding_for("C-0016", "Deployment", "podinfo"))
    view = target.view
    before = repr(view.mapping.user)
    view.containers[0].path("securityContext", "allowPrivilegeEscalation")
    view.containers[0].path("resources", "limits", "cpu")
    assert repr(view.mapping.user) == before
    assert "__kr_probe" not in before


def _agent_chart(root: Path) -> Path:
    chart = root / "agent"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: agent\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(
        "# the node's network, for the metrics port\nhostNetwork: true\n"
        "capabilities:\n  # extra capabilities\n  add: [SYS_ADMIN]\n"
        "tolerations:\n  - operator: Exists\n"
    )
    (chart / "templates" / "daemonset.yaml").write_text(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {{ .Release.Name }}\n"
        "spec:\n  template:\n    spec:\n      hostNetwork: {{ .Values.hostNetwork }}\n"
        "      containers:\n        - name: agent\n          image: agent:1\n"
        "          securityContext:\n            capabilities:\n"
        "              add: {{- toYaml .Values.capabilities.add | nindent 16 }}\n"
        "      tolerations: {{- toYaml .Values.tolerations | nindent 8 }}\n"
    )
    return chart


def test_a_key_the_template_prints_is_set_not_deleted(tmp_path: Path) -> None:
    """Deleting `hostNetwork` or `capabilities.add` would render them null (checked by
    rendering): the boolean is set false and the list set empty, comments stay in place."""
    _agent_chart(tmp_path)
    network = fix_and_verify(tmp_path, finding_for("C-0041", "DaemonSet", "agent", None, "agent"))
    assert network.diffs() == {"agent/values.yaml": (["hostNetwork: true"], ["hostNetwork: false"])}
    caps = fix_and_verify(tmp_path, finding_for("C-0046", "DaemonSet", "agent", None, "agent"))
    removed, added = caps.diffs()["agent/values.yaml"]
    assert removed == ["  add: [SYS_ADMIN]"] and added == ["  add: []"]


def test_a_test_pod_with_a_random_name_is_matched_by_its_template(corpus_index: HelmIndex) -> None:
    """podinfo's test pods end in `randAlphaNum 5`: the scanner's render named them differently."""
    finding = finding_for("C-0016", "Pod", "podinfo-grpc-test-4i7eg", "default", "podinfo")
    target = locate_helm(finding, _corpus_repo(), corpus_index)
    assert not isinstance(target, str), target
    assert target.location.path == "podinfo/templates/tests/grpc.yaml"
    other = finding_for("C-0016", "Pod", "podinfo-nothing-4i7eg", "default", "podinfo")
    assert isinstance(locate_helm(other, _corpus_repo(), corpus_index), str)


@pytest.mark.parametrize(
    ("source", "inline"),
    [("ConfigMap worker-values", "  values:\n    replicaCount: 2\n"), ("Secret worker-secret", "")],
    ids=["with-inline-values", "without"],
)
def test_flux_values_from_are_overridden_in_the_inline_values(
    tmp_path: Path, source: str, inline: str
) -> None:
    """A HelmRelease merging a ConfigMap or Secret (valuesFrom) the bot does not read: a fix in
    the chart's values.yaml could be overridden by it, so the fix goes to spec.values, which
    wins (created when the release has none)."""
    kind, name = source.split()
    repo = _worker_release(
        tmp_path, f"  valuesFrom:\n    - kind: {kind}\n      name: {name}\n" + inline
    )
    outcome = fix_and_verify(repo, finding_for("C-0034", "Deployment", "shop-worker", "shop"))
    assert list(outcome.diffs()) == ["clusters/prod/worker.yaml"]
    assert f"{source} (valuesFrom" in outcome.target.location.why


def test_a_chart_scanned_alone_is_its_deployment_and_the_mr_says_so(tmp_path: Path) -> None:
    """Trivy renders a chart with the chart's name as release and no namespace: its
    StatefulSet store is the Application's shop-store in namespace iam (the same template);
    the fix goes to the Application's values file and its why names the resource as deployed."""
    chart = tmp_path / "charts" / "store"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: store\nversion: 0.1.0\nsources: [https://github.com/example/store]\n"
    )
    (chart / "values.yaml").write_text("securityContext:\n  allowPrivilegeEscalation: true\n")
    (chart / "values-prod.yaml").write_text("replicas: 1\n")
    (chart / "templates" / "statefulset.yaml").write_text(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n"
        "  name: {{ if contains .Chart.Name .Release.Name }}{{ .Release.Name }}"
        "{{ else }}{{ .Release.Name }}-{{ .Chart.Name }}{{ end }}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: store\n"
        "          image: store:1\n"
        "          securityContext: {{- toYaml .Values.securityContext | nindent 12 }}\n"
    )
    (tmp_path / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: shop\n"
        "spec:\n  destination:\n    namespace: iam\n  source:\n    path: charts/store\n"
        "    helm:\n      valueFiles: [values-prod.yaml]\n"
    )
    finding = finding_for("C-0016", "StatefulSet", "store", None, "charts/store")
    outcome = fix_and_verify(tmp_path, finding)
    assert outcome.target.doc.name == "shop-store"
    assert list(outcome.diffs()) == ["charts/store/values-prod.yaml"]
    assert (
        "the scanner's StatefulSet store is StatefulSet shop-store in namespace iam as "
        "Application shop deploys it" in outcome.target.location.why
    )


# --------------------------------------------------------------------------- values.schema.json

STRICT_SCHEMA = """{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "image": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "repository": {"type": "string"},
        "tag": {"type": "string"},
        "pullPolicy": {"enum": [%s]}
      }
    },
    "resources": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "limits": {"$ref": "#/$defs/quantities"},
        "requests": {"$ref": "#/$defs/quantities"}
      }
    }
  },
  "$defs": {
    "quantities": {
      "type": "object",
      "additionalProperties": false,
      "properties": {"cpu": {"type": "string"}, "memory": {"type": "string"}}
    }
  }
}
"""


def _strict_chart(root: Path, policies: str = '"Always", "IfNotPresent", "Never"') -> Path:
    """A chart whose values.schema.json allows no unknown key and only ``policies`` as the
    image's pullPolicy (the opentelemetry-collector and alertmanager charts' shape)."""
    chart = root / "strict"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: strict\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(
        "image:\n  repository: registry.example.com/strict\n  tag: '1.0'\n"
        "  pullPolicy: IfNotPresent\nresources: {}\n"
    )
    (chart / "values.schema.json").write_text(STRICT_SCHEMA % policies)
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: strict\n"
        '          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"\n'
        "          imagePullPolicy: {{ .Values.image.pullPolicy }}\n"
        "          resources: {{- toYaml .Values.resources | nindent 12 }}\n"
    )
    return chart


@pytest.mark.parametrize(
    ("control", "key"),
    [("C-9004", "  pullPolicy: Always"), ("C-0050", "  limits:")],
    ids=["pull-policy-enum", "resources-closed"],
)
def test_a_values_schema_does_not_hide_the_keys_probes_find(
    tmp_path: Path, control: str, key: str
) -> None:
    """Probe markers are values no schema allows (an unknown key, a string outside an enum):
    probes render without the schema, so the keys are found; the fix is rendered with it."""
    _strict_chart(tmp_path)
    outcome = fix_and_verify(tmp_path, finding_for(control, "Deployment", "strict", None, "strict"))
    ((path, (_, added)),) = outcome.diffs().items()
    assert path == "strict/values.yaml"
    assert key in added
    assert (outcome.target.chart_dir / "values.schema.json").is_file()


def test_a_fix_the_values_schema_rejects_is_refused_with_its_reason(tmp_path: Path) -> None:
    """The schema allows no ``Always``: the probes find the key, the fix's own render is
    validated as the user's Helm validates it, and fails."""
    _strict_chart(tmp_path, '"IfNotPresent", "Never"')
    finding = finding_for("C-9004", "Deployment", "strict", None, "strict")
    plan = build_plan(Report("kubescape", "cluster", (finding,)), tmp_path)
    assert not plan.change_sets
    (unfixable,) = plan.unfixable
    assert "the chart no longer renders with the fix" in unfixable.reason
    assert "value must be one of 'IfNotPresent', 'Never'" in unfixable.reason
