"""Benchmark: planning the fixes of a chart against one render of it.

For every chart of the shared corpus (``../shared/corpus/charts``, read in place) the findings
are what the bot's own checks say about the chart's default render (every fixable control on
every workload), as a scanner of the chart would report them. Two sides are timed alternately,
each in the same process, repeated:

- one render: ``helm_python.Chart.load(chart).render({}, ...)`` and parsing its output;
- plan: ``bot.plan.build_plan`` of those findings with the chart directory as the repository
  (a fresh locator each time: chart index, load, renders, probes, fixes, re-render, verify;
  values files parsed afresh, not taken from an earlier repeat's memo).

Prints min / median of each side, the ratio of the minima (target: plan <= 10x one render,
the helm-create demo chart's plan under 50 ms) and how many renders one plan makes.

Run: ``.venv/bin/python -m bench.bench_helm [--repeats 5] [CHART ...]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.locate.helm_render import parse_rendered
from bot.plan import build_plan
from bot.sources.base import Report
from fixers.model import AlreadyCompliant, Finding, ResourceRef
from fixers.policy import FixContext
from fixers.registry import fixable_controls, fixer_for, run_fixer
from fixers.view import ManifestPodView

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "charts"


def render_once(chart: Path) -> list[object]:
    """Load the chart and render its defaults once (the unit the plan is measured in)."""
    import helm_python

    helm_python.disable_logging()
    rendered = helm_python.Chart.load(str(chart)).render({}, name=chart.name, namespace="default")
    return [d.document for d in parse_rendered(rendered)]


def findings_of(chart: Path) -> tuple[Finding, ...]:
    """Every fixable control the default render of ``chart`` fails, one finding per resource."""
    out: list[Finding] = []
    ctx = FixContext(location_kind="manifest")
    for document in render_once(chart):
        view = ManifestPodView.from_document(document)
        if view is None:
            continue
        for control in sorted(fixable_controls()):
            fixer = fixer_for(control)
            ref = ResourceRef(
                api_version=str(document.get("apiVersion", "")),  # type: ignore[attr-defined]
                kind=view.kind,
                namespace=view.namespace,
                name=view.name,
            )
            finding = Finding(control_id=control, resource=ref)
            if fixer and not isinstance(run_fixer(fixer, view, finding, ctx), AlreadyCompliant):
                out.append(finding)
    return tuple(out)


def forget_parsed_values() -> None:
    """Drop the process-wide parses of values files and edited documents (memoised by
    content), so every timed plan reads its chart as a fresh run would, not from an earlier
    repeat's parse."""
    from bot.locate import helm, helm_render
    from fixers import edits

    helm_render._parse_values.cache_clear()
    helm._values_delta.cache_clear()
    edits.forget_documents()


def plan_once(chart: Path, findings: tuple[Finding, ...]) -> tuple[int, int]:
    forget_parsed_values()
    plan = build_plan(Report("kubescape", "bench", findings), chart)
    return len(plan.fixed_findings), len(plan.unfixable)


def renders_of_plan(chart: Path, findings: tuple[Finding, ...]) -> int:
    """How many times one plan of ``chart`` runs Helm's engine (a count that does not drift
    with the machine's load, unlike the times)."""
    from bot.locate import helm_render

    real = helm_render.SdkRenderer.render
    count = 0

    def counted(self: helm_render.SdkRenderer, *args: Any) -> dict[str, str]:
        nonlocal count
        count += 1
        return real(self, *args)

    helm_render.SdkRenderer.render = counted  # type: ignore[method-assign,assignment]
    try:
        plan_once(chart, findings)
    finally:
        helm_render.SdkRenderer.render = real  # type: ignore[method-assign]
    return count


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("charts", nargs="*", help="chart names under the corpus (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    names = args.charts or sorted(p.name for p in CORPUS.iterdir() if (p / "Chart.yaml").is_file())
    print(f"load average at start: {load_average()}")
    print(
        f"{'chart':<22} {'findings':>8} {'fixed':>5} {'render min/med ms':>18} "
        f"{'plan min/med ms':>18} {'ratio':>6} {'renders':>7}"
    )
    for name in names:
        chart = CORPUS / name
        findings = findings_of(chart)
        renders: list[float] = []
        plans: list[float] = []
        fixed = (0, 0)
        for _ in range(args.repeats):
            renders.append(timed(lambda: render_once(chart)))  # noqa: B023
            start = time.perf_counter()
            fixed = plan_once(chart, findings)
            plans.append(time.perf_counter() - start)
        r_min, r_med = min(renders) * 1e3, statistics.median(renders) * 1e3
        p_min, p_med = min(plans) * 1e3, statistics.median(plans) * 1e3
        print(
            f"{name:<22} {len(findings):>8} {fixed[0]:>5} {r_min:>8.0f} / {r_med:<8.0f} "
            f"{p_min:>8.0f} / {p_med:<8.0f} {p_min / r_min:>6.1f}x "
            f"{renders_of_plan(chart, findings):>7}",
            flush=True,
        )
    print(f"load average at end: {load_average()}")
    return 0


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (timings are only comparable under equal load)."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.is_file() else "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
