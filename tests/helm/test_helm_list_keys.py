"""List values keys a template appends after the chart's own items (``extraVolumeMounts``):
found by probing, and a fix appends its item there, keeping the chart's and the files' items."""

from __future__ import annotations

from pathlib import Path

from tests.helm.helpers import finding_for, fix_and_verify, locate

POD = ("spec", "template", "spec")

_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  template:
    spec:
      containers:
        - name: store
          image: store:1
          securityContext: {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: /data
            {{- if .Values.extraVolumeMounts }}
              {{- toYaml .Values.extraVolumeMounts | nindent 12 }}
            {{- end }}
      volumes:
        - name: data
          emptyDir: {}
        {{- if .Values.extraVolumes }}
          {{- toYaml .Values.extraVolumes | nindent 8 }}
        {{- end }}
"""


def _chart(root: Path, values: str, sources: str = "") -> Path:
    chart = root / "store"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: store\nversion: 0.1.0\n{sources}", encoding="utf-8"
    )
    (chart / "values.yaml").write_text(values, encoding="utf-8")
    (chart / "templates" / "deployment.yaml").write_text(_DEPLOYMENT, encoding="utf-8")
    return chart


def _mounts(outcome_docs: list, name: str = "store") -> list[str]:
    for doc in outcome_docs:
        if doc.name == name and doc.kind == "Deployment":
            container = doc.document["spec"]["template"]["spec"]["containers"][0]
            return [m["name"] for m in container["volumeMounts"]]
    raise AssertionError(f"Deployment {name} not rendered")


def test_an_extra_list_key_feeds_the_rendered_list(tmp_path: Path) -> None:
    _chart(
        tmp_path,
        "securityContext:\n  readOnlyRootFilesystem: false\nextraVolumeMounts: []\nextraVolumes: []\n",
    )
    target = locate(tmp_path, finding_for("C-0017", "Deployment", "store", None, "store"))
    container = target.view.containers[0]
    assert container.path("volumeMounts") == ("extraVolumeMounts",)
    assert target.view.path("volumes") == ("extraVolumes",)


def test_read_only_root_appends_tmp_after_the_charts_own_mounts(tmp_path: Path) -> None:
    _chart(
        tmp_path,
        "securityContext:\n  readOnlyRootFilesystem: false\nextraVolumeMounts: []\nextraVolumes: []\n",
    )
    outcome = fix_and_verify(tmp_path, finding_for("C-0017", "Deployment", "store", None, "store"))
    assert _mounts(outcome.before) == ["data"]
    assert _mounts(outcome.after) == ["data", "tmp"]
    removed, added = outcome.diffs()["store/values.yaml"]
    assert "extraVolumeMounts: []" in removed and "  - name: tmp" in added


def test_an_override_file_gets_the_whole_list_it_replaces(tmp_path: Path) -> None:
    """A vendored chart deployed with its own values file: the override of a list replaces
    the default, so it carries the chart's extra mount along with the new one."""
    _chart(
        tmp_path / "charts",
        "securityContext:\n  readOnlyRootFilesystem: false\nextraVolumeMounts:\n  - name: cache\n    mountPath: /cache\n"
        "extraVolumes:\n  - name: cache\n    emptyDir: {}\n",
        "sources:\n  - https://github.com/example/store\n",
    )
    (tmp_path / "charts" / "store" / "values-prod.yaml").write_text(
        "securityContext:\n  readOnlyRootFilesystem: false\n"
    )
    (tmp_path / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: store\n"
        "spec:\n  destination:\n    namespace: data\n  source:\n    path: charts/store\n"
        "    helm:\n      valueFiles: [values-prod.yaml]\n",
        encoding="utf-8",
    )
    finding = finding_for("C-0017", "Deployment", "store", "data", "charts/store")
    outcome = fix_and_verify(tmp_path, finding)
    assert _mounts(outcome.after) == ["data", "cache", "tmp"]
    assert list(outcome.diffs()) == ["charts/store/values-prod.yaml"]
    again = outcome.overlay.read("charts/store/values-prod.yaml") or ""
    assert again.count("name: cache") == 2 and again.count("name: tmp") == 2
