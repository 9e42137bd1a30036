"""Helm probes that answer several questions per render: the answers are those of asking one
question per render, with fewer renders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.locate import helm, helm_render
from bot.locate.helm import ValuesMap
from fixers.view import FieldNotExposed
from tests.helm.helpers import finding_for, locate

POD = ("spec", "template", "spec")
FIELDS = (
    ("securityContext", "runAsNonRoot"),
    ("securityContext", "allowPrivilegeEscalation"),
    ("securityContext", "seccompProfile"),
    ("securityContext", "capabilities"),
    ("securityContext", "capabilities", "drop"),
    ("resources", "limits", "memory"),
    ("resources", "requests", "cpu"),
)


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A count of the chart renders made while the test runs."""
    count = [0]
    real = helm_render.SdkRenderer.render

    def counted(self: helm_render.SdkRenderer, *args: object) -> dict[str, str]:
        count[0] += 1
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(helm_render.SdkRenderer, "render", counted)
    yield count


def _chart(root: Path, name: str, values: str, pod: str) -> Path:
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(values)
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
        "spec:\n  template:\n    spec:\n" + pod
    )
    return chart


def _two_containers(root: Path, merged: bool = False) -> Path:
    """A pod whose two containers each have their own securityContext and resources keys;
    ``merged``: the sidecar's securityContext is the app's merged over its own."""
    sidecar_context = (
        "merge (deepCopy .Values.app.securityContext) .Values.sidecar.securityContext"
        if merged
        else ".Values.sidecar.securityContext"
    )
    return _chart(
        root,
        "pair",
        "podSecurityContext: {}\n"
        "app:\n  securityContext: {runAsUser: 1000}\n  resources: {}\n"
        "sidecar:\n  securityContext: {}\n  resources: {}\n",
        "      securityContext: {{- toYaml .Values.podSecurityContext | nindent 8 }}\n"
        "      containers:\n"
        "        - name: app\n          image: app:1\n"
        "          securityContext: {{- toYaml .Values.app.securityContext | nindent 12 }}\n"
        "          resources: {{- toYaml .Values.app.resources | nindent 12 }}\n"
        "        - name: sidecar\n          image: sidecar:1\n"
        f"          securityContext: {{{{- toYaml ({sidecar_context}) | nindent 12 }}}}\n"
        "          resources: {{- toYaml .Values.sidecar.resources | nindent 12 }}\n",
    )


def _answers(repo: Path) -> dict[tuple[object, ...], object]:
    """Where every field of every container (and the pod's seccompProfile) is set."""
    view = locate(repo, finding_for("C-0016", "Deployment", "pair", None, "pair")).view
    out: dict[tuple[object, ...], object] = {}
    for n, container in enumerate(view.containers):
        for fields in FIELDS:
            out[(n, *fields)] = container.path(*fields)
    out[("pod", "seccompProfile")] = view.path("securityContext", "seccompProfile")
    return out


def _one_mapping_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ValuesMap, "_confirm_together", lambda self: None)


@pytest.mark.parametrize("merged", [False, True], ids=["own-keys", "merged-keys"])
def test_every_mapping_of_a_pod_is_confirmed_in_one_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renders: list[int], merged: bool
) -> None:
    """Five mappings (the pod's, two per container) cost one confirming render, not five; a
    template merging two mappings makes one marker lose to the other, and that mapping is
    asked again on its own: the answers are those of one render per mapping either way."""
    _two_containers(tmp_path / "together", merged)
    _two_containers(tmp_path / "apart", merged)
    start = renders[0]
    together = _answers(tmp_path / "together")
    together_renders = renders[0] - start
    _one_mapping_at_a_time(monkeypatch)
    start = renders[0]
    apart = _answers(tmp_path / "apart")
    apart_renders = renders[0] - start
    assert together == apart
    assert together[(0, "securityContext", "runAsNonRoot")] == (
        "app",
        "securityContext",
        "runAsNonRoot",
    )
    assert together[(1, "resources", "limits", "memory")] == (
        "sidecar",
        "resources",
        "limits",
        "memory",
    )
    assert together[("pod", "seccompProfile")] == ("podSecurityContext", "seccompProfile")
    assert together_renders < apart_renders
    if not merged:
        assert apart_renders - together_renders >= 3


def _components(root: Path, template: str) -> Path:
    """Nine components with an ``automountServiceAccountToken`` key each (all true); the
    deployment's field is rendered by ``template``."""
    values = "".join(f"c{n}:\n  automountServiceAccountToken: true\n" for n in range(9))
    return _chart(
        root,
        "pair",
        values,
        f"      automountServiceAccountToken: {template}\n"
        "      containers:\n        - name: app\n          image: app:1\n",
    )


