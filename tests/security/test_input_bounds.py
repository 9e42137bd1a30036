"""Deep, huge and alias-bomb input is refused fast with one line (exit 2), never a traceback:
reports (whole-file, streamed and received as bytes), .remedy.yaml, CODEOWNERS, manifests."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import yaml

from bot.codeowners import MAX_CODEOWNERS_BYTES, load_codeowners
from bot.errors import ConfigError, ReportError
from bot.sources import decode_report, load_report
from tests.security._input_support import branches, checkov_report, commit_all, deployment, run


def laughs(indent: str = "") -> str:
    """Ten anchored lists of ten aliases each: 10^10 strings once expanded, 600 bytes of text."""
    lines = [f"{indent}lol0: &l0 [{', '.join(['lol'] * 10)}]"]
    lines += [f"{indent}lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


BILLION_LAUGHS = laughs()


def _one_line_refusal(code: int, err: str, *words: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_deep_report_is_refused_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    report = tmp_path / f"deep{suffix}"
    report.write_text("[" * 200_000)
    start = time.perf_counter()
    code, _, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path))
    assert time.perf_counter() - start < 5
    _one_line_refusal(code, err, str(report), "nested deeper than")


def test_deep_but_well_formed_report_is_refused_with_its_line(tmp_path: Path) -> None:
    report = tmp_path / "deep.json"
    report.write_text('{"results":\n' + "[" * 500 + "]" * 500 + "}")
    with pytest.raises(ReportError, match=r"nested deeper than 100 levels at line 2, column 100"):
        load_report(report)


def test_deep_streamed_report_is_refused(tmp_path: Path) -> None:
    report = tmp_path / "big.json"
    item = {"resourceID": "x", "controls": [], "deep": json.loads("[" * 300 + "]" * 300)}
    report.write_text(json.dumps({"summaryDetails": {}, "results": [item]}))
    with pytest.raises(ReportError, match="nested deeper than 100 levels in one of results"):
        load_report(report, stream_above=0)


def test_report_bytes_from_an_artifact_are_bounded() -> None:
    with pytest.raises(ReportError, match="nested deeper than"):
        decode_report(b"[" * 200_000, "job kubescape, artifact r.json")
    with pytest.raises(ReportError, match="over the limit"):
        decode_report(b"{}" * 600, "artifact", max_bytes=1000)


def test_huge_report_is_refused_before_it_is_read(tmp_path: Path) -> None:
    report = tmp_path / "huge.json"
    with report.open("wb") as fh:
        fh.truncate(2 * 1024 * 1024)  # sparse: nothing to read
    with pytest.raises(ReportError, match=r"2\.0 MB, over the limit of 1 MB"):
        load_report(report, max_bytes=1024 * 1024)


def test_billion_laughs_report_is_refused_fast(tmp_path: Path) -> None:
    report = tmp_path / "lol.yaml"
    report.write_text(BILLION_LAUGHS)
    start = time.perf_counter()
    with pytest.raises(ReportError, match="more than 1000000 values"):
        load_report(report)
    assert time.perf_counter() - start < 5


def test_billion_laughs_remedy_yaml_is_refused_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".remedy.yaml").write_text("x-anchors:\n" + laughs("  ") + "labels: *l9\n")
    report = checkov_report(tmp_path / "r.json", [])
    start = time.perf_counter()
    code, _, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path))
    assert time.perf_counter() - start < 5
    _one_line_refusal(code, err, ".remedy.yaml", "more than")


def test_deep_and_huge_remedy_yaml_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = checkov_report(tmp_path / "r.json", [])
    (tmp_path / ".remedy.yaml").write_text("teams: " + "[" * 100_000)
    code, _, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path))
    _one_line_refusal(code, err, ".remedy.yaml", "nested deeper than")
    (tmp_path / ".remedy.yaml").write_text("teams: {}\n" + "# padding\n" * 40_000)
    code, _, err = run(capsys, "plan", "--report", str(report), "--repo", str(tmp_path))
    _one_line_refusal(code, err, ".remedy.yaml", "over the limit")


def test_billion_laughs_manifest_refuses_its_findings_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "cd-config"
    (repo / "apps").mkdir(parents=True)
    bomb = deployment("frontend").replace(
        "  namespace: shop\n", "  namespace: shop\n  labels:\n" + laughs("    "), 1
    )
    bomb += "          args: *l9\n"
    (repo / "apps" / "frontend.yaml").write_text(bomb)
    commit_all(repo)
    report = checkov_report(tmp_path / "r.json", [("apps/frontend.yaml", "frontend")])
    start = time.perf_counter()
    code, out, err = run(capsys, "apply", "--report", str(report), "--repo", str(repo))
    assert time.perf_counter() - start < 10
    assert code == 1 and "Traceback" not in out + err
    assert "apps/frontend.yaml" in out and "more than" in out
    assert branches(repo) == []


def test_deep_manifest_is_refused_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "cd-config"
    (repo / "apps").mkdir(parents=True)
    deep = deployment("frontend") + "          env: " + "[" * 150 + "]" * 150 + "\n"
    (repo / "apps" / "frontend.yaml").write_text(deep)
    commit_all(repo)
    report = checkov_report(tmp_path / "r.json", [("apps/frontend.yaml", "frontend")])
    code, out, err = run(capsys, "apply", "--report", str(report), "--repo", str(repo))
    assert code == 1 and "Traceback" not in out + err
    assert "nested deeper than 100 levels" in out
    assert branches(repo) == []


def test_huge_codeowners_is_refused() -> None:
    text = "* @alice\n" * (MAX_CODEOWNERS_BYTES // 9 + 1)
    with pytest.raises(ConfigError, match=r"CODEOWNERS.*over the limit"):
        load_codeowners(lambda path: text if path == "CODEOWNERS" else None)


def test_settings_file_is_bounded(tmp_path: Path) -> None:
    from bot.settings import MAX_CONFIG_FILE_BYTES, load_settings

    config = tmp_path / "remedy.yaml"
    for text, words in [
        (BILLION_LAUGHS, "more than"),
        ("a: " + "[" * 500 + "]" * 500 + "\n", "nested deeper than"),
        ("projects: [\n", "is not valid YAML: line"),
        ("x" * (MAX_CONFIG_FILE_BYTES + 1), "over the limit of 1 MB"),
    ]:
        config.write_text(text)
        start = time.perf_counter()
        with pytest.raises(ConfigError) as caught:
            load_settings(config)
        assert time.perf_counter() - start < 20  # the node budget; generous on a loaded machine
        message = str(caught.value)
        assert f"config file {config}" in message and words in message, message
        assert "\n" not in message


def _helm_plan(repo: Path) -> list[str]:
    """The unfixable reasons of a plan for one Deployment of chart ``charts/web``."""
    from bot.plan import build_plan
    from bot.sources.base import Report
    from fixers.model import Finding, ResourceRef, SourceHint

    ref = ResourceRef(api_version="apps/v1", kind="Deployment", namespace="default", name="web")
    finding = Finding(
        control_id="C-0016",
        resource=ref,
        container="web",
        source=SourceHint(chart_path="charts/web"),
    )
    start = time.perf_counter()
    plan = build_plan(Report("kubescape", "test", (finding,)), repo)
    assert time.perf_counter() - start < 30
    assert not plan.change_sets
    return [u.reason for u in plan.unfixable]


def _web_chart(repo: Path) -> Path:
    chart = repo / "charts" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("{}\n")
    (chart / "templates" / "deployment.yaml").write_text(deployment("web"))
    return chart


APPLICATION = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  destination: {namespace: default}
  source:
    path: charts/web
    helm:
      valueFiles: [values-prod.yaml]
"""


