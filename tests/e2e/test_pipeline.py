"""End to end with a real Celery worker and real Redis: local feeds in, exactly the right articles out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import redis as redis_lib
from celery.contrib.testing.worker import start_worker

from config import Settings
from demo.site import LocalSite, rss
from tasks.app import QUEUES, app, configure
from tasks.poll import schedule_due_feeds
from worker.failures import list_failures
from worker.models import Article
from worker.registry import Registry

PAGES = Path(__file__).parent.parent / "data" / "site" / "pages"


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
def worker(settings: Settings) -> Iterator[None]:
    configure(settings.model_copy(update={"extract_processes": 1}))
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, queues=list(QUEUES),
                      shutdown_timeout=30):
        yield
    configure(settings)


def articles(r: redis_lib.Redis, stream: str) -> list[Article]:
    return [Article.from_json(f["article"]) for _id, f in r.xrange(stream)]


def flaky(body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    """A page that answers 503 once, then 200."""
    calls = {"n": 0}

    def handle(h: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        status, data = (503, b"busy") if calls["n"] == 1 else (200, body)
        h.send_response(status)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return handle


def test_feeds_to_stream_exactly_once(settings: Settings, worker: None, site: LocalSite, r: redis_lib.Redis) -> None:
    a = site.add("/suc-khoe/a.html", (PAGES / "vnexpress_2025-10-22_fundus.html").read_bytes())
    b = site.add("/kinh-doanh/b.html", (PAGES / "vnexpress_2023-11-02_htmldate.html").read_bytes())
    c = site.add("/phap-luat/c.html", b"")
    site.routes["/phap-luat/c.html"].handler = flaky((PAGES / "myfeed2012_thanhnien1.html").read_bytes())
    missing = site.url("/gone.html")
    pdf = site.add("/report.pdf", b"%PDF-1.4 ...", content_type="application/pdf")
    home = site.add("/", (Path(__file__).parent.parent / "data" / "pages" / "tuoitre_2015-03-23_homepage.html").read_bytes())
    one = site.add("/rss/one.rss", rss("Một", site.base, [
        {"title": "A", "link": a}, {"title": "A (dup)", "link": a + "?utm_source=rss#top"},
        {"title": "B", "link": b}, {"title": "Missing", "link": missing}, {"title": "PDF", "link": pdf},
        {"title": "Home", "link": home},
    ]), "application/rss+xml")
    two = site.add("/rss/two.rss", rss("Hai", site.base, [{"title": "A", "link": a}, {"title": "C", "link": c}]),
                   "application/rss+xml")
    reg = Registry(r, settings.key_prefix)
    fid_one = reg.add(one, "Sức khỏe", 3600)
    reg.add(two, None, 3600)

    schedule_due_feeds.delay()
    wait_for(lambda: r.xlen(settings.stream) >= 3 and len(list_failures(r, settings.key_prefix)) >= 3)
    time.sleep(1.0)  # anything extra (a duplicate) would arrive now

    got = articles(r, settings.stream)
    assert sorted(x.url for x in got) == sorted([a, b, c])
    by_url = {x.url: x for x in got}
    assert by_url[a].title == "Đau bụng kéo dài, phát hiện ung thư lymphoma ruột non"
    assert by_url[a].authors == ["Lê Phương"] and by_url[a].language == "vi"
    assert by_url[c].section == "Hai"  # no configured section: the feed's own title
    assert by_url[a].feed_url in (one, two)
    reasons = {f["url"]: (f["stage"], f["reason"]) for f in list_failures(r, settings.key_prefix)}
    assert reasons == {missing: ("fetch", "http_404"), pdf: ("fetch", "not_html"), home: ("extract", "listing_page")}
    assert site.hits["/phap-luat/c.html"] == 2  # retried after the 503
    state = reg.get(fid_one)
    assert state is not None and state.last_result == "ok"
    # Both feeds list A and are polled side by side: A counts for whichever poll saw it first, or for both when
    # they overlap (seen marks are written after the enqueue, so a crash cannot lose an entry). The entries only
    # one feed lists always count: B, Missing, PDF and Home in one, C in two.
    counts = {f.url: f.articles_found for f in reg.all()}
    assert 4 <= counts[one] <= 5 and 1 <= counts[two] <= 2 and counts[one] + counts[two] >= 6

    # Polling again finds nothing new: no fetches, no entries, no failures.
    hits = dict(site.hits)
    for f in reg.all():
        reg.set_status(f.fid, "active")
    schedule_due_feeds.delay()
    wait_for(lambda: site.hits.get("/rss/one.rss", 0) == 2 and site.hits.get("/rss/two.rss", 0) == 2)
    time.sleep(1.0)
    assert r.xlen(settings.stream) == 3
    assert len(list_failures(r, settings.key_prefix)) == 3
    assert {p: n for p, n in site.hits.items() if not p.startswith("/rss/")} == \
        {p: n for p, n in hits.items() if not p.startswith("/rss/")}


def test_feed_errors_are_recorded_and_the_feed_is_kept(settings: Settings, worker: None, site: LocalSite,
                                                       r: redis_lib.Redis) -> None:
    bad = site.add("/rss/broken.rss", b"<html>oops</html>", "text/html")
    reg = Registry(r, settings.key_prefix)
    fid = reg.add(bad, None, 60)
    reg.add(site.url("/rss/missing.rss"), None, 60)
    schedule_due_feeds.delay()
    wait_for(lambda: len(list_failures(r, settings.key_prefix)) >= 2)
    reasons = sorted(f["reason"] for f in list_failures(r, settings.key_prefix))
    assert reasons == ["feed_malformed", "http_404"]
    state = reg.get(fid)
    assert state is not None and state.consecutive_errors == 1 and state.next_poll and state.next_poll > time.time()
