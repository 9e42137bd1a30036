"""Per-project mutual exclusion in Redis: SET NX PX with an owner token and a fencing number.

The lock lives at most ``timeout`` seconds, so a holder that dies frees it by expiry. The owner
token is the Celery task id: a redelivery of the same task (its worker was killed) may take back
the lock its earlier delivery left behind instead of waiting for the expiry. GitLab, not the lock,
is the source of truth; the lock only keeps two runs of one project from working at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass

import redis

# Delete / extend only while we still own the key: a lock that expired and was taken by someone
# else must not be released or prolonged by its former owner.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass(frozen=True)
class Lease:
    """A held lock: its key, owner token and fencing number (grows with every acquisition)."""

    key: str
    token: str
    fence: int
    reclaimed: bool = False
    """True when the lock was taken back from an earlier delivery of the same task."""


def lock_key(*parts: str) -> str:
    return "remedy:lock:" + ":".join(parts)


def acquire(client: redis.Redis, key: str, token: str, timeout: float) -> Lease | None:
    """Take the lock, or None when someone else holds it."""
    ttl_ms = max(1, int(timeout * 1000))
    reclaimed = False
    if not client.set(key, token, nx=True, px=ttl_ms):
        holder = client.get(key)
        if holder is None or _text(holder) != token:
            return None
        client.pexpire(key, ttl_ms)
        reclaimed = True
    fence = int(client.incr(key + ":fence"))
    return Lease(key=key, token=token, fence=fence, reclaimed=reclaimed)


def release(client: redis.Redis, lease: Lease) -> bool:
    """Release if still ours; False when it had expired (and maybe been taken by another)."""
    return bool(client.eval(_RELEASE, 1, lease.key, lease.token))


def extend(client: redis.Redis, lease: Lease, timeout: float) -> bool:
    """Restart the lock's lifetime if still ours."""
    return bool(client.eval(_EXTEND, 1, lease.key, lease.token, max(1, int(timeout * 1000))))


def holder(client: redis.Redis, key: str) -> str | None:
    value = client.get(key)
    return None if value is None else _text(value)


def _text(value: bytes | str) -> str:
    """A Redis reply as text (these clients return bytes unless ``decode_responses``)."""
    return value.decode() if isinstance(value, bytes) else value


def held(
    client: redis.Redis, key: str, token: str, timeout: float
) -> AbstractContextManager[Lease | None]:
    """``with held(...) as lease:`` - lease is None when the lock is busy; released in finally."""
    return waiting(client, key, token, timeout, wait=0)


@contextmanager
def waiting(
    client: redis.Redis, key: str, token: str, timeout: float, wait: float, poll: float = 0.05
) -> Iterator[Lease | None]:
    """Like `held`, but waits up to ``wait`` seconds for a busy lock (None: still busy).

    For short critical sections many tasks queue on, such as "count the open merge requests,
    then open one" under a project's limits."""
    deadline = time.monotonic() + wait
    lease = acquire(client, key, token, timeout)
    while lease is None and time.monotonic() < deadline:
        time.sleep(poll)
        lease = acquire(client, key, token, timeout)
    try:
        yield lease
    finally:
        if lease is not None:
            # Redis went away: the key expires on its own (or vanished with Redis).
            with suppress(redis.RedisError):
                release(client, lease)
