"""What a values edit changes besides the fields its fix names: a container key the chart
reads only under another key's switch (minio's ``makeUserJob``), a switch that also renders
the chart's user ids (refused: a user change travels alone), a key two containers share
(both named in the merge request)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.errors import ChartError
from bot.locate.base import FileOverlay
from fixers.model import Fixed, Set
from fixers.registry import fixer_for, run_fixer
from tests.helm.helpers import CTX, finding_for, fix_and_verify, locate

POD = ("spec", "template", "spec")

_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-post-job
spec:
  template:
    spec:
      restartPolicy: OnFailure
      {{- if .Values.postJob.securityContext.enabled }}
      securityContext: {{ omit .Values.postJob.securityContext "enabled" | toYaml | nindent 8 }}
      {{- end }}
      containers:
        - name: make-user
          image: mc:1
          {{- if .Values.makeUserJob.securityContext.enabled }}
          {{- with .Values.makeUserJob.containerSecurityContext }}
          securityContext: {{ toYaml . | nindent 12 }}
          {{- end }}
          {{- end }}
          resources: {{- toYaml .Values.makeUserJob.resources | nindent 12 }}
"""

_VALUES = """\
postJob:
  securityContext:
    enabled: false
    runAsUser: 1000
    fsGroup: 1000
makeUserJob:
  securityContext:
    enabled: false
    runAsUser: 1000
  resources: {}
"""

_RELOADER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  template:
    spec:
      initContainers:
        - name: reload-init
          image: reload:1
          resources: {{- toYaml .Values.reload.resources | nindent 12 }}
      containers:
        - name: app
          image: app:1
          resources:
            limits: {cpu: 500m, memory: 256Mi}
            requests: {cpu: 100m, memory: 128Mi}
        - name: reload
          image: reload:1
          resources: {{- toYaml .Values.reload.resources | nindent 12 }}
"""


def _chart(root: Path, name: str, values: str, template: str) -> None:
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(values)
    (chart / "templates" / "workload.yaml").write_text(template)


def test_a_container_key_read_under_a_siblings_switch_is_found(tmp_path: Path) -> None:
    _chart(tmp_path, "jobs", _VALUES, _JOB)
    finding = finding_for("C-0016", "Job", "jobs-post-job", None, "jobs")
    target = locate(tmp_path, finding)
    path = target.view.containers[0].path("securityContext", "allowPrivilegeEscalation")
    assert path == ("makeUserJob", "containerSecurityContext", "allowPrivilegeEscalation")
    assert target.view.prerequisites([Set(path, False)]) == (
        Set(("makeUserJob", "securityContext", "enabled"), True),
    )
    outcome = fix_and_verify(tmp_path, finding)
    assert outcome.rendered_changes() == {
        (
            "Job/jobs-post-job",
            (*POD, "containers", 0, "securityContext", "allowPrivilegeEscalation"),
        )
    }
    assert (
        "its existing switch makeUserJob.securityContext.enabled is on: it is turned on"
        in outcome.target.location.why
    )


def test_a_switch_that_also_sets_user_ids_is_refused_and_named(tmp_path: Path) -> None:
    """The pod securityContext's switch renders the chart's runAsUser and fsGroup 1000 too:
    a seccomp-profile fix may not carry them unnamed."""
    _chart(tmp_path, "jobs", _VALUES, _JOB)
    finding = finding_for("C-0211", "Job", "jobs-post-job", None, "jobs")
    target = locate(tmp_path, finding)
    fixer = fixer_for("C-0211")
    assert fixer is not None
    result = run_fixer(fixer, target.view, finding, CTX)
    assert isinstance(result, Fixed), result
    edits = (*target.view.prerequisites(result.edits), *result.edits)
    with pytest.raises(ChartError) as refused:
        target.write(edits, FileOverlay(tmp_path))
    assert str(refused.value).startswith(
        "turning on postJob.securityContext.enabled also changes Job jobs-post-job: "
        "securityContext.fsGroup 1000, securityContext.runAsUser 1000, which changes the user "
        "or group it runs as"
    )


def test_a_key_two_containers_share_is_named_for_both(tmp_path: Path) -> None:
    _chart(tmp_path, "reloader", "reload:\n  resources: {}\n", _RELOADER)
    finding = finding_for("C-0004", "Deployment", "reloader", None, "reloader")
    finding = dataclasses.replace(finding, container="reload-init")
    outcome = fix_and_verify(tmp_path, finding)
    changed = {path[3:5] for _, path in outcome.rendered_changes()}
    assert changed == {("initContainers", 0), ("containers", 1)}
    assert (
        "the same values also change Deployment reloader: container reload: "
        "resources.limits.memory 256Mi" in outcome.target.location.why
    )


_PAIR = """\
{{- range $role := list "primary" "replica" }}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $.Release.Name }}-{{ $role }}
spec:
  template:
    spec:
      initContainers:
        - name: perms
          image: shell:1
          securityContext: {{- toYaml $.Values.perms.securityContext | nindent 12 }}
      containers:
        - name: db
          image: db:1
          securityContext:
            readOnlyRootFilesystem: true
{{- end }}
"""


def test_a_post_renderer_patch_must_reach_every_workload_the_values_change(
    tmp_path: Path,
) -> None:
    """One values key hardens the init container of both StatefulSets; the /tmp emptyDir the
    chart has no key for would be patched into the primary only: refused, not half-done."""
    _chart(tmp_path / "charts", "pair", "perms:\n  securityContext:\n    runAsUser: 0\n", _PAIR)
    (tmp_path / "charts" / "pair" / "Chart.yaml").write_text(
        "apiVersion: v2\nname: pair\nversion: 0.1.0\nsources: [https://github.com/example/pair]\n"
    )
    (tmp_path / "release.yaml").write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: cache\n"
        "  namespace: shop\nspec:\n  releaseName: cache\n  chart:\n    spec:\n"
        "      chart: ./charts/pair\n      sourceRef:\n        kind: GitRepository\n"
        "        name: flux-system\n  values:\n    replicas: 1\n"
    )
    finding = dataclasses.replace(
        finding_for("C-0017", "StatefulSet", "cache-primary", "shop", "charts/pair"),
        container="perms",
    )
    target = locate(tmp_path, finding)
    fixer = fixer_for("C-0017")
    assert fixer is not None
    result = run_fixer(fixer, target.view, finding, CTX)
    assert isinstance(result, Fixed), result
    with pytest.raises(ChartError) as refused:
        target.write(
            (*target.view.prerequisites(result.edits), *result.edits), FileOverlay(tmp_path)
        )
    assert str(refused.value) == (
        "the values edit also changes StatefulSet cache-replica: container perms: "
        "securityContext.readOnlyRootFilesystem True, which the post-renderer patch of "
        "StatefulSet cache-primary does not reach"
    )
