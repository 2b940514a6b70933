"""The chaos suite: real `ingest` processes, killed and starved on purpose. Small variants run by default;
`--run-slow` (or CHAOS_RUN_SLOW=1) adds the issue's full sizes, marked `slow`. The flag and the skipping of
`slow` tests without it live in tests/conftest.py, so `pytest --run-slow` works from the repository root too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis as redis_lib

from tasks.stack import PrivateRedis
from tests.chaos.harness import tree


@pytest.fixture
def rclient(private_redis: PrivateRedis) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(private_redis.url, decode_responses=True, socket_timeout=5,
                                    socket_connect_timeout=2)


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Every process a chaos test started must be gone when it ends (the harness kills whole groups)."""
    before = {p.pid for p in tree(os.getpid())}
    yield
    left = [p for p in tree(os.getpid()) if p.pid not in before and p.is_running() and p.status() != "zombie"]
    assert not left, f"processes left running: {[(p.pid, p.cmdline()[:4]) for p in left]}"
