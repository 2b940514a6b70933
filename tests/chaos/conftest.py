"""The chaos suite: real `ingest` processes, killed and starved on purpose. Small variants run by default;
`--run-slow` (or CHAOS_RUN_SLOW=1) adds the issue's full sizes, marked `slow`.

`pytest tests/chaos --run-slow` registers the flag here; from the repository root (`pytest --run-slow`) pytest
has not loaded this file yet when it parses the command line, so use the environment variable there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from tasks.stack import PrivateRedis, free_port
from tests.chaos.harness import tree


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the long chaos variants (the issue's full sizes)")


def run_slow(config: pytest.Config) -> bool:
    try:
        flag = bool(config.getoption("--run-slow"))
    except ValueError:  # the option was not registered (this conftest was not an initial one)
        flag = False
    return flag or os.environ.get("CHAOS_RUN_SLOW", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if run_slow(config):
        return
    skip = pytest.mark.skip(reason="long variant: run with --run-slow (or CHAOS_RUN_SLOW=1)")
    for item in items:
        if "slow" in item.keywords and "tests/chaos" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test alone (append-only), which the test may stop and start again."""
    server = PrivateRedis(tmp_path / "redis", free_port()).start()
    try:
        yield server
    finally:
        server.stop(kill=True)


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
