"""Politeness through Redis: shared rate limits, concurrency leases, robots.txt, deferral."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

from config import Settings
from demo.site import LocalSite, rss
from tasks.app import configure
from tasks.poll import schedule_due_feeds
from worker.errors import PermanentError
from worker.failures import list_failures
from worker.fetch import FetchLimits, make_client
from worker.politeness import HostBusy, HostPolicy, release_lease, reserve_slot, wait_for_turn
from worker.registry import Registry
from worker.robots import check_robots, load_robots

PAGE = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_bytes()
LIMITS = FetchLimits(max_bytes=1_000_000, allow_private=True)


def test_slots_are_handed_out_one_interval_apart(r: redis_lib.Redis) -> None:
    waits = [reserve_slot(r, "t:", "a.vn", 1.0, now=100.0) for _ in range(4)]
    assert waits == [0.0, 1.0, 2.0, 3.0]
    assert reserve_slot(r, "t:", "b.vn", 1.0, now=100.0) == 0.0  # another host has its own pace
    assert reserve_slot(r, "t:", "a.vn", 1.0, now=110.0) == 0.0  # idle long enough: no wait


def lease(r: redis_lib.Redis, host: str, cap: int, ttl: float, unless: str | None = None) -> str | None:
    """A turn with no pace, so only the concurrency cap applies; None when the cap is reached."""
    try:
        return wait_for_turn(r, "t:", host, HostPolicy(interval=0.0, max_concurrency=cap), slot_at=None,
                             max_defer=3.0, lease_ttl=ttl, unless=unless)
    except HostBusy:
        return None


def test_concurrency_leases(r: redis_lib.Redis) -> None:
    a, b = lease(r, "h", 2, ttl=60), lease(r, "h", 2, ttl=60)
    assert a and b and lease(r, "h", 2, ttl=60) is None
    release_lease(r, "t:", "h", a)
    assert lease(r, "h", 2, ttl=60) is not None
    assert lease(r, "x", 1, ttl=0.05) and lease(r, "x", 1, ttl=60) is None
    time.sleep(0.1)  # a crashed holder's lease expires by itself
    assert lease(r, "x", 1, ttl=60) is not None


def test_no_turn_is_taken_when_the_request_is_not_needed(r: redis_lib.Redis) -> None:
    r.set("t:published:a1", "1")
    assert lease(r, "u", 1, ttl=60, unless="t:published:a1") is None
    assert r.zcard("t:host:u:leases") == 0 and r.get("t:host:u:next") is None  # neither lease nor slot taken
    assert lease(r, "u", 1, ttl=60, unless="t:published:a2") is not None


def test_a_far_turn_defers_with_its_slot(r: redis_lib.Redis) -> None:
    policy = HostPolicy(interval=5.0, max_concurrency=4)
    first = wait_for_turn(r, "t:", "h", policy, slot_at=None, max_defer=3.0, lease_ttl=60)
    with pytest.raises(HostBusy) as busy:
        wait_for_turn(r, "t:", "h", policy, slot_at=None, max_defer=3.0, lease_ttl=60)
    assert busy.value.countdown == 3.0 and busy.value.slot_at is not None
    assert 4.5 < busy.value.slot_at - time.time() <= 5.0
    assert r.zcard("t:host:h:leases") == 1  # the deferred task gave its lease back
    release_lease(r, "t:", "h", first)


def test_robots_txt(r: redis_lib.Redis, site: LocalSite) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow: /private/\nCrawl-delay: 3\n", "text/plain")
    with make_client("news-ingest-test/0", 5.0, 5.0) as http:
        rules = load_robots(r, http, "t:", site.url("/news/a.html"), LIMITS, ttl=60)
        check_robots(rules, site.url("/news/a.html"), "news-ingest")
        with pytest.raises(PermanentError, match="robots"):
            check_robots(rules, site.url("/private/b.html"), "news-ingest")
        assert rules.crawl_delay("news-ingest") == 3
        load_robots(r, http, "t:", site.url("/other.html"), LIMITS, ttl=60)
    assert site.hits["/robots.txt"] == 1  # cached in Redis for every worker


def test_missing_robots_allows_everything(r: redis_lib.Redis, site: LocalSite) -> None:
    with make_client("news-ingest-test/0", 5.0, 5.0) as http:
        rules = load_robots(r, http, "t:", site.url("/a.html"), LIMITS, ttl=60)
    check_robots(rules, site.url("/a.html"), "news-ingest")


def _workers(settings: Settings, n: int, env_extra: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update({"REDIS_URL": settings.redis_url, "INGEST_ALLOW_PRIVATE_NETWORKS": "true",
                "INGEST_EXTRACT_PROCESSES": "0", "INGEST_FEEDS_FILE": str(settings.feeds_file), **env_extra})
    return [subprocess.Popen([sys.executable, "-m", "tasks.cli", "worker", "--name", f"w{i}@%h"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n)]


def _wait(check, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_workers_share_one_hosts_rate_limit(settings: Settings, site: LocalSite, r: redis_lib.Redis) -> None:
    links = [site.add(f"/a{i}.html", PAGE) for i in range(8)]
    feed = site.add("/rss", rss("S", site.base, [{"title": f"A{i}", "link": u} for i, u in enumerate(links)]),
                    "text/xml")
    configure(settings)
    Registry(r, settings.key_prefix).add(feed, None, 3600)
    procs = _workers(settings, 2, {"INGEST_RATE_LIMIT": "4", "INGEST_HOST_CONCURRENCY": "8"})
    try:
        schedule_due_feeds.delay()
        _wait(lambda: r.xlen(settings.stream) == 8)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    starts = sorted(t for t, path in site.log if path.startswith("/a"))
    assert len(starts) == 8
    # 4 requests/s across both workers: no window holds more requests than its length allows (one spare for a
    # request that started late, bunching with the next on-time one).
    for i, a in enumerate(starts):
        for j in range(i + 1, len(starts)):
            assert j - i <= (starts[j] - a) / 0.25 + 1.1, f"requests {i}..{j} within {starts[j] - a:.2f}s"
    assert starts[-1] - starts[0] >= 7 * 0.25 * 0.9
    assert list_failures(r, settings.key_prefix) == []


def test_a_slow_host_defers_without_blocking_others(settings: Settings, r: redis_lib.Redis) -> None:
    with LocalSite() as slow, LocalSite() as fast:
        slow_links = [slow.add(f"/s{i}.html", PAGE) for i in range(3)]
        fast_link = fast.add("/f.html", PAGE)
        items = [{"title": f"S{i}", "link": u} for i, u in enumerate(slow_links)] + [{"title": "F", "link": fast_link}]
        feed = slow.add("/rss", rss("S", slow.base, items), "text/xml")
        configure(settings)
        Registry(r, settings.key_prefix).add(feed, None, 3600)
        # One worker thread, and 2.5 s between requests to the slow host: waiting there must not hold the thread.
        env = {"INGEST_RATE_LIMIT": "0.4", "INGEST_FETCH_CONCURRENCY": "1", "INGEST_HOST_CONCURRENCY": "8"}
        procs = _workers(settings, 1, env)
        try:
            schedule_due_feeds.delay()
            _wait(lambda: r.xlen(settings.stream) == 4)
        finally:
            procs[0].terminate()
            procs[0].wait(30)
        order = [f["url"] for _id, f in r.xrange(settings.stream)]
        assert order.index(fast_link) < order.index(slow_links[1])
        slow_starts = sorted(t for t, p in slow.log if p.startswith("/s"))
        assert slow_starts[-1] - slow_starts[0] >= 2 * 2.5 * 0.9
    assert list_failures(r, settings.key_prefix) == []
