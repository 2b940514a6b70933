"""A worker process SIGKILLed several times while article tasks are in flight: every article ends up on the
stream exactly once, and no feed stalls.

Each kill takes the whole worker (its process group: the Celery process and its extraction process), and a new
worker starts at once, as a supervisor restarts it. The killed tasks wait in the broker's unacked set and come
back once older than INGEST_REDELIVERY_TIMEOUT, at the next sweep of that set (every tenth of the timeout).

Each sweep runs under a lock in Redis (kombu's `unacked_mutex`), which expires after `unacked_mutex_expire`
(kombu's default: 300 s). A worker killed during a sweep leaves the lock behind, and no worker sweeps until it
expires: its tasks come back minutes late (BUG-6). Randomly timed kills hit the sweep now and then (it holds the
lock 0.2 % of the time on an idle machine, 3 % with both cores busy: the flake of the first test), so the second
test kills the worker inside a sweep on purpose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib

from demo.site import LocalSite
from tasks.stack import PrivateRedis
from tests.chaos.harness import (
    PREFIX,
    REDELIVERY,
    STREAM,
    UNACKED_MUTEX,
    NewsSite,
    Processes,
    broker_state,
    in_flight,
    report,
    stream_ids,
    tally,
    unacked_articles,
    wait_until,
    write_feeds_file,
)
from worker.failures import list_failures
from worker.registry import Registry


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
            wait_until(lambda: r.xlen(STREAM) >= n, deadline, f"all {n} articles after the last kill",
                       explain=lambda: broker_state(r))
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


class SweepLockLeft(AssertionError):
    """The lock of a dead worker's sweep outlives the redelivery timeout of the tasks it stranded."""


def test_a_worker_killed_inside_a_sweep_delays_no_redelivery(
        private_redis: PrivateRedis, rclient: redis_lib.Redis, tmp_path: Path) -> None:
    r = rclient
    n = 20
    with LocalSite(latency=0.4) as site:
        news = NewsSite(site, n, 2).build()
        procs = Processes(tmp_path, private_redis.url, write_feeds_file(tmp_path / "feeds.yaml", news.feed_urls))
        try:
            procs.start("scheduler")
            worker = procs.start("worker")
            for attempt in range(1, 6):
                wait_until(lambda: in_flight(procs.log_records(worker)) >= 2, 60,  # noqa: B023
                           f"the worker to have tasks in flight (attempt {attempt})")
                stranded, held = kill_inside_a_sweep(r, worker)
                killed_at = time.monotonic()
                procs.kill(worker)  # reaps the group (the orphaned extraction process may take seconds)
                worker = procs.start("worker")
                if held > 0:  # the kill landed inside the sweep (else it came just after: try again)
                    break
            else:
                pytest.fail("no kill landed inside a sweep in 5 attempts")
            assert stranded, "no task was in flight at the kill: the test proved nothing"
            # The lock a dead sweeper leaves must be gone before the tasks it strands are due again.
            if held > REDELIVERY:
                raise SweepLockLeft(f"the dead worker's sweep lock holds for {held:.0f} s more")
            # The first test's window: the timeout, the restart, and the stranded articles' own work.
            window = REDELIVERY + 20 + len(stranded) / 5 - (time.monotonic() - killed_at)
            wait_until(lambda: r.xlen(STREAM) >= n, window, f"all {n} articles after the kill",
                       explain=lambda: broker_state(r))
            recovery = time.monotonic() - killed_at
            time.sleep(2)
            result = tally(r, news.links)
        finally:
            procs.stop_all()
    report("worker SIGKILL inside a sweep", attempts=attempt, stranded=len(stranded), lock_held_s=round(held, 1),
           recovery_s=round(recovery, 1), figures=result.line())
    assert result.lost == 0 and result.duplicates == 0, result.line()


def kill_inside_a_sweep(r: redis_lib.Redis, worker: subprocess.Popen[bytes]) -> tuple[set[str], float]:
    """SIGKILL the worker's process group as soon as its sweep (once a second) takes the lock. Returns the
    articles of the tasks it held unacked then, and for how many seconds more the lock is held (0: the sweep
    released it before the kill landed)."""
    deadline = time.monotonic() + 10
    while not r.exists(UNACKED_MUTEX):
        assert time.monotonic() < deadline, "the worker never swept the unacked set"
    os.killpg(worker.pid, signal.SIGKILL)  # its own group: the worker and its extraction process
    held = max(0.0, r.pttl(UNACKED_MUTEX) / 1000)
    return unacked_articles(r) - set(stream_ids(r)), held
