"""A worker process SIGKILLed several times while article tasks are in flight: every article ends up on the
stream exactly once, and no feed stalls.

Each kill takes the whole worker (its process group: the Celery process and its extraction process), and a new
worker starts at once, as a supervisor restarts it. The killed tasks wait in the broker's unacked set and come
back once older than INGEST_REDELIVERY_TIMEOUT, at the next sweep of that set (every tenth of the timeout).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis as redis_lib

from demo.site import LocalSite
from tasks.stack import PrivateRedis
from tests.chaos.harness import (
    PREFIX,
    STREAM,
    NewsSite,
    Processes,
    in_flight,
    report,
    tally,
    unacked_articles,
    wait_until,
    write_feeds_file,
)
from worker.failures import list_failures
from worker.registry import Registry

REDELIVERY = 10  # INGEST_REDELIVERY_TIMEOUT in the harness


@pytest.mark.parametrize(("n", "feeds", "kills"), [
    pytest.param(60, 6, 3, id="60-articles-3-kills"),
    pytest.param(500, 20, 5, id="500-articles-5-kills", marks=pytest.mark.slow),
])
def test_worker_sigkilled_mid_ingest_publishes_every_article_once(
        n: int, feeds: int, kills: int, private_redis: PrivateRedis, rclient: redis_lib.Redis,
        tmp_path: Path) -> None:
    r = rclient
    with LocalSite(latency=0.4) as site:
        news = NewsSite(site, n, feeds).build()
        procs = Processes(tmp_path, private_redis.url, write_feeds_file(tmp_path / "feeds.yaml", news.feed_urls))
        started = time.monotonic()
        killed_tasks: set[str] = set()
        try:
            procs.start("scheduler")
            worker = procs.start("worker")
            last_kill = 0.0
            for k in range(kills):
                # Kills spread over the run, each of a worker that is working: tasks in flight, by its own log.
                due = (k + 1) * n // (kills + 1)
                wait_until(lambda: r.xlen(STREAM) >= due and in_flight(procs.log_records(worker)) >= 2,  # noqa: B023
                           120, f"the worker to have tasks in flight at article {due} (kill {k + 1})")
                killed_tasks |= unacked_articles(r)
                procs.kill(worker)
                last_kill = time.monotonic()
                worker = procs.start("worker")
            published_at_last_kill = r.xlen(STREAM)
            # The last kill's tasks come back after the timeout; the rest of the run goes on meanwhile.
            deadline = REDELIVERY + 20 + (n - published_at_last_kill) / 5
            wait_until(lambda: r.xlen(STREAM) >= n, deadline, f"all {n} articles after the last kill")
            recovery = time.monotonic() - last_kill
            time.sleep(2)  # a duplicate, if any, would land now
            result = tally(r, news.links)
        finally:
            procs.stop_all()
    report("worker SIGKILL", articles=n, kills=kills, in_flight_at_kills=len(killed_tasks),
           published_at_last_kill=published_at_last_kill, recovery_s=round(recovery, 1),
           total_s=round(time.monotonic() - started, 1), figures=result.line())
    assert killed_tasks, "no task was in flight at any kill: the test proved nothing"
    assert result.lost == 0 and result.duplicates == 0 and result.unexpected == 0, result.line()
    assert list_failures(r, PREFIX) == []
    # No feed stalls: each was polled, successfully, and is scheduled again.
    states = Registry(r, PREFIX).all()
    assert len(states) == feeds
    assert all(s.last_result == "ok" and s.consecutive_errors == 0 and s.articles_found == n // feeds
               for s in states), [(s.url, s.last_result, s.articles_found) for s in states]
    assert r.zcard(PREFIX + "feeds:due") == feeds