@pytest.mark.parametrize(
    ("file", "text", "words"),
    [
        ("Chart.yaml", "apiVersion: v2\n" + BILLION_LAUGHS, "charts/web/Chart.yaml: more than"),
        ("Chart.yaml", "name: [\n", "charts/web/Chart.yaml is not valid YAML: line"),
        ("values-prod.yaml", BILLION_LAUGHS, "values file charts/web/values-prod.yaml: more than"),
        (
            "values-prod.yaml",
            "a: " + "[" * 300 + "]" * 300,
            "values file charts/web/values-prod.yaml: nested deeper than",
        ),
    ],
    ids=["chart-laughs", "chart-syntax", "values-laughs", "values-deep"],
)
def test_helm_chart_files_are_bounded(tmp_path: Path, file: str, text: str, words: str) -> None:
    chart = _web_chart(tmp_path)
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "web.yaml").write_text(APPLICATION)
    (chart / file).write_text(text)
    [reason] = _helm_plan(tmp_path)
    assert words in reason and "\n" not in reason, reason


def test_helm_inline_values_are_bounded(tmp_path: Path) -> None:
    from bot.errors import RepositoryError
    from bot.locate.base import FileOverlay
    from bot.locate.gitops import HelmApp
    from bot.locate.helm import ChartInfo, Deployment

    (tmp_path / "app.yaml").write_text("spec:\n  values:\n" + laughs("    "))
    app = HelmApp("app.yaml", 0, "Application", "web", "charts/web", "web", None, (), {"a": 1})
    app = dataclasses.replace(app, inline_path=("spec", "values"))
    dep = Deployment(ChartInfo("charts/web", "web", False), "web", "default", ("v.yaml",), app)
    with pytest.raises(RepositoryError, match=r"^app\.yaml: more than \d+ values"):
        dep.inline(FileOverlay(tmp_path))


