"""The feed tasks' bodies, called directly against real Redis and a local site (no worker needed)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis as redis_lib

from config import Settings
from demo.site import LocalSite, rss
from tasks.app import ARTICLES_QUEUE, FEEDS_QUEUE, configure
from tasks.ingest import ingest_article, ingest_batch
from tasks.poll import poll_feed, schedule_due_feeds
from tasks.runtime import Runtime
from tests.factories import queued_tasks, queued_urls
from worker.errors import TemporaryError
from worker.failures import list_failures
from worker.models import Article
from worker.registry import GONE, Registry

PAGE = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_bytes()


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    yield configure(settings)
    configure(settings)


def queued(r: redis_lib.Redis, queue: str) -> int:
    return int(r.llen(queue))


def test_same_article_in_two_sections_is_ingested_once_and_records_both(
        rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    page = site.add("/a.html", PAGE)
    one = site.add("/rss/one", rss("One", site.base, [{"title": "A", "link": page, "guid": "g1"}]), "text/xml")
    two = site.add("/rss/two", rss("Two", site.base, [{"title": "A", "link": page + "?utm_campaign=x",
                                                         "guid": "another-guid"}]), "text/xml")
    reg = Registry(r, rt.settings.key_prefix)
    assert poll_feed(reg.add(one, "Một", 300)) == 1
    assert poll_feed(reg.add(two, "Hai", 300)) == 0  # a different guid alone does not duplicate it
    assert queued_urls(r) == [page]
    entry_id = ingest_article(page, one, "Một", {"url": page, "title": "A"}, feed_title="One")
    assert entry_id is not None
    article = Article.from_json(r.xrange(rt.settings.stream)[0][1]["article"])
    assert article.feed_url == one and set(article.feed_urls) == {one, two} and article.section == "Một"
    assert ingest_article(page, two, "Hai", None) is None  # already published: nothing fetched or written
    assert r.xlen(rt.settings.stream) == 1 and site.hits["/a.html"] == 1


def test_permanent_redirect_updates_the_stored_url(rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    new = site.add("/new.rss", rss("S", site.base, []), "text/xml")
    site.add("/old.rss", "", status=308, headers={"Location": "/new.rss"})
    reg = Registry(r, rt.settings.key_prefix)
    fid = reg.add(site.url("/old.rss"), None, 300)
    poll_feed(fid)
    assert reg.get(fid).url == new  # type: ignore[union-attr]
    reg.set_status(fid, "active")
    poll_feed(fid)
    assert site.hits["/old.rss"] == 1 and site.hits["/new.rss"] == 2
    reg.add(site.url("/old.rss"), None, 300)  # re-seeding from the config keeps what the redirect taught
    assert reg.get(fid).url == new  # type: ignore[union-attr]
    assert reg.find(new).fid == fid  # type: ignore[union-attr]


def test_gone_feed_stops_being_polled(rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    reg = Registry(r, rt.settings.key_prefix)
    fid = reg.add(site.add("/gone.rss", "", status=410), None, 300)
    poll_feed(fid)
    state = reg.get(fid)
    assert state is not None and state.status == GONE and state.health == GONE
    assert r.zscore(reg.due_key, fid) is None


def test_backoff_then_recovery(rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    reg = Registry(r, rt.settings.key_prefix)
    fid = reg.add(site.add("/flaky.rss", "down", status=503), None, 200)
    waits = []
    for _ in range(3):
        before = datetime.now(UTC).timestamp()
        poll_feed(fid)
        waits.append(reg.get(fid).next_poll - before)  # type: ignore[union-attr,operator]
    assert waits[0] >= 400 and waits[1] >= 800 and waits[2] >= 1600  # 200 s doubled per error
    assert reg.get(fid).consecutive_errors == 3  # type: ignore[union-attr]
    site.add("/flaky.rss", rss("S", site.base, []), "text/xml")
    poll_feed(fid)
    state = reg.get(fid)
    assert state is not None and state.consecutive_errors == 0 and state.last_result == "ok"
    assert state.next_poll is not None and state.next_poll - datetime.now(UTC).timestamp() < 400


def test_old_entries_are_skipped_when_a_max_age_is_set(rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    now = datetime.now(UTC)
    url = site.add("/rss", rss("S", site.base, [
        {"title": "old", "link": site.url("/old.html"), "pubDate": now - timedelta(days=10)},
        {"title": "new", "link": site.url("/new.html"), "pubDate": now - timedelta(hours=1)},
    ]), "text/xml")
    fid = Registry(r, rt.settings.key_prefix).add(url, None, 300, max_entry_age=86400)
    assert poll_feed(fid) == 1


def test_only_one_scheduler_enqueues_per_tick(rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    reg = Registry(r, rt.settings.key_prefix)
    for i in range(5):
        reg.add(site.url(f"/rss/{i}"), None, 300)
    assert schedule_due_feeds() == 5
    assert schedule_due_feeds() == 0  # a second scheduler in the same tick: locked out
    r.delete(rt.settings.key("lock", "scheduler"))
    assert schedule_due_feeds() == 0  # and nothing is due again: each feed was leased
    assert queued(r, FEEDS_QUEUE) == 5


def atom(link: str, updated: str) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
            f'<entry><title>A</title><link href="{link}"/><id>urn:a</id><updated>{updated}</updated></entry></feed>')


def test_updated_entry_with_changed_text_publishes_an_update(rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    page = site.add("/a.html", PAGE)
    feed = site.add("/atom", atom(page, "2026-01-01T10:00:00Z"), "application/atom+xml")
    reg = Registry(r, rt.settings.key_prefix)
    fid = reg.add(feed, None, 300)

    def poll_and_ingest() -> None:
        reg.set_status(fid, "active")
        poll_feed(fid)
        for name, args, kwargs in queued_tasks(r):  # run the queued tasks' bodies right here
            (ingest_batch if name == "news.ingest_batch" else ingest_article)(*args, **kwargs)
        r.delete(ARTICLES_QUEUE)

    poll_and_ingest()
    poll_and_ingest()  # nothing moved: no task at all
    site.add("/atom", atom(page, "2026-01-01T12:00:00Z"), "application/atom+xml")
    poll_and_ingest()  # the date moved but the text did not: fetched again, nothing published
    assert site.hits["/a.html"] == 2
    site.add("/a.html", PAGE.replace("Bệnh xuất hiện chủ yếu".encode(), "Bệnh thường xuất hiện".encode()))
    site.add("/atom", atom(page, "2026-01-02T08:00:00Z"), "application/atom+xml")
    poll_and_ingest()
    entries = [f for _id, f in r.xrange(rt.settings.stream)]
    assert [(e["event"], e["revision"]) for e in entries] == [("article.created", "1"), ("article.updated", "2")]
    assert "Bệnh thường xuất hiện" in Article.from_json(entries[1]["article"]).text


def test_a_page_disallowed_by_robots_is_a_failure_and_others_go_on(rt: Runtime, site: LocalSite,
                                                                   r: redis_lib.Redis) -> None:
    site.add("/robots.txt", "User-agent: news-ingest\nDisallow: /private/\n", "text/plain")
    private = site.add("/private/a.html", PAGE)
    public = site.add("/news/b.html", PAGE)
    assert ingest_article(private, None, None, None) is None
    assert ingest_article(public, None, None, None) is not None
    failures = list_failures(r, rt.settings.key_prefix)
    assert [(f["url"], f["stage"], f["reason"]) for f in failures] == [(private, "fetch", "robots")]
    assert "/private/a.html" not in site.hits and site.hits["/robots.txt"] == 1


def test_a_poll_loads_the_sites_robots_txt_while_the_feed_downloads(rt: Runtime, site: LocalSite,
                                                                      r: redis_lib.Redis) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
    page = site.add("/news/a.html", PAGE)
    feed = site.add("/rss", rss("S", site.base, [{"title": "A", "link": page}]), "text/xml")
    assert poll_feed(Registry(r, rt.settings.key_prefix).add(feed, "S", 300)) == 1
    deadline = time.monotonic() + 10
    while rt._robots_in_memory(site.url("/robots.txt")) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert site.hits.get("/robots.txt") == 1
    assert ingest_article(page, feed, "S", None) is not None  # found the rules ready: no second request
    assert site.hits["/robots.txt"] == 1


def test_threads_that_need_the_same_robots_txt_at_once_fetch_it_once(rt: Runtime) -> None:
    with LocalSite(latency=0.3) as slow:
        slow.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
        with ThreadPoolExecutor(8) as pool:
            rules = list(pool.map(lambda i: rt.robots(slow.url(f"/news/{i}.html")), range(8)))
        assert slow.hits["/robots.txt"] == 1
        assert all(not rule.can_fetch(slow.url("/private/x.html"), "news-ingest") for rule in rules)


def test_threads_waiting_for_a_site_that_never_answers_share_one_attempt_and_its_error(
        settings: Settings) -> None:
    rt = configure(settings.model_copy(update={"connect_timeout": 1, "read_timeout": 1, "total_timeout": 2}))
    listener, held = socket.socket(), []
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepting = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepting.start()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            errors = list(pool.map(lambda i: _error_of(lambda: rt.robots(f"{base}/news/{i}.html")), range(6)))
        elapsed = time.monotonic() - started
    finally:
        listener.close()
        for conn in held:
            conn.close()
        configure(settings)
    assert all(isinstance(e, TemporaryError) and e.reason == "timeout" for e in errors), errors
    assert len(held) == 1  # one connection to the site: the other threads waited for its answer
    assert elapsed < 5  # together, not one after the other (6 x 2 s)


def _error_of(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - returned for the test to look at
        return exc
    return None


def test_the_same_story_under_another_url_carries_duplicate_of(rt: Runtime, site: LocalSite,
                                                               r: redis_lib.Redis) -> None:
    first = site.add("/a.html", PAGE)
    second = site.add("/copy/b.html", PAGE.replace("Ngày 22/10,".encode(), "Hôm 22/10,".encode()))
    other = site.add("/other.html", (Path(__file__).parents[1] / "data" / "site" / "pages" /
                                     "vnexpress_2023-11-02_htmldate.html").read_bytes())
    for url in (first, second, other):
        assert ingest_article(url, None, None, None) is not None
    got = {a.url: a for a in (Article.from_json(f["article"]) for _id, f in r.xrange(rt.settings.stream))}
    assert got[first].duplicate_of is None and got[other].duplicate_of is None
    assert got[second].duplicate_of == got[first].id


def test_a_redelivered_poll_takes_over_the_lock_its_dead_first_delivery_left(
        rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    """Once a bug: a worker killed mid-poll left the feed's lock, so the poll's redelivery found it held, polled
    nothing and was acked, and the feed waited for its claim to expire (70 s in the chaos tests)."""
    feed = site.add("/rss", rss("S", site.base, [{"title": "A", "link": site.url("/a.html")}]), "text/xml")
    fid = Registry(r, rt.settings.key_prefix).add(feed, None, 300)
    lock = rt.settings.key("lock", "feed", fid)
    r.set(lock, "another-poll", ex=60)
    assert poll_feed.apply(args=(fid,), task_id="first-delivery").get() == 0  # another poll holds it: skipped
    r.set(lock, "first-delivery", ex=60)  # what the dead first delivery of this very message left
    assert poll_feed.apply(args=(fid,), task_id="first-delivery").get() == 1
    assert r.get(lock) is None and queued_urls(r) == [site.url("/a.html")]
