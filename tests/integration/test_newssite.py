"""The benchmarks' light news site (demo/newssite.py), read over real HTTP on 127.0.0.1: feeds that grow, pages,
ETags and 304s, the latency, and when the poll that first listed each article came."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from demo.newssite import PAGE_SOURCES, NewsSite, read_pages


@pytest.fixture
def site() -> Iterator[NewsSite]:
    news = NewsSite(latency=0.0, feeds=2)
    yield news
    news.stop()


def test_pages_and_feeds_are_served_with_etags_and_304s(site: NewsSite) -> None:
    first = site.add_article(0, "/s00/a.html", "<html><p>Hà Nội</p></html>".encode())
    site.add_article(1, "/s01/b.html", b"<html>b</html>")
    with httpx.Client() as client:
        page = client.get(first)
        assert page.status_code == 200 and page.text == "<html><p>Hà Nội</p></html>"
        assert page.headers["content-type"] == "text/html"  # no charset: readers must sniff
        assert client.get(first, headers={"If-None-Match": page.headers["etag"]}).status_code == 304
        feed = client.get(site.feed_urls[0])
        assert [e.link for e in feedparser.parse(feed.content).entries] == [first]
        unchanged = client.get(site.feed_urls[0], headers={"If-None-Match": feed.headers["etag"]})
        assert unchanged.status_code == 304 and unchanged.content == b""
        second = site.add_article(0, "/s00/c.html", b"<html>c</html>")
        grown = client.get(site.feed_urls[0], headers={"If-None-Match": feed.headers["etag"]})
        assert grown.status_code == 200 and grown.headers["etag"] != feed.headers["etag"]
        assert [e.link for e in feedparser.parse(grown.content).entries] == [second, first]  # newest first
        assert client.get(site.base + "/nothing").status_code == 404


def test_found_is_the_first_poll_that_listed_an_article_and_a_304_lists_nothing(site: NewsSite) -> None:
    url = site.add_article(0, "/s00/a.html", b"<html>a</html>")
    assert site.found == {}
    with httpx.Client() as client:
        before = time.time()
        etag = client.get(site.feed_urls[0]).headers["etag"]
        first = site.found[url]
        assert before - 0.1 <= first <= time.time()
        client.get(site.feed_urls[0])  # listed again: the first poll stands
        later = site.add_article(0, "/s00/b.html", b"<html>b</html>")
        site.add_article(1, "/s01/x.html", b"<html>x</html>")  # in a feed nobody read
        client.get(site.feed_urls[0], headers={"If-None-Match": etag})
    assert site.found[url] == first and later in site.found and len(site.found) == 2


def test_each_answer_waits_the_latency_and_found_is_when_the_request_came() -> None:
    news = NewsSite(latency=0.3, feeds=1)
    try:
        url = news.add_article(0, "/s00/a.html", b"<html>a</html>")
        with httpx.Client() as client:  # one kept-alive connection, requests one after the other
            t0 = time.time()
            assert client.get(news.feed_urls[0]).status_code == 200
            assert client.get(url).status_code == 200
            elapsed = time.time() - t0
        assert elapsed >= 0.6
        assert t0 - 0.05 <= news.found[url] <= t0 + 0.15  # the arrival, not the answer 0.3 s later
    finally:
        news.stop()


def test_read_pages_gunzips_in_a_stable_order_and_finds_none_without_the_data(tmp_path: Path) -> None:
    first, second = tmp_path / PAGE_SOURCES[0], tmp_path / PAGE_SOURCES[1]
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    (first / "b.html.gz").write_bytes(gzip.compress(b"<html>b</html>"))
    (first / "a.html").write_bytes(b"<html>a</html>")
    (first / "notes.txt").write_bytes(b"not a page")
    (second / "c.htm").write_bytes(b"<html>c</html>")
    assert read_pages(tmp_path) == [b"<html>a</html>", b"<html>b</html>", b"<html>c</html>"]
    assert read_pages(tmp_path / "missing") == []
