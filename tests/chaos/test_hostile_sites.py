"""Sites that misbehave at the network level: one that accepts connections and never answers (its feed too),
one that resets every connection, one that answers bytes that are not HTTP. The well-behaved site's articles
still arrive at the pace of its own rate limit.

Timeouts are short (connect 2 s, read 3 s, total 6 s; 2 attempts) so the hostile tasks end within the test.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import redis as redis_lib

from demo.site import LocalSite, rss
from tasks.stack import PrivateRedis
from tests.chaos.harness import PAGES, PREFIX, Processes, report, stream_ids, wait_until, write_feeds_file
from worker.failures import list_failures
from worker.urls import article_id, canonical_url

RATE = 4.0  # requests per second per host (INGEST_RATE_LIMIT)
ENV = {"INGEST_RATE_LIMIT": str(RATE), "INGEST_HOST_CONCURRENCY": "2", "INGEST_FETCH_CONCURRENCY": "6",
       "INGEST_CONNECT_TIMEOUT": "2", "INGEST_READ_TIMEOUT": "3", "INGEST_TOTAL_TIMEOUT": "6",
       "INGEST_MAX_ATTEMPTS": "2"}


@contextmanager
def black_hole() -> Iterator[str]:
    """A server that accepts connections and never sends a byte; yields its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()


def reset(h: BaseHTTPRequestHandler) -> None:
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.shutdown(socket.SHUT_RDWR)
    h.close_connection = True


def not_http(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(random.Random(3).randbytes(4096))
    h.close_connection = True


@pytest.mark.parametrize("good_articles", [pytest.param(24, id="24-good-articles"),
                                           pytest.param(120, id="120-good-articles", marks=pytest.mark.slow)])
def test_hostile_sites_do_not_slow_the_others(good_articles: int, private_redis: PrivateRedis,
                                              rclient: redis_lib.Redis, tmp_path: Path) -> None:
    r = rclient
    with LocalSite() as good, LocalSite() as portal, LocalSite() as resetting, LocalSite() as garbage, \
            black_hole() as hanging:
        page = PAGES[0].read_bytes()
        good_links = [good.add(f"/a{i}.html", page) for i in range(good_articles)]
        for i in range(6):
            resetting.add(f"/r{i}.html", "")
            resetting.routes[f"/r{i}.html"].handler = reset
            garbage.add(f"/g{i}.html", "")
            garbage.routes[f"/g{i}.html"].handler = not_http
        bad_links = ([f"{hanging}/h{i}.html" for i in range(6)] + [resetting.url(f"/r{i}.html") for i in range(6)]
                     + [garbage.url(f"/g{i}.html") for i in range(6)])
        feeds = [
            good.add("/rss", rss("Good", good.base, [{"title": f"G{i}", "link": u}
                                                      for i, u in enumerate(good_links)]), "text/xml"),
            portal.add("/bad.rss", rss("Bad", portal.base, [{"title": f"B{i}", "link": u}
                                                             for i, u in enumerate(bad_links)]), "text/xml"),
            f"{hanging}/rss", resetting.url("/rss"), garbage.url("/rss"),  # feeds on the hostile hosts too
        ]
        resetting.add("/rss", "")
        resetting.routes["/rss"].handler = reset
        garbage.add("/rss", "")
        garbage.routes["/rss"].handler = not_http
        procs = Processes(tmp_path, private_redis.url, write_feeds_file(tmp_path / "feeds.yaml", feeds), **ENV)
        started = time.time()
        try:
            procs.start("scheduler")
            procs.start("worker")
            goal = {article_id(canonical_url(u)) for u in good_links}
            wait_until(lambda: goal <= set(stream_ids(r)), 120, "the good site's articles")
            good_done = time.time()
            wait_until(lambda: len(list_failures(r, PREFIX, 1000)) >= len(bad_links) + 3, 90,
                       "every hostile article and feed to end as a recorded failure")
        finally:
            procs.stop_all()
        starts = sorted(t for t, path in good.log if path.startswith("/a"))
    failures = list_failures(r, PREFIX, 1000)
    reasons = {(str(f["stage"]), str(f["reason"])) for f in failures}
    span = starts[-1] - starts[0]
    report("hostile sites", good_articles=good_articles, good_span_s=round(span, 1),
           own_rate_floor_s=round((good_articles - 1) / RATE, 1), good_all_in_s=round(good_done - started, 1),
           failures=len(failures), reasons=sorted(reasons))
    # The good site is fetched at its own pace: its rate limit, plus a little for deferrals and extraction.
    assert span <= (good_articles - 1) / RATE * 1.5 + 4, span
    assert {u for u in bad_links} <= {str(f["url"]) for f in failures}
    assert {("fetch", "timeout"), ("fetch", "connection")} <= reasons
    assert {str(f["url"]) for f in failures if f["stage"] == "feed"} == set(feeds[2:])