def _sequential(vmap: ValuesMap, paths: list, rendered: tuple, current: bool) -> object:
    """The reference: each candidate flipped alone, in order."""
    for path in paths:
        document = vmap._render_doc(vmap._with_each([path], [not current]))
        if document is not None and helm.lookup(document, rendered) == (not current):
            return path
    return None


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .Values.c7.automountServiceAccountToken }}", ("c7", "automountServiceAccountToken")),
        ("{{ .Values.c0.automountServiceAccountToken }}", ("c0", "automountServiceAccountToken")),
        (
            "{{ and .Values.c5.automountServiceAccountToken .Values.c2.automountServiceAccountToken }}",
            ("c2", "automountServiceAccountToken"),
        ),
        (
            "{{ or .Values.c5.automountServiceAccountToken .Values.c2.automountServiceAccountToken }}",
            # No key flips it alone; a string marker shows the key it reads first.
            ("c5", "automountServiceAccountToken"),
        ),
    ],
    ids=["one-key", "the-first-key", "and-of-two", "or-of-two"],
)
def test_a_boolean_key_is_found_by_halves(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    renders: list[int],
    template: str,
    expected: tuple[str, ...] | None,
) -> None:
    """Of nine same-named boolean keys, the one that flips the field alone is found by
    flipping halves (a few renders, not one per key), and it is the first one that does, as
    flipping them one by one in order finds."""
    _components(tmp_path / "halves", template)
    _components(tmp_path / "one-by-one", template)
    rendered = (*POD, "automountServiceAccountToken")
    start = renders[0]
    view = locate(tmp_path / "halves", finding_for("C-0034", "Deployment", "pair", None, "pair"))
    after_locate = renders[0]
    halves = view.view.mapping.values_path(rendered)
    by_halves = renders[0] - after_locate
    assert after_locate > start

    def sequential(self: ValuesMap, paths: list, field: tuple, current: bool) -> object:
        return _sequential(self, paths, field, current)

    flipping: Callable[..., object] = sequential
    monkeypatch.setattr(ValuesMap, "_first_flipping", flipping)
    other = locate(
        tmp_path / "one-by-one", finding_for("C-0034", "Deployment", "pair", None, "pair")
    )
    after_locate = renders[0]
    one_by_one = other.view.mapping.values_path(rendered)
    assert halves == one_by_one == expected
    if not template.startswith("{{ or"):
        # Halving costs about log2(9) renders wherever the key is; one by one, its position.
        assert by_halves <= 5
    if expected == ("c7", "automountServiceAccountToken"):
        assert by_halves < renders[0] - after_locate


def _printed_maps(root: Path, name: str) -> Path:
    """A chart that prints every value of two maps of strings through ``tpl`` (a map there
    breaks the render) beside maps it renders whole."""
    return _chart(
        root,
        name,
        "podAnnotations: {}\npodLabels: {}\nnodeSelector: {}\naffinity: {}\n"
        "tolerations: []\nsecurityContext: {}\nresources: {}\nextra:\n  a: {}\n  b: {}\n",
        "      nodeSelector: {{- toYaml .Values.nodeSelector | nindent 8 }}\n"
        "      affinity: {{- toYaml .Values.affinity | nindent 8 }}\n"
        "      containers:\n        - name: app\n          image: app:1\n"
        "          securityContext: {{- toYaml .Values.securityContext | nindent 12 }}\n"
        "          resources: {{- toYaml .Values.resources | nindent 12 }}\n"
        "          env:\n"
        "            {{- range $k, $v := .Values.podAnnotations }}\n"
        "            - name: {{ $k }}\n              value: {{ tpl $v $ | quote }}\n"
        "            {{- end }}\n"
        "            {{- range $k, $v := .Values.podLabels }}\n"
        "            - name: {{ $k }}\n              value: {{ tpl $v $ | quote }}\n"
        "            {{- end }}\n",
    )


def test_maps_a_template_prints_as_text_are_probed_with_text_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renders: list[int]
) -> None:
    """Map markers break a template that prints each value of a map as text: the same
    markers holding text render, in one more render instead of a split down to each key;
    what is found is what the split finds."""

    def found(name: str) -> tuple[dict, int]:
        _printed_maps(tmp_path, name)
        target = locate(tmp_path, finding_for("C-0016", "Deployment", name, None, name))
        probes = target.view.mapping.probes
        start = renders[0]
        return dict(probes.found(target.view.mapping.doc.ident, everything=True)), (
            renders[0] - start
        )

    with_text, text_renders = found("text")
    monkeypatch.setattr(
        helm.Probes,
        "_probe",
        lambda self, paths, enable=None: self._probe_halves(paths, enable or {}),
    )
    halves, halves_renders = found("halves")
    assert with_text == halves
    assert with_text[(*POD, "nodeSelector")] == ("nodeSelector",)
    assert with_text[(*POD, "containers", 0, "securityContext")] == ("securityContext",)
    assert text_renders < halves_renders