def test_a_file_of_many_documents_is_looked_at_once_for_aliases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A manifest file of thousands of documents: whether it can hold aliases is asked once
    for the file, not once per document (that scan of the whole text per document made
    reading such a file quadratic); the data is the safe loader's."""
    from bot import safe_load

    asked: list[int] = []
    real = safe_load.may_alias
    monkeypatch.setattr(safe_load, "may_alias", lambda text: asked.append(1) or real(text))
    text = "".join(f"---\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(5000))
    docs = safe_load.load_yaml_all(text, "many.yaml", error=ReportError)
    assert docs == list(yaml.safe_load_all(text))
    assert asked == [1]


def _bounds_reference(data: object, max_depth: int, max_nodes: int) -> str | None:
    """`check_bounds` as first written (the fast one must refuse exactly the same data with
    the same words); the refusal's message, or None."""
    from collections.abc import Mapping

    from bot.safe_load import SCALAR_TYPES

    stack: list[tuple[object, int]] = [(data, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if isinstance(value, Mapping):
            children: object = [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple):
            children = value
        else:
            children = ()
        if children and depth >= max_depth:
            return f"x: nested deeper than {max_depth} levels; refusing it"
        for child in children:  # type: ignore[attr-defined]
            if type(child) in SCALAR_TYPES:
                seen += 1
            else:
                stack.append((child, depth + 1))
        if seen > max_nodes:
            return (
                f"x: more than {max_nodes} values (YAML aliases expanding like "
                "'billion laughs'?); refusing it"
            )
    return None


def test_check_bounds_refuses_what_its_definition_refuses() -> None:
    """Random nests of dicts, lists, tuples, a non-dict Mapping and non-core scalars (dates),
    against random limits: refused or not, and with which words, as the definition says."""
    import datetime
    import random
    from types import MappingProxyType

    from bot.errors import RemedyError
    from bot.safe_load import check_bounds

    rng = random.Random(11)

    def value(depth: int) -> object:
        roll = rng.random()
        if depth > 6 or roll < 0.4:
            return rng.choice(["a", 1, None, 2.5, True, datetime.date(2020, 1, 1)])
        items = [value(depth + 1) for _ in range(rng.randint(0, 4))]
        if roll < 0.6:
            return items
        if roll < 0.7:
            return tuple(items)
        mapping = {f"k{n}": item for n, item in enumerate(items)}
        return MappingProxyType(mapping) if roll < 0.75 else mapping

    outcomes = set()
    for _ in range(3000):
        data, depth, nodes = value(0), rng.randint(1, 8), rng.randint(1, 60)
        expected = _bounds_reference(data, depth, nodes)
        try:
            check_bounds(data, "x", max_depth=depth, max_nodes=nodes)
            got = None
        except RemedyError as exc:
            got = str(exc)
        assert got == expected, (data, depth, nodes)
        outcomes.add(None if got is None else "deeper" in got)
    assert len(outcomes) == 3  # accepted, too deep and too many all happen
