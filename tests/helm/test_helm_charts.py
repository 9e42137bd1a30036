"""Chart copies: a fix's template changes, and copies limited to the templates a probe reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ChartError
from bot.locate.helm import Deployment, HelmIndex
from bot.locate.helm_charts import ChartCopies
from bot.locate.helm_render import SdkRenderer
from tests.helm.helpers import finding_for, locate

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "web.name" . }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
spec:
  template:
    spec:
      containers:
        - name: web
          image: web:1
"""


def _chart(root: Path) -> Path:
    chart = root / "web"
    (chart / "templates" / "tests").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hi\n")
    (chart / "templates" / "_helpers.tpl").write_text('{{- define "web.name" -}}web{{- end }}\n')
    (chart / "templates" / "deployment.yaml").write_text(DEPLOYMENT)
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n"
        "data:\n  greeting: {{ .Values.greeting }}\n"
    )
    (chart / "templates" / "service.yaml").write_text(
        '{{- fail "the service template is broken" }}\n'
    )
    (chart / "templates" / "tests" / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-test\n"
        "spec:\n  containers:\n    - name: t\n      image: busybox:1\n"
    )
    return chart


def test_a_limited_copy_keeps_named_templates_and_templates_included_by_path(
    tmp_path: Path,
) -> None:
    chart = _chart(tmp_path)
    copies = ChartCopies()
    limited = copies.limited(chart, ["web/templates/deployment.yaml"], small=True)
    assert limited is not None
    kept = sorted(p.relative_to(limited).as_posix() for p in limited.rglob("*") if p.is_file())
    assert kept == [
        "Chart.yaml",
        "templates/_helpers.tpl",
        "templates/configmap.yaml",
        "templates/deployment.yaml",
        "values.yaml",
    ]
    # The kept template renders as in the whole chart (whose broken service fails it).
    rendered = SdkRenderer().render(limited, {}, "r", "ns")
    assert "name: web" in rendered["web/templates/deployment.yaml"]
    assert "checksum/config: " in rendered["web/templates/deployment.yaml"]
    # Small charts render whole unless the copy serves many renders; unknown templates too.
    assert copies.limited(chart, ["web/templates/deployment.yaml"]) is None
    assert copies.limited(chart, ["web/templates/missing.yaml"], small=True) is None


def test_a_copy_with_changes_never_writes_through_to_the_chart(tmp_path: Path) -> None:
    chart = _chart(tmp_path)
    copies = ChartCopies()
    assert copies.with_changes(chart, {}) == chart
    changed = copies.with_changes(chart, {"templates/service.yaml": "# fixed\n"})
    again = copies.with_changes(chart, {"templates/service.yaml": "# fixed\n"})
    assert changed == again != chart
    assert (changed / "templates" / "service.yaml").read_text() == "# fixed\n"
    assert "fail" in (chart / "templates" / "service.yaml").read_text()
    other = copies.with_changes(chart, {"templates/new.yaml": "# new\n"})
    assert "fail" in (other / "templates" / "service.yaml").read_text()
    assert (other / "templates" / "new.yaml").read_text() == "# new\n"


NETWORK_POLICY = """\
{{- if .Values.networkPolicy }}
# Proposed for Deployment web: it denies all traffic but the declared ports.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .Release.Name }}-web
spec:
  podSelector: {}
{{- end }}
"""


def test_a_copy_that_only_adds_a_template_no_other_sees_stands_for_its_chart(
    tmp_path: Path,
) -> None:
    chart = _chart(tmp_path)
    copies = ChartCopies()
    added = copies.with_changes(chart, {"templates/web-networkpolicy.yaml": NETWORK_POLICY})
    assert copies.unseen_by_others(added) == chart
    assert copies.unseen_by_others(chart) is None  # not a copy


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("templates/deployment.yaml", DEPLOYMENT.replace("web:1", "web:2")),  # an edit
        ("templates/_more.tpl", "# a partial\n"),
        ("templates/extra.yaml", '{{- define "web.more" -}}x{{- end }}\n'),
        ("templates/worker.yaml", "kind: Deployment\nmetadata:\n  name: w\n"),
        ("templates/any.yaml", "kind: {{ .Values.kind }}\nmetadata:\n  name: a\n"),
        ("templates/wrapped.yaml", '{{ include "web.name" . }}\nkind: ConfigMap\n'),
        ("templates/fromtext.yaml", "{{ tpl .Values.extra . }}\n"),
        ("templates/block.yaml", '{{ block "web.name" . }}other{{ end }}\nkind: ConfigMap\n'),
        ("templates/configmap-2.yaml", "kind: ConfigMap\n"),  # included by path below
        ("files/app.conf", "a = 1\n"),
        ("charts/sub/templates/cm.yaml", "kind: ConfigMap\n"),
    ],
)
def test_a_copy_whose_change_a_template_may_see_or_render_from_is_its_own(
    tmp_path: Path, path: str, text: str
) -> None:
    chart = _chart(tmp_path)
    (chart / "templates" / "deployment.yaml").write_text(
        DEPLOYMENT + '  # {{ include (print $.Template.BasePath "/configmap-2.yaml") . }}\n'
    )
    copies = ChartCopies()
    assert copies.unseen_by_others(copies.with_changes(chart, {path: text})) is None
    both = {path: text, "templates/web-networkpolicy.yaml": NETWORK_POLICY}
    assert copies.unseen_by_others(copies.with_changes(chart, both)) is None


