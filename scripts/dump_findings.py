"""Dump what every report reader makes of the corpus and of hostile variants of it, to compare
two versions of `bot.sources` (``git stash``/checkout between two runs, then ``diff``).

Each line is one input: a corpus report or evidence file read as the bot reads it, or a seeded
mutation of one (subtrees swapped, keys dropped or added, lists repeated), followed by a digest
of the whole `Report` (findings, skipped, resources, summary, passed) or the `ReportError` text.

    PYTHONPATH=$PWD python scripts/dump_findings.py --mutations 300 > /tmp/after.txt
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ReportError
from bot.sources import load_report, parse_report
from bot.sources.runtime import RuntimeEvidence, load_evidence

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
FIXTURES = ROOT / "tests" / "fixtures" / "reports"
HOSTILE: list[Any] = [None, True, 0, -1, 1.5, "", "x", "\x00", [], {}, [None], {"": None}]


def _report_files() -> list[Path]:
    found = [p for p in sorted((CORPUS / "scans").rglob("*")) if p.suffix in {".json", ".yaml"}]
    found += [p for p in sorted(FIXTURES.rglob("*")) if p.suffix in {".json", ".yaml", ".sarif"}]
    return [*found, ROOT / "examples" / "kubescape-report.json"]


def _evidence_files() -> list[Path]:
    return [p for p in sorted((CORPUS / "runtime").rglob("*")) if p.suffix in {".json", ".yaml"}]


def _digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def _report_digest(read: Any) -> str:
    try:
        report = read()
    except ReportError as exc:
        return f"error {exc}"
    except Exception as exc:  # a traceback is what this looks for
        return f"CRASH {type(exc).__name__}: {exc}"
    body = (
        report.scanner,
        report.findings,
        report.skipped,
        sorted((k, repr(v)) for k, v in report.resources.items()),
        repr(report.summary),
        sorted(report.passed),
    )
    return f"{len(report.findings)} findings {len(report.skipped)} skipped {_digest(body)}"


def _evidence_digest(read: Any) -> str:
    try:
        evidence: RuntimeEvidence = read()
    except ReportError as exc:
        return f"error {exc}"
    except Exception as exc:
        return f"CRASH {type(exc).__name__}: {exc}"
    body = (
        sorted((k, repr(w)) for k, w in evidence.workloads.items()),
        sorted(evidence.alerts.items()),
        evidence.unattributed_alerts,
        evidence.known_servers,
        evidence.skipped,
        evidence.describe(),
    )
    return f"{len(evidence.workloads)} workloads {_digest(body)}"


def _mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(12)
    if choice == 0 or depth > 14:
        return copy.deepcopy(rng.choice(HOSTILE))
    if isinstance(value, dict):
        out = {k: _mutate(v, rng, depth + 1) for k, v in value.items() if rng.randrange(10)}
        if choice == 1:
            out[rng.choice(list(value) or ["x"])] = copy.deepcopy(rng.choice(HOSTILE))
        return out
    if isinstance(value, list):
        items = [_mutate(v, rng, depth + 1) for v in value[:6]]
        return items * 2 if choice == 2 else items
    return value


def _load(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".yaml":
        return [d for d in yaml.safe_load_all(text) if d is not None]
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=200, help="variants per input file")
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args(argv)
    out = sys.stdout
    started = time.perf_counter()
    for path in _report_files():
        name = path.relative_to(ROOT.parent) if CORPUS in path.parents else path.relative_to(ROOT)
        out.write(f"{name}: {_report_digest(lambda p=path: load_report(p))}\n")
        docs = _load(path)
        if len(docs) != 1:
            continue
        rng = random.Random(f"{args.seed}:{name}")
        for i in range(args.mutations):
            data = _mutate(docs[0], rng)
            out.write(f"{name}~{i}: {_report_digest(lambda d=data: parse_report(d, 'x'))}\n")
    for path in _evidence_files():
        name = path.relative_to(CORPUS)
        out.write(f"{name}: {_evidence_digest(lambda p=path: load_evidence([p]))}\n")
        docs = _load(path)
        rng = random.Random(f"{args.seed}:{name}")
        for i in range(args.mutations):
            data = [_mutate(d, rng) for d in docs]

            def read(items: list[Any] = data) -> RuntimeEvidence:
                evidence = RuntimeEvidence()
                evidence.add(items, "x")
                return evidence.finish()

            out.write(f"{name}~{i}: {_evidence_digest(read)}\n")
    print(f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
