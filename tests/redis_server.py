"""A real Redis for tests: a private ``redis-server`` on a free port, else ``$REDIS_URL``.

Import ``redis_server_fixture`` into a test module to get the ``redis_server`` fixture. Tests that restart Redis need the
private server (``can_restart``); with only ``REDIS_URL`` they skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process without persistence (a restart loses everything, on purpose)."""

    def __init__(self, binary: str | None, url: str | None = None) -> None:
        self.binary = binary
        self.port = free_port() if binary else 0
        self.url = url or f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def can_restart(self) -> bool:
        return self.binary is not None

    def start(self) -> None:
        if self.binary is None:
            return
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 10) -> None:
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self, down_for: float = 0.5) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary:
        server = RedisServer(binary)
        server.start()
        try:
            yield server
        finally:
            server.stop()
        return
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip(
            "needs Redis: install redis-server (apt-get install redis-server) or set REDIS_URL"
        )
    server = RedisServer(None, url)
    try:
        server.wait_ready(timeout=2)
    except redis.ConnectionError:
        pytest.skip(f"REDIS_URL={url} does not answer")
    server.client().flushdb()
    yield server