def test_markers_that_break_a_render_are_left_out_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renders: list[int]
) -> None:
    """Maps whose marker breaks the render with a map (values printed as text) and with text
    (values read as maps): each such key is found by halving the prefix that renders and left
    out, the rest probed together; what is found is what probing every key alone finds."""

    def found(name: str) -> tuple[dict, int]:
        chart = _printed_maps(tmp_path, name)
        values = chart / "values.yaml"  # maps no template reads: their markers land nowhere
        values.write_text(
            values.read_text() + "more:\n" + "".join(f"  k{n}: {{}}\n" for n in range(40))
        )
        deployment = chart / "templates" / "deployment.yaml"
        deployment.write_text(
            deployment.read_text()
            + "            {{- range $k, $v := .Values.extra }}\n"
            + "            - name: {{ $k }}\n              value: {{ $v.value | quote }}\n"
            + "            {{- end }}\n"
        )
        target = locate(tmp_path, finding_for("C-0016", "Deployment", name, None, name))
        probes = target.view.mapping.probes
        start = renders[0]
        return dict(probes.found(target.view.mapping.doc.ident, everything=True)), (
            renders[0] - start
        )

    together, together_renders = found("together")

    def alone(self: helm.Probes, paths: list, enable: dict | None = None) -> None:
        for path in paths:
            self._probe_with([path], enable or {}, {})

    monkeypatch.setattr(helm.Probes, "_probe", alone)
    one_by_one, alone_renders = found("alone")
    assert together == one_by_one
    assert together[(*POD, "nodeSelector")] == ("nodeSelector",)
    assert ("podAnnotations",) not in together.values()
    assert together_renders < alone_renders / 2


_MOUNTS_POD = """\
      containers:
        - name: app
          image: app:1
          securityContext: {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: /data
            {{- with .Values.sidecar.volumeMounts }}{{ end }}
            {{- with .Values.extraVolumeMounts }}
              {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with .Values.volumeMounts }}
              {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: data
          emptyDir: {}
"""


@pytest.mark.parametrize(
    ("values", "expected", "saved"),
    [
        # The key that feeds the list is the second of two candidates.
        ("sidecar:\n  volumeMounts: []\nextraVolumeMounts: []\n", ("extraVolumeMounts",), 1),
        # Two keys feed it: the first in the values' order is the answer, as one at a time.
        ("sidecar: {}\nvolumeMounts: []\nextraVolumeMounts: []\n", ("volumeMounts",), 0),
        # None of them does.
        ("sidecar:\n  volumeMounts: []\nother:\n  extraVolumeMounts: []\n", None, 1),
    ],
)
def test_list_keys_are_probed_together_with_the_answer_of_one_at_a_time(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    renders: list[int],
    values: str,
    expected: tuple[str, ...] | None,
    saved: int,
) -> None:
    """Every list key named for the field gets its own marker item in one render; the answer
    is the one probing each key in a render of its own gives, with a render saved per key
    that one at a time probes before the answer."""
    values = "securityContext:\n  readOnlyRootFilesystem: false\n" + values
    finding = finding_for("C-0017", "Deployment", "store", None, "store")
    answers: dict[str, tuple[str | int, ...] | None] = {}
    costs: dict[str, int] = {}
    real = ValuesMap._render_doc

    def one_key_per_render(self: ValuesMap, v: dict) -> object:
        markers = [k for k in str(v).split("'") if k.startswith(f"{helm.PROBE}list")]
        return None if len(markers) > 1 else real(self, v)

    for mode in ("together", "apart"):
        if mode == "apart":
            monkeypatch.setattr(ValuesMap, "_render_doc", one_key_per_render)
        _chart(tmp_path / mode, "store", values, _MOUNTS_POD)
        target = locate(tmp_path / mode, finding)
        start = renders[0]
        try:
            answers[mode] = target.view.containers[0].path("volumeMounts")
        except FieldNotExposed:
            answers[mode] = None
        costs[mode] = renders[0] - start
    assert answers["together"] == answers["apart"]
    assert answers["together"] == expected
    assert costs["apart"] - costs["together"] == saved


def test_a_list_key_probed_with_an_item_is_not_probed_again_with_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list key of the values whose marker item lands nowhere is not asked again with a
    text marker or ``true`` (`ValuesMap._referenced`): a key the templates read but the values
    lack still is."""
    probed: list[str] = []
    real = ValuesMap._render_doc

    def recorded(self: ValuesMap, values: dict) -> object:
        probed.append(repr(values))
        return real(self, values)

    monkeypatch.setattr(ValuesMap, "_render_doc", recorded)
    values = "securityContext:\n  readOnlyRootFilesystem: false\nsidecar:\n  volumeMounts: []\n"
    _chart(tmp_path, "store", values, _MOUNTS_POD)
    target = locate(tmp_path, finding_for("C-0017", "Deployment", "store", None, "store"))
    with pytest.raises(FieldNotExposed):
        target.view.containers[0].path("volumeMounts")
    sidecar = [p for p in probed if "'sidecar': {'volumeMounts': [{" in p]
    assert len(sidecar) == 1  # its item, once
    assert not any("'sidecar': {'volumeMounts': '__kr_probe_ref" in p for p in probed)
    assert not any("'sidecar': {'volumeMounts': True" in p for p in probed)
    assert any("'volumeMounts': '__kr_probe_ref" in p for p in probed)  # the absent key
