"""Webhook intake throughput: verify + de-duplicate + enqueue, over loopback HTTP.

    .venv/bin/python bench/bench_webhooks.py [--requests 5000] [--concurrency 50]

Starts uvicorn (the real `bot.web` app) in a separate process on a free port, with Redis for
de-duplication and a Celery enqueue into a private redis-server when one is on PATH (otherwise
in-memory de-duplication and a counting enqueue, said in the output). Floods
``POST /webhooks/gitlab`` with distinct GitLab note-hook deliveries from an httpx client with a
bounded number of requests in flight, and prints requests/s and latency percentiles.
Targets: >= 500 requests/s, p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.redis_server import RedisServer, free_port  # noqa: E402
from tests.test_web import note_hook  # noqa: E402

SECRET = "bench-webhook-secret"
PROJECT = "platform/cd-config"


def serve(port: int, redis_url: str | None) -> None:
    """The web process: real app, real dedupe and enqueue when Redis is there."""
    import uvicorn
    from celery import Celery

    from bot.settings import Settings
    from bot.web import MemoryDedupe, create_app
    from bot.web_settings import WebSettings

    settings = Settings(
        redis_url=redis_url or "redis://127.0.0.1:1/0",
        projects=[{"id": PROJECT}],
        webhook_secret=SECRET,
        branch_prefix="remedy/",
    )
    if redis_url:
        client = Celery("bench-web", broker=redis_url, set_as_current=False)

        def enqueue(name: str, event: dict[str, Any]) -> None:
            client.send_task(name, args=[event])

        app = create_app(settings, enqueue, web=WebSettings())
    else:

        def enqueue(name: str, event: dict[str, Any]) -> None:
            return None

        app = create_app(settings, enqueue, web=WebSettings(), dedupe=MemoryDedupe())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def flood(url: str, total: int, concurrency: int) -> tuple[float, list[float], int]:
    bodies = [json.dumps(note_hook(note_id=10_000 + n)).encode() for n in range(total)]
    headers = {
        "X-Gitlab-Token": SECRET,
        "X-Gitlab-Event": "Note Hook",
        "Content-Type": "application/json",
    }
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)

    # One keep-alive connection per sender: a single shared pool of 50 costs the client more
    # CPU than the server spends answering.
    clients = [
        httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1), timeout=10)
        for _ in range(concurrency)
    ]

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            n = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(
                "/webhooks/gitlab",
                content=bodies[n],
                headers={**headers, "Idempotency-Key": f"bench-{n}"},
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 202:
                failures += 1

    try:
        for client in clients:  # open the connections before the clock starts
            await client.get("/healthz")
        started = time.perf_counter()
        await asyncio.gather(*(sender(client) for client in clients))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return elapsed, latencies, failures


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_side(metrics: str) -> tuple[float, float]:
    """Mean handler time and the upper bound of its p99 bucket (ms) from /metrics."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in metrics.splitlines():
        if 'endpoint="gitlab"' not in line or not line.startswith("remedy_web_request_seconds"):
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("remedy_web_request_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), value))
        elif line.startswith("remedy_web_request_seconds_sum"):
            total = value
        elif line.startswith("remedy_web_request_seconds_count"):
            count = value
    p99 = next((le for le, seen in buckets if seen >= 0.99 * count), float("inf"))
    return (total / count * 1000 if count else 0.0), p99 * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--no-redis", action="store_true", help="in-memory dedupe, no queue (the HTTP floor)"
    )
    args = parser.parse_args(argv)

    binary = None if args.no_redis else shutil.which("redis-server")
    server = RedisServer(binary) if binary else None
    if server is not None:
        server.start()
    port = free_port()
    web = multiprocessing.get_context("spawn").Process(
        target=serve, args=(port, server.url if server else None), daemon=True
    )
    web.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the web process did not start") from None
                time.sleep(0.1)
        cpu_before = process_cpu(web.pid)
        elapsed, latencies, failures = asyncio.run(flood(url, args.requests, args.concurrency))
        cpu_ms = (process_cpu(web.pid) - cpu_before) * 1000 / args.requests
        queued = server.client().llen("celery") if server else None
        handler = server_side(httpx.get(f"{url}/metrics", timeout=5).text)
    finally:
        web.terminate()
        web.join(timeout=10)
        if server is not None:
            server.stop()

    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    mode = "Redis dedupe + Celery enqueue" if server else "in-memory dedupe, no queue (no redis)"
    rate = args.requests / elapsed
    print(f"webhooks: {args.requests} requests, concurrency {args.concurrency}, {mode}")
    print(
        f"  {rate:.0f} req/s; latency p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms"
    )
    print(f"  non-202 answers: {failures}" + (f"; tasks in the queue: {queued}" if server else ""))
    print(
        f"  server side: handler mean {handler[0]:.2f} ms, p99 <= {handler[1]:g} ms (histogram "
        f"bucket); web process CPU {cpu_ms:.2f} ms/request = {1000 / cpu_ms:.0f} req/s per core"
    )
    ok = rate >= 500 and pct(0.99) <= 50 and failures == 0
    print("  targets (>= 500 req/s, p99 <= 50 ms): " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