def test_probes_of_a_copy_no_template_sees_the_change_of_are_seeded_by_the_charts(
    tmp_path: Path,
) -> None:
    chart = _chart(tmp_path)
    (chart / "templates" / "service.yaml").unlink()  # the failing one: let the chart render
    index = HelmIndex.build(tmp_path)
    (info,) = index.charts.values()
    dep = Deployment(info, "web", "default", ("web/values.yaml",))
    defaults = index.defaults(info, index.pristine(tmp_path))
    first = index.probes(dep, chart, {}, defaults)
    added = index.copies.with_changes(chart, {"templates/web-networkpolicy.yaml": NETWORK_POLICY})
    assert index.probes(dep, added, {"networkPolicy": True}, defaults).seed is first
    edited = index.copies.with_changes(chart, {"templates/configmap.yaml": "kind: ConfigMap\n"})
    assert index.probes(dep, edited, {}, defaults).seed is None


def _with_optional_subchart(root: Path) -> Path:
    """A chart whose vendored subchart ``extra`` renders only with ``extra.enabled``."""
    chart = root / "app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n"
        "  - name: extra\n    version: 0.1.0\n    condition: extra.enabled\n"
    )
    (chart / "values.yaml").write_text("extra:\n  enabled: false\n")
    sub = chart / "charts" / "extra"
    (sub / "templates").mkdir(parents=True)
    (sub / "Chart.yaml").write_text("apiVersion: v2\nname: extra\nversion: 0.1.0\n")
    for where, name in ((chart, "app"), (sub, "extra")):
        (where / "templates" / "deploy.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n"
            f"  template:\n    spec:\n      containers:\n        - name: {name}\n"
            f"          image: {name}:1\n"
        )
    return chart


def test_a_subchart_one_render_disables_renders_when_the_next_enables_it(tmp_path: Path) -> None:
    """Helm drops the subcharts a render's values disable from the loaded chart: the renderer
    loads it afresh, so one chart deployed twice (the subchart off, then on) renders both."""
    chart = _with_optional_subchart(tmp_path)
    renderer = SdkRenderer()
    off = renderer.render(chart, {}, "r", "ns")
    on = renderer.render(chart, {"extra": {"enabled": True}}, "r", "ns")
    again = renderer.render(chart, {}, "r", "ns")
    assert sorted(off) == sorted(again) == ["app/templates/deploy.yaml"]
    assert sorted(on) == ["app/charts/extra/templates/deploy.yaml", "app/templates/deploy.yaml"]


def test_a_subchart_one_deployment_enables_is_located_after_one_that_disables_it(
    tmp_path: Path,
) -> None:
    """One vendored chart, two Argo CD applications: staging leaves the subchart off,
    production turns it on. Production's subchart workload is found after staging's was
    rendered (the run's one render cache and renderer serve both)."""
    _with_optional_subchart(tmp_path / "charts")
    (tmp_path / "charts" / "app" / "values-prod.yaml").write_text("extra:\n  enabled: true\n")
    for env, files in (("staging", "[]"), ("prod", "[values-prod.yaml]")):
        (tmp_path / f"{env}.yaml").write_text(
            f"apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {env}\n"
            f"spec:\n  destination:\n    namespace: {env}\n  source:\n    path: charts/app\n"
            f"    helm:\n      valueFiles: {files}\n"
        )
    index = HelmIndex.build(tmp_path)
    staging = locate(tmp_path, finding_for("C-0017", "Deployment", "app", "staging"), index)
    assert staging.deployment.release == "staging"
    prod = locate(tmp_path, finding_for("C-0017", "Deployment", "extra", "prod"), index)
    assert prod.deployment.release == "prod"
    assert prod.doc.template == "app/charts/extra/templates/deploy.yaml"


@pytest.mark.parametrize("condition", ["extra.enabled", "extra.enabled,global.extra"])
def test_a_cached_chart_renders_every_values_as_a_freshly_loaded_one(
    tmp_path: Path, condition: str
) -> None:
    """Values after values, in every order that matters (off, on, a null deleting the
    default, a scalar over the mapping, a non-boolean, the second condition path): the
    renderer's output is always that of the chart loaded afresh for the render."""
    import helm_python

    chart = _with_optional_subchart(tmp_path)
    text = (chart / "Chart.yaml").read_text().replace("extra.enabled\n", f"{condition}\n")
    (chart / "Chart.yaml").write_text(text)
    sequence: list[dict[str, object]] = [
        {},
        {"other": 1},
        {"extra": {"enabled": True}},
        {},
        {"extra": None},
        {},
        {"extra": "off"},
        {},
        {"extra": {"enabled": "yes"}},
        {},
        {"global": {"extra": True}},
        {"extra": {"enabled": False}, "global": {"extra": True}},
        {},
    ]
    renderer = SdkRenderer()
    for values in sequence:
        fresh = helm_python.Chart.load(str(chart))
        try:
            expected = fresh.render(dict(values), name="r", namespace="ns")
        except helm_python.HelmError:
            expected = None
        finally:
            fresh.close()
        try:
            got: dict[str, str] | None = renderer.render(chart, values, "r", "ns")
        except ChartError:
            got = None
        assert got == expected, values
