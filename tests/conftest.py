"""Shared fixtures: a real redis-server on a free port, a local HTTP site on 127.0.0.1, test settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from config import Settings, load_settings
from demo.site import LocalSite
from tasks.stack import PrivateRedis, free_port

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"), free_port()).start()
    yield server
    server.stop()


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
