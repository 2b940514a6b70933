"""news.ingest_batch, called directly against real Redis and a local site: the entries of one feed poll in one
message, each done as news.ingest_article would; what must run again later goes on as its own message."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from celery.exceptions import Reject
from celery.worker import state as worker_state

from config import Settings
from demo.site import LocalSite
from tasks.app import ARTICLES_QUEUE, configure
from tasks.ingest import ingest_batch, send_batch
from tasks.runtime import Runtime
from tasks.stack import PrivateRedis
from tests.factories import queued_tasks
from worker.failures import list_failures
from worker.seen import note_listing
from worker.urls import article_id

PAGES = Path(__file__).parents[1] / "data" / "site" / "pages"
PAGE = (PAGES / "vnexpress_2025-10-22_fundus.html").read_bytes()
OTHER = (PAGES / "vnexpress_2023-11-02_htmldate.html").read_bytes()


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    yield configure(settings)
    configure(settings)


def entry(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "hints": {"url": url, "title": "T"}, **extra}


def test_a_batch_publishes_its_articles_and_records_its_failures(rt: Runtime, site: LocalSite,
                                                                 r: redis_lib.Redis) -> None:
    a, b = site.add("/a.html", PAGE), site.add("/b.html", OTHER)
    missing = site.url("/missing.html")
    assert ingest_batch(site.url("/rss"), "S", "Feed", [entry(a), entry(missing), entry(b)]) == 2
    assert {f["url"] for _, f in r.xrange(rt.settings.stream)} == {a, b}
    assert [(f["url"], f["reason"]) for f in list_failures(r, rt.settings.key_prefix)] == [(missing, "http_404")]
    assert ingest_batch(site.url("/rss"), "S", "Feed", [entry(a), entry(b)]) == 0  # a redelivery: already there,
    assert r.xlen(rt.settings.stream) == 2 and site.hits["/a.html"] == 1  # and nothing fetched again


def test_an_article_names_every_feed_listing_it_and_the_earlier_article_with_its_text(
        rt: Runtime, site: LocalSite, r: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    first, copy, short = site.add("/a.html", PAGE), site.add("/copy.html", PAGE), site.add("/b.html", OTHER)
    prefix, ttl = rt.settings.key_prefix, rt.settings.seen_ttl_seconds
    note_listing(r, prefix, site.url("/rss"), [article_id(u) for u in (first, copy, short)], ttl)
    note_listing(r, prefix, site.url("/other.rss"), [article_id(copy), article_id(short)], ttl)
    assert ingest_batch(site.url("/rss"), "S", "Feed", [entry(first), entry(copy)]) == 2
    extract = Runtime.extract
    monkeypatch.setattr(Runtime, "extract", lambda *args: replace(extract(*args), simhash=None))
    assert ingest_batch(site.url("/rss"), "S", "Feed", [entry(short)]) == 1  # as a text too short to compare
    articles = {f["url"]: json.loads(f["article"]) for _, f in r.xrange(rt.settings.stream)}
    assert articles[first]["feed_urls"] == [site.url("/rss")] and articles[first]["duplicate_of"] is None
    assert articles[copy]["feed_urls"] == [site.url("/rss"), site.url("/other.rss")]
    assert articles[copy]["duplicate_of"] == article_id(first)
    assert articles[short]["feed_urls"] == [site.url("/rss"), site.url("/other.rss")]
    assert articles[short]["duplicate_of"] is None


def test_an_entry_to_retry_goes_on_as_its_own_task(rt: Runtime, site: LocalSite, r: redis_lib.Redis) -> None:
    good, down = site.add("/a.html", PAGE), site.add("/down.html", "busy", status=503)
    assert ingest_batch(site.url("/rss"), "S", "Feed", [entry(down), entry(good)]) == 1
    [(name, args, kwargs)] = queued_tasks(r)
    assert name == "news.ingest_article" and args == []
    assert kwargs["url"] == down and kwargs["attempt"] == 2 and kwargs["feed_url"] == site.url("/rss")
    assert list_failures(r, rt.settings.key_prefix) == []  # not a failure yet: it has attempts left


def slow(body: bytes, seconds: float) -> Any:
    def handle(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def test_a_long_batch_hands_the_entries_not_begun_to_a_new_message(
        settings: Settings, site: LocalSite, r: redis_lib.Redis) -> None:
    configure(settings.model_copy(update={"redelivery_timeout": 2}))  # entries not begun after 1 s go on
    try:
        first, rest = site.add("/slow.html", b""), [site.add("/b.html", OTHER), site.add("/c.html", PAGE)]
        site.routes["/slow.html"].handler = slow(PAGE, 1.3)
        assert ingest_batch(site.url("/rss"), "S", "Feed", [entry(first)] + [entry(u) for u in rest]) == 1
    finally:
        configure(settings)
    [(name, args, _)] = queued_tasks(r)
    assert name == "news.ingest_batch" and [e["url"] for e in args[3]] == rest
    assert site.hits.get("/b.html", 0) == 0


def test_redis_away_mid_batch_rejects_it_for_redelivery(settings: Settings, site: LocalSite,
                                                        private_redis: PrivateRedis) -> None:
    configure(settings.model_copy(update={"redis_url": private_redis.url}))
    try:
        a = site.add("/a.html", PAGE)
        private_redis.stop(kill=True)
        with pytest.raises(Reject) as rejected:
            ingest_batch(site.url("/rss"), "S", "Feed", [entry(a)])
        assert rejected.value.requeue
    finally:
        configure(settings)


def test_a_warm_shutdown_hands_the_entries_not_begun_to_a_new_message(
        rt: Runtime, site: LocalSite, r: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    urls = [site.add("/a.html", PAGE), site.add("/b.html", OTHER), site.add("/c.html", PAGE + b" ")]
    monkeypatch.setattr(worker_state, "should_stop", 0)  # what Celery sets on SIGTERM: exit code 0
    assert ingest_batch(site.url("/rss"), "S", "Feed", [entry(u) for u in urls]) == 1
    [(name, args, _)] = queued_tasks(r)
    assert name == "news.ingest_batch" and [e["url"] for e in args[3]] == urls[1:]


def test_a_batch_is_shown_in_monitoring_as_its_feed_and_entry_count(rt: Runtime, r: redis_lib.Redis) -> None:
    entries = [entry(f"https://x.org/{i}.html", hints={"url": f"https://x.org/{i}.html", "summary": "S" * 5000})
               for i in range(10)]
    send_batch("https://x.org/rss", "World", "X", entries)
    [raw] = r.lrange(ARTICLES_QUEUE, 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["argsrepr"] == "('https://x.org/rss', 'World', 'X', <10 entries>)"
    [(name, args, _)] = queued_tasks(r)
    assert name == "news.ingest_batch" and args[3] == entries  # the entries themselves travel whole
