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

# Reserve the next free start (one interval after the previous one) and return the wait in ms for it.
_NEXT_START = """
local start = math.max(now, tonumber(redis.call('GET', next_key) or '0'))
redis.call('SET', next_key, start + interval, 'PX', start - now + interval + 60000)
return start - now
"""
# KEYS: next-start key. ARGV: now (ms), interval (ms).
_RESERVE = "local next_key, now, interval = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])" + _NEXT_START
# A whole turn in one round trip. KEYS: lease set, next-start key, skip key. ARGV: now (ms), lease expiry (ms),
# cap, token, interval (ms; -1 to keep a slot reserved earlier). Returns -2 if the skip key exists, -1 if the
# host's concurrency cap is reached (nothing taken either way), else the wait in ms for the start slot.
_TURN = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -2 end
local next_key, now, interval = KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) - now)
if interval < 0 then return 0 end""" + _NEXT_START


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
                  max_defer: float, lease_ttl: float, unless: str | None = None) -> str | None:
    """Take a concurrency lease and a start slot (or keep `slot_at`, reserved earlier) in one round trip; sleep
    a short wait. `unless`: a key whose existence means the request is not needed (then None, nothing taken).

    Returns the lease token (release it when the request is done); raises HostBusy when the turn is further.
    """
    token = uuid.uuid4().hex
    now = time.time()
    now_ms = int(now * 1000)
    keys = (f"{prefix}host:{host}:leases", f"{prefix}host:{host}:next", unless or f"{prefix}host:{host}:never")
    wait_ms = int(client.eval(_TURN, 3, *keys, now_ms, now_ms + int(lease_ttl * 1000), policy.max_concurrency,
                              token, -1 if slot_at is not None else int(policy.interval * 1000)))
    if wait_ms == -2:
        return None
    if wait_ms == -1:
        raise HostBusy(BUSY_RETRY, slot_at)
    if slot_at is None:
        slot_at = now + wait_ms / 1000
    wait = slot_at - now
    if wait > INLINE_WAIT:
        release_lease(client, prefix, host, token)
        raise HostBusy(min(wait, max_defer), slot_at)
    if wait > 0:
        time.sleep(wait)
    return token


def release_lease(client: redis.Redis, prefix: str, host: str, token: str) -> None:
    client.zrem(f"{prefix}host:{host}:leases", token)
