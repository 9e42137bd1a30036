"""Template analysis: exposing a values key in an in-house template, reading .Values references."""

from __future__ import annotations

import pytest

from bot.locate.helm_templates import Exposure, expose, values_references

TEMPLATE = """\
spec:
  template:
    spec:
      containers:
        - name: app
          image: app:1
          securityContext:
            runAsUser: 1000
        - name: sidecar
          image: side:1
"""


def test_expose_container_key_in_helm_create_style() -> None:
    out = expose(TEMPLATE, Exposure("t.yaml", "sidecarResources", "resources", 1))
    assert out.splitlines()[9:13] == [
        "          {{- with .Values.sidecarResources }}",
        "          resources:",
        "            {{- toYaml . | nindent 12 }}",
        "          {{- end }}",
    ]
    # Everything else is untouched.
    assert out.replace("\n".join(out.splitlines()[9:13]) + "\n", "") == TEMPLATE


def test_hard_coded_field_is_refused() -> None:
    with pytest.raises(ValueError, match="hard-codes securityContext of container #0"):
        expose(TEMPLATE, Exposure("t.yaml", "appSecurityContext", "securityContext", 0))


def test_container_generated_by_a_loop_is_refused() -> None:
    looped = "spec:\n  containers:\n    {{- range .Values.containers }}\n    - name: x\n"
    with pytest.raises(ValueError, match="not a literal item"):
        expose(looped, Exposure("t.yaml", "k", "resources", 1))


def test_values_references() -> None:
    text = "{{ toYaml .Values.a.b | nindent 2 }} {{- with .Values.c }}{{ .Values.a.b }}"
    assert values_references(text) == [("a", "b"), ("c",)]
