"""Property tests over every report reader (`bot.sources`: each format's sniff and parse, and
`decode_report` on the bytes): hostile JSON structures, grown from real reports of each format
with subtrees swapped for arbitrary values and keys taken from the readers' own vocabulary, are
always a `Report` or a one-line `ReportError`, never a traceback, in bounded time."""

from __future__ import annotations

import ast
import contextlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.errors import ReportError
from bot.sources import decode_report, parse_report, sources
from bot.sources.base import Report

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "tests" / "fixtures" / "reports"
SECONDS = 5.0
"""Per input; the seeds are trimmed to a few items, so an honest parse takes milliseconds."""

KYVERNO = {
    "apiVersion": "wgpolicyk8s.io/v1alpha2",
    "kind": "PolicyReport",
    "metadata": {"name": "polr", "namespace": "shop"},
    "scope": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop"},
    "results": [
        {
            "policy": "disallow-privilege-escalation",
            "rule": "privilege-escalation",
            "result": "fail",
            "message": "validation error: failed at path /spec/template/spec/containers/0/",
            "resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
        }
    ],
}


def _trim(value: Any, depth: int = 0) -> Any:
    """A real report cut down to two items per list: its shape, without its bulk."""
    if isinstance(value, Mapping):
        return {k: _trim(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_trim(v, depth + 1) for v in value[:2]]
    return value


def _seeds() -> list[Any]:
    seeds: list[Any] = [KYVERNO]
    for path in sorted(REPORTS.rglob("*")):
        if path.suffix in (".json", ".sarif"):
            seeds.append(_trim(json.loads(path.read_text(encoding="utf-8"))))
        elif path.suffix == ".yaml":
            seeds.append(_trim(yaml.safe_load(path.read_text(encoding="utf-8"))))
    seeds.append(_trim(json.loads((ROOT / "examples" / "kubescape-report.json").read_text())))
    return seeds


SEEDS = _seeds()


def _vocabulary() -> list[str]:
    """Every short identifier-like string literal in the readers and every field name of their
    payload models: their keys and values."""
    words: set[str] = set()
    for path in sorted((ROOT / "bot" / "sources").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if 0 < len(text) <= 40 and "\n" not in text and " " not in text:
                    words.add(text)
            elif isinstance(node, ast.ClassDef):
                words.update(
                    field.target.id
                    for field in node.body
                    if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
                )
    return sorted(words)


WORDS = _vocabulary()
HOSTILE_TEXT = st.sampled_from(
    ["", "\x00", "\u202e", "\x1b[2J", "-1", "1e999", "/", "../../etc/passwd", "a" * 300]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS)
    | HOSTILE_TEXT
    | st.text(max_size=12)
)
KEYS = st.sampled_from(WORDS) | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


@st.composite
def hostile(draw: st.DrawFn) -> Any:
    """A seed report with random subtrees replaced, keys added and lists multiplied."""

    def mutate(value: Any, depth: int) -> Any:
        choice = draw(st.integers(0, 9))
        if choice == 0 or depth > 12:
            return draw(JSON)
        if isinstance(value, Mapping):
            out = {k: mutate(v, depth + 1) for k, v in value.items() if draw(st.integers(0, 9))}
            if choice == 1:
                out[draw(KEYS)] = draw(JSON)
            return out
        if isinstance(value, list):
            items = [mutate(v, depth + 1) for v in value]
            return items * 3 if choice == 2 else items
        return value

    return mutate(draw(st.sampled_from(SEEDS)), 0)


def _refusal_is_one_line(exc: ReportError) -> None:
    message = str(exc)
    assert message and "\n" not in message and "Traceback" not in message, message


def _check(data: Any) -> None:
    for source in sources():
        start = time.perf_counter()
        try:
            if source.sniff(data):
                assert isinstance(source.parse(data, "fuzz.json"), Report)
        except ReportError as exc:
            _refusal_is_one_line(exc)
        assert time.perf_counter() - start < SECONDS, source.format
    try:
        assert isinstance(parse_report(data, "fuzz.json"), Report)
    except ReportError as exc:
        _refusal_is_one_line(exc)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    # no "explain" phase: its line tracing makes a failure take minutes on Python < 3.12
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.mark.parametrize("seed", range(len(SEEDS)), ids=lambda i: f"seed{i}")
def test_seed_reports_parse(seed: int) -> None:
    """The unmutated (trimmed) seeds are real reports of their format."""
    assert isinstance(parse_report(SEEDS[seed], "seed.json"), Report)


@FUZZ
@given(hostile())
def test_mutated_reports_never_crash_a_reader(data: Any) -> None:
    _check(data)


@FUZZ
@given(JSON)
def test_arbitrary_json_never_crashes_a_reader(data: Any) -> None:
    _check(data)


@FUZZ
@given(hostile())
def test_report_bytes_never_crash(data: Any) -> None:
    body = json.dumps(data, allow_nan=True).encode()
    start = time.perf_counter()
    try:
        assert isinstance(decode_report(body, "fuzz.json"), Report)
    except ReportError as exc:
        _refusal_is_one_line(exc)
    assert time.perf_counter() - start < SECONDS


def test_an_artifact_name_no_file_system_takes_is_not_a_crash() -> None:
    """Found by the fuzz above: Trivy's ArtifactName is looked up as a directory, and a name
    longer than the file system allows made that lookup raise."""
    data = {
        "ArtifactName": ["a" * 400],
        "Results": [{"Misconfigurations": [{"ID": "KSV-0001"}, {}], "$schema": None}, None],
    }
    with contextlib.suppress(ReportError):  # a clear refusal is fine; an OSError is not
        parse_report(data, "trivy.json")
