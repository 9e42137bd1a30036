"""Subprocesses for end-to-end tests: Celery workers and beat in their own process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Procs:
    """Worker and beat subprocesses, each in its own process group, killed at teardown."""

    def __init__(self, env: dict[str, str], logs: Path, app: str = "bot.tasks") -> None:
        self.env = env
        self.logs = logs
        self.app = app
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        return self.run([sys.executable, "-m", "celery", "-A", self.app, *args], name=name)

    def entry_point(self, call: str, name: str) -> subprocess.Popen[bytes]:
        """Run one of the functions the ``remedy`` CLI calls, e.g. ``start_beat(settings)``."""
        code = f"from bot.settings import load_settings; from bot.tasks import *; settings = load_settings(); {call}"
        return self.run([sys.executable, "-c", code], name=name)

    def run(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self.start(
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            name="worker",
        )

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc, signal.SIGTERM if proc.poll() is None else signal.SIGKILL)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))
