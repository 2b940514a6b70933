"""Scheduler and feed-state costs at scale (issue: feed polling).

Registers N feeds (default 100,000) in a private redis-server, then measures:
- the scheduler tick (claim of the due feeds) when nothing is due and when 100 are due, median of many ticks;
- Redis memory per registered feed, and per URL in the seen-set (with its listing set);
- the CPU cost of a 304 poll against a full fetch + parse of a 50-item feed, on a local HTTP server.
Prints figures and, last, `scheduler: tick_ms=X tick_due100_ms=Y bytes_per_feed=B bytes_per_seen_url=U poll304_vs_parse=R`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.site import LocalSite, rss  # noqa: E402
from tasks.stack import PrivateRedis, free_port  # noqa: E402
from worker.fetch import FetchLimits, make_client  # noqa: E402
from worker.polling import poll_feed  # noqa: E402
from worker.registry import FeedState, Registry  # noqa: E402
from worker.seen import mark_seen, note_listing  # noqa: E402
from worker.urls import article_id  # noqa: E402


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def bench_registry(r: redis.Redis, n: int) -> tuple[float, float, float]:
    reg = Registry(r, "b:")
    base = used_memory(r)
    far = time.time() + 10**6
    pipe_size = 1000
    for start in range(0, n, pipe_size):
        for i in range(start, min(n, start + pipe_size)):
            reg.add(f"https://site{i % 500}.example/rss/section-{i}.rss", f"Section {i}", 300, now=far + i)
    per_feed = (used_memory(r) - base) / n
    idle = []
    for _ in range(200):
        t = time.perf_counter()
        reg.claim_due(time.time(), lease=60)
        idle.append((time.perf_counter() - t) * 1000)
    busy = []
    fids = list(r.zrange(reg.due_key, 0, -1))
    for k in range(50):
        now = time.time()
        r.zadd(reg.due_key, {fid: now - 1 for fid in fids[k * 100:(k + 1) * 100]}, xx=True)
        t = time.perf_counter()
        claimed = reg.claim_due(now, lease=10**7)
        busy.append((time.perf_counter() - t) * 1000)
        assert len(claimed) == 100
    return statistics.median(idle), statistics.median(busy), per_feed


def bench_seen(r: redis.Redis, n: int = 50_000) -> float:
    base = used_memory(r)
    ids = [article_id(f"https://x.example/news/article-{i}.html") for i in range(n)]
    for start in range(0, n, 1000):
        chunk = ids[start:start + 1000]
        mark_seen(r, "s:", chunk, 30 * 86400)
        note_listing(r, "s:", "https://x.example/rss/thoi-su.rss", chunk, 30 * 86400)
    return (used_memory(r) - base) / n


def bench_poll_cpu(rounds: int) -> tuple[float, float]:
    with LocalSite() as site, make_client("bench", 5, 5) as client:
        items = [{"title": f"Tin {i}", "link": f"https://x.example/{i}.html", "description": "Tóm tắt " * 20}
                 for i in range(50)]
        url = site.add("/rss", rss("Thời sự", site.base, items), "application/rss+xml")
        limits = FetchLimits(10**7, allow_private=True)
        state = FeedState(fid="f", url=url, section=None, interval=300)
        first = poll_feed(client, state, limits)
        cached = replace(state, etag=first.etag)

        def cpu(s: FeedState) -> float:
            t = time.process_time()
            for _ in range(rounds):
                poll_feed(client, s, limits)
            return (time.process_time() - t) / rounds * 1000

        return cpu(cached), cpu(state)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = PrivateRedis(Path(tmp), free_port()).start()
        try:
            r = redis.Redis.from_url(server.url, decode_responses=True)
            idle, busy, per_feed = bench_registry(r, args.feeds)
            per_seen = bench_seen(r)
        finally:
            server.stop()
    ms304, ms_parse = bench_poll_cpu(args.rounds)
    print(f"{args.feeds} feeds registered")
    print(f"  scheduler tick, nothing due:      {idle:.3f} ms (median of 200)")
    print(f"  scheduler tick, 100 feeds due:    {busy:.3f} ms (median of 50)")
    print(f"  Redis memory per feed:            {per_feed:.0f} bytes")
    print(f"  Redis memory per seen URL:        {per_seen:.0f} bytes (seen key + listing set, with TTLs)")
    print(f"  CPU per poll, 304 Not Modified:   {ms304:.2f} ms")
    print(f"  CPU per poll, 50-item full parse: {ms_parse:.2f} ms")
    print(f"scheduler: tick_ms={idle:.3f} tick_due100_ms={busy:.3f} bytes_per_feed={per_feed:.0f} "
          f"bytes_per_seen_url={per_seen:.0f} poll304_vs_parse={ms304 / ms_parse:.3f}")


if __name__ == "__main__":
    main()
