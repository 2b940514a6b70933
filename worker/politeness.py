"""Politeness shared by every worker process and machine, kept in Redis: a rate limit per host and a cap on
concurrent requests per host.

Rate: each request reserves the host's next free start time (one `interval` after the previous one), in a
Lua script, so all workers together keep the pace. A short wait is slept; a longer one raises `HostBusy` and
the task is deferred (retried later, carrying its reserved slot), so it never blocks a worker slot for long
and a backlog on one host costs each task about wait / max_defer deferrals, not a retry storm.
Concurrency: a sorted set of leases per host, each expiring on its own, so a crashed worker frees its lease.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis

# KEYS: next-start key. ARGV: now (ms), interval (ms). Reserves the next free start; returns the wait in ms.
_RESERVE = """
local now, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], start + interval, 'PX', start - now + interval + 60000)
return start - now
"""
# KEYS: lease set. ARGV: now (ms), lease expiry (ms), cap, token. Returns 1 if the lease was taken.
_LEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) - tonumber(ARGV[1]))
return 1
"""


@dataclass(frozen=True)
class HostPolicy:
    interval: float  # seconds between request starts to one host
    max_concurrency: int


INLINE_WAIT = 2.0  # seconds a task may sleep for its turn instead of being deferred
BUSY_RETRY = 1.0  # seconds before trying again when the host's concurrency cap is reached


class HostBusy(Exception):
    """Not this request's turn yet: retry after `countdown` seconds, keeping the reserved `slot_at`."""

    def __init__(self, countdown: float, slot_at: float | None) -> None:
        super().__init__(f"host busy, retry in {countdown:.1f}s")
        self.countdown = countdown
        self.slot_at = slot_at


def reserve_slot(client: redis.Redis, prefix: str, host: str, interval: float, now: float | None = None) -> float:
    """Reserve the host's next free start time; returns the seconds to wait for it."""
    now_ms = int((time.time() if now is None else now) * 1000)
    return int(client.eval(_RESERVE, 1, f"{prefix}host:{host}:next", now_ms, int(interval * 1000))) / 1000


def wait_for_turn(client: redis.Redis, prefix: str, host: str, policy: HostPolicy, *, slot_at: float | None,
                  max_defer: float, lease_ttl: float) -> str:
    """Take a concurrency lease and a start slot (or keep `slot_at`, reserved earlier); sleep a short wait.

    Returns the lease token (release it when the request is done); raises HostBusy when the turn is further.
    """
    token = take_lease(client, prefix, host, policy.max_concurrency, lease_ttl)
    if token is None:
        raise HostBusy(BUSY_RETRY, slot_at)
    now = time.time()
    if slot_at is None:
        slot_at = now + reserve_slot(client, prefix, host, policy.interval, now)
    wait = slot_at - now
    if wait > INLINE_WAIT:
        release_lease(client, prefix, host, token)
        raise HostBusy(min(wait, max_defer), slot_at)
    if wait > 0:
        time.sleep(wait)
    return token


def take_lease(client: redis.Redis, prefix: str, host: str, cap: int, ttl: float) -> str | None:
    """A concurrency lease on `host`, or None when `cap` requests are already running there."""
    token = uuid.uuid4().hex
    now_ms = int(time.time() * 1000)
    taken = client.eval(_LEASE, 1, f"{prefix}host:{host}:leases", now_ms, now_ms + int(ttl * 1000), cap, token)
    return token if taken else None


def release_lease(client: redis.Redis, prefix: str, host: str, token: str) -> None:
    client.zrem(f"{prefix}host:{host}:leases", token)
