"""CPU time of `bot.sources.load_report` (decode and parse) on real reports grown large.

Each real report (corpus and tests/fixtures) has its result list repeated until it is a few MB,
is written to a temporary file and read five times; the best CPU time is printed. Run it on two
versions of `bot.sources` to compare them (CPU time, so other load on the machine matters less).

    PYTHONPATH=$PWD .venv/bin/python -m bench.bench_report_readers
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bot.sources import load_report

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "scans"
FIXTURES = ROOT / "tests" / "fixtures" / "reports"


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def _grow(path: Path, times: int, grow: Callable[[Any, int], None]) -> Callable[[], Any]:
    def make() -> Any:
        data = _load(path)
        grow(data, times)
        return data

    return make


def _results(key: str) -> Callable[[Any, int], None]:
    def grow(data: Any, times: int) -> None:
        for run in data if isinstance(data, list) else [data]:
            run[key] = run[key] * times

    return grow


def _checkov(data: Any, times: int) -> None:
    for run in data if isinstance(data, list) else [data]:
        for key in ("failed_checks", "passed_checks"):
            run["results"][key] = (run["results"].get(key) or []) * times


def _sarif(data: Any, times: int) -> None:
    for run in data["runs"]:
        run["results"] = run["results"] * times


REPORTS: dict[str, Callable[[], Any]] = {
    "trivy k8s": _grow(
        CORPUS / "trivy" / "defectdojo__trivy-k8s-cluster__kubernetes.json",
        200,
        _results("Misconfigurations"),
    ),
    "trivy config": _grow(FIXTURES / "trivy-config.json", 100, _results("Results")),
    "trivy sarif": _grow(FIXTURES / "trivy-config.sarif", 40, _sarif),
    "checkov": _grow(FIXTURES / "checkov-kubernetes.json", 40, _checkov),
    "kyverno": _grow(
        CORPUS / "kyverno" / "ocm-policy-collection__polr-openshift-authentication-operator.yaml",
        500,
        _results("results"),
    ),
    "kubescape operator": _grow(
        FIXTURES / "kubescape-operator" / "workloadconfigurationscans.yaml", 200, _results("items")
    ),
    "kube-bench": _grow(
        CORPUS / "kube-bench" / "cmd" / "testdata" / "result.json", 300, _results("Controls")
    ),
}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in REPORTS.items():
            path = Path(tmp) / "report.json"
            path.write_text(json.dumps(make(), default=str), encoding="utf-8")
            load_report(path, stream_above=1 << 40)  # warm the catalog and scanner map
            best = float("inf")
            for _ in range(5):
                started = time.process_time()
                load_report(path, stream_above=1 << 40)
                best = min(best, time.process_time() - started)
            size = path.stat().st_size / 1e6
            print(f"{name:20s} {size:6.1f} MB {best * 1000:8.1f} ms CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
