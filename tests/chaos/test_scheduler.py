"""The scheduler SIGKILLed, then started twice at once (same host, same state directory): no feed is polled
twice in one interval, and ticks go on.

Feeds get a short interval (3 s, also their minimum) so each is polled several times while two schedulers run;
every request for a feed is timed on the local site, and no two may be closer than the interval.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis as redis_lib

from demo.site import LocalSite
from tasks.stack import PrivateRedis
from tests.chaos.harness import PREFIX, STREAM, NewsSite, Processes, report, wait_until, write_feeds_file

INTERVAL = 3


@pytest.mark.parametrize(("feeds", "observe"), [
    pytest.param(4, 15.0, id="4-feeds-15s"),
    pytest.param(40, 60.0, id="40-feeds-60s", marks=pytest.mark.slow),
])
def test_two_schedulers_at_once_never_poll_a_feed_twice_in_an_interval(
        feeds: int, observe: float, private_redis: PrivateRedis, rclient: redis_lib.Redis, tmp_path: Path) -> None:
    r = rclient
    with LocalSite() as site:
        news = NewsSite(site, feeds * 2, feeds).build()
        config = write_feeds_file(tmp_path / "feeds.yaml", news.feed_urls, interval=INTERVAL, min_interval=INTERVAL)
        procs = Processes(tmp_path, private_redis.url, config)
        try:
            first = procs.start("scheduler")
            procs.start("worker")
            wait_until(lambda: r.xlen(STREAM) >= feeds * 2 and
                       min(map(len, news.feed_requests().values())) >= 2, 60, "every feed polled twice")
            procs.kill(first)
            killed_at = time.time()
            second, third = procs.start("scheduler"), procs.start("scheduler")
            time.sleep(observe)
            alive = [p.poll() is None for p in (second, third)]
            last_tick = float(r.get(PREFIX + "scheduler:last_tick") or 0)
            requests = news.feed_requests()
        finally:
            procs.stop_all()
    gaps = [b - a for times in requests.values() for a, b in zip(times, times[1:], strict=False)]
    after = {url: sum(1 for t in times if t > killed_at) for url, times in requests.items()}
    report("two schedulers", feeds=feeds, polls=sum(map(len, requests.values())),
           polls_after_restart=sum(after.values()), min_gap_s=round(min(gaps), 2),
           schedulers_alive=alive)
    assert min(gaps) >= INTERVAL - 0.05, sorted(gaps)[:5]
    assert all(after.values()), "a feed was not polled after the schedulers restarted"
    assert last_tick > killed_at and any(alive), "no scheduler is ticking"
