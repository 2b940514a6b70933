"""Shared fixtures: a real redis-server on a free port, a local HTTP site on 127.0.0.1, test settings; and the
`--run-slow` flag: tests marked `slow` (the issue's full sizes, in tests/chaos and the hostile-input suite) are
skipped unless it is given or CHAOS_RUN_SLOW is set (to anything but 0).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from config import Settings, load_settings
from demo.site import LocalSite
from tasks.stack import PrivateRedis, free_port

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (the issue's full sizes); or set CHAOS_RUN_SLOW=1")


def run_slow(config: pytest.Config) -> bool:
    return bool(config.getoption("--run-slow")) or os.environ.get("CHAOS_RUN_SLOW", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if run_slow(config):
        return
    skip = pytest.mark.skip(reason="long variant: run with --run-slow (or CHAOS_RUN_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"), free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test alone (append-only), which the test may stop and start again."""
    server = PrivateRedis(tmp_path / "redis", free_port()).start()
    try:
        yield server
    finally:
        server.stop(kill=True)


@pytest.fixture
def redis_url(redis_server: PrivateRedis) -> str:
    redis_lib.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite() as s:
        yield s


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds: []\n")
    return load_settings(
        {}, redis_url=redis_url, allow_private_networks=True, extract_processes=0, feeds_file=feeds,
        var_dir=tmp_path / "var", retry_base_delay=0.2, retry_max_delay=1.0, max_attempts=3, tick_seconds=0.5,
        rate_limit=1000.0, host_concurrency=64,  # every test site is one host, 127.0.0.1
    )
