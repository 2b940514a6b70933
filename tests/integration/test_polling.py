"""Feed polls against local servers: conditional GET, change detection, redirects, errors, formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import urllib3

from demo.site import LocalSite, rss
from worker.discover import discover_feeds, feed_links
from worker.fetch import FetchLimits, make_client
from worker.polling import poll_feed
from worker.registry import FeedState

FEEDS = Path(__file__).parent.parent / "data" / "feeds"
LIMITS = FetchLimits(max_bytes=5_000_000, allow_private=True, max_redirects=3, total_timeout=10)


@pytest.fixture
def client() -> Iterator[urllib3.PoolManager]:
    with make_client("test", 2.0, 2.0) as c:
        yield c


def feed_state(url: str) -> FeedState:
    return FeedState(fid="f", url=url, section=None, interval=300)


def after(state: FeedState, outcome) -> FeedState:  # type: ignore[no-untyped-def]
    return replace(state, etag=outcome.etag, last_modified=outcome.last_modified, body_hash=outcome.body_hash)


def items(n: int, base: str = "https://x.vn") -> list[dict[str, str]]:
    return [{"title": f"T{i}", "link": f"{base}/{i}.html"} for i in range(n)]


def test_304_costs_no_parsing(site: LocalSite, client: urllib3.PoolManager) -> None:
    url = site.add("/rss", rss("S", site.base, items(3)), "application/rss+xml")
    first = poll_feed(client, feed_state(url), LIMITS)
    assert (first.result, len(first.entries), first.http_status) == ("ok", 3, 200)
    second = poll_feed(client, after(feed_state(url), first), LIMITS)
    assert (second.result, second.entries, second.http_status) == ("not_modified", (), 304)


def _static_etag(body: dict[str, bytes]):  # type: ignore[no-untyped-def]
    """A server that always sends the same ETag and ignores conditional requests."""
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("ETag", '"always-the-same"')
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(body["now"])))
        h.end_headers()
        h.wfile.write(body["now"])
    return handle


def test_same_etag_but_changed_body_is_parsed(site: LocalSite, client: urllib3.PoolManager) -> None:
    body = {"now": rss("S", site.base, items(2)).encode()}
    site.add("/rss", b"")
    site.routes["/rss"].handler = _static_etag(body)
    url = site.url("/rss")
    first = poll_feed(client, feed_state(url), LIMITS)
    body["now"] = rss("S", site.base, items(4)).encode()
    second = poll_feed(client, after(feed_state(url), first), LIMITS)
    assert second.result == "ok" and len(second.entries) == 4
    third = poll_feed(client, after(feed_state(url), second), LIMITS)
    assert third.result == "unchanged" and third.entries == ()


def test_unchanged_body_without_caching_headers_is_not_parsed(site: LocalSite,
                                                              client: urllib3.PoolManager) -> None:
    body = {"now": rss("S", site.base, items(2)).encode()}
    site.add("/rss", b"")
    site.routes["/rss"].handler = _static_etag(body)
    url = site.url("/rss")
    first = poll_feed(client, replace(feed_state(url)), LIMITS)
    again = poll_feed(client, replace(feed_state(url), body_hash=first.body_hash), LIMITS)
    assert again.result == "unchanged"


def test_retry_after_and_errors(site: LocalSite, client: urllib3.PoolManager) -> None:
    url = site.add("/busy", "slow down", status=429, headers={"Retry-After": "900"})
    out = poll_feed(client, feed_state(url), LIMITS)
    assert (out.result, out.ok, out.floor_seconds, out.http_status) == ("http_429", False, 900.0, 429)
    gone = poll_feed(client, feed_state(site.add("/old", "", status=410)), LIMITS)
    assert gone.gone and not gone.ok


def test_permanent_redirect_gives_the_new_url(site: LocalSite, client: urllib3.PoolManager) -> None:
    new = site.add("/new.rss", rss("S", site.base, items(1)), "application/rss+xml")
    site.add("/old.rss", "", status=301, headers={"Location": "/new.rss"})
    assert poll_feed(client, feed_state(site.url("/old.rss")), LIMITS).moved_to == new
    site.add("/tmp.rss", "", status=302, headers={"Location": "/new.rss"})
    assert poll_feed(client, feed_state(site.url("/tmp.rss")), LIMITS).moved_to is None


@pytest.mark.parametrize(("name", "result", "count"), [
    ("vnexpress_the-gioi_2025-02-06_1item.rss", "ok", 1),  # not well-formed, still used
    ("vnexpress_tin-moi-nhat_2017-11-14_browsercopy.rss", "ok", 24),
    ("rssparser_uolNoticias.rss", "ok", 15),
    ("rssparser_guardian.rss", "ok", 55),
])
def test_real_feeds(site: LocalSite, client: urllib3.PoolManager, name: str, result: str, count: int) -> None:
    url = site.add("/" + name, (FEEDS / name).read_bytes(), "application/rss+xml")
    out = poll_feed(client, feed_state(url), LIMITS)
    assert (out.result, len(out.entries)) == (result, count)
    # Problems are reported on the feed's health: bad XML, and a body that is not in its declared encoding.
    assert (out.problem is not None) == ("2025" in name or "uol" in name)


def test_malformed_and_empty(site: LocalSite, client: urllib3.PoolManager) -> None:
    bad = poll_feed(client, feed_state(site.add("/bad", "<rss><channel><item><title>x", "text/xml")), LIMITS)
    assert (bad.result, bad.ok) == ("feed_malformed", False)
    empty = poll_feed(client, feed_state(site.add("/empty", rss("E", site.base, []), "application/rss+xml")), LIMITS)
    assert (empty.result, empty.entries) == ("ok", ())


def test_big_feed(site: LocalSite, client: urllib3.PoolManager) -> None:
    out = poll_feed(client, feed_state(site.add("/big", rss("B", site.base, items(2000)), "application/rss+xml")),
                    LIMITS)
    assert len(out.entries) == 2000


def test_json_feed(site: LocalSite, client: urllib3.PoolManager) -> None:
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "JF", "items": [
        {"id": "1", "url": "/a.html?utm_source=jf", "title": "A", "date_published": "2026-01-02T03:04:05+07:00",
         "authors": [{"name": "Lan"}], "tags": ["x"]},
        {"id": "2", "external_url": "https://other.vn/b.html", "content_text": "B text"},
        {"id": "3"},
    ]}
    url = site.add("/feed.json", json.dumps(doc), "application/feed+json")
    out = poll_feed(client, feed_state(url), LIMITS)
    assert out.title == "JF"
    assert [e.url for e in out.entries] == [site.url("/a.html"), "https://other.vn/b.html"]
    assert out.entries[0].author == "Lan" and out.entries[0].published_at is not None
    assert out.entries[0].tags == ("x",)
    not_jf = poll_feed(client, feed_state(site.add("/x.json", '{"a": 1}', "application/json")), LIMITS)
    assert not_jf.result == "feed_malformed"


def test_discovery(site: LocalSite, client: urllib3.PoolManager) -> None:
    home = ('<html><head><link rel="alternate" type="application/rss+xml" href="/rss/thoi-su.rss">'
            '<link rel="alternate" type="text/html" href="/en"><link rel="stylesheet" href="/a.css"></head></html>')
    assert feed_links(home, "https://x.vn/") == ["https://x.vn/rss/thoi-su.rss"]
    site.add("/", home)
    site.add("/rss/thoi-su.rss", rss("Thời sự", site.base, items(5)), "application/rss+xml")
    site.add("/feed", rss("All", site.base, items(2)), "application/rss+xml")
    found = discover_feeds(client, site.url("/"), LIMITS)
    assert [(f.url, f.title, f.entries) for f in found] == [
        (site.url("/rss/thoi-su.rss"), "Thời sự", 5), (site.url("/feed"), "All", 2)]
