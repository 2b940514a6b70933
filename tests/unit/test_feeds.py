import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from demo.site import rss
from worker.errors import PermanentError
from worker.feeds import MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, parse_feed

FEEDS = Path(__file__).parent.parent / "data" / "feeds"


def read(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def test_vnexpress_feed_entries() -> None:
    feed = parse_feed(read("vnexpress_tin-moi-nhat_2017-08-30_browsercopy.rss"), "https://vnexpress.net/rss/tin-moi-nhat.rss")
    assert feed.title == "Tin mới nhất - VnExpress RSS"
    assert len(feed.entries) == 25
    first = feed.entries[0]
    assert first.url.startswith("http://dulich.vnexpress.net/tin-tuc/")
    assert first.title == "Bể bơi dát vàng trong biệt thự nơi tổng thống Putin nghỉ dưỡng"
    assert first.published_at == datetime(2017, 8, 30, 13, 3, tzinfo=UTC)
    assert first.summary and first.summary.startswith("Biệt thự Sellgren")
    assert "<" not in first.summary  # the CDATA image markup is gone
    assert feed.problem is None


def test_malformed_feed_that_still_yields_entries_is_used_and_reported() -> None:
    feed = parse_feed(read("vnexpress_the-gioi_2025-02-06_1item.rss"), "https://vnexpress.net/rss/the-gioi.rss")
    assert [e.url for e in feed.entries] == ["https://vnexpress.net/israel-noi-got-my-roi-hoi-dong-nhan-quyen-lhq-4846612.html"]
    assert feed.problem and "not well-formed" in feed.problem


def test_undeclared_iso_8859_1_feed_decodes() -> None:
    feed = parse_feed(read("rssparser_uolNoticias.rss"), "https://noticias.uol.com.br/rss")
    assert len(feed.entries) == 15
    assert any("ç" in (e.title or "") or "ã" in (e.title or "") for e in feed.entries)
    assert all("\ufffd" not in (e.title or "") for e in feed.entries)


def test_relative_and_duplicate_links_resolve_and_dedupe() -> None:
    body = rss("S", "https://site.vn/", [
        {"title": "A", "link": "/a.html?utm_source=rss"},
        {"title": "A again", "link": "https://site.vn/a.html#comments"},
        {"title": "B", "link": "b.html"},
        {"title": "bad", "link": "javascript:alert(1)"},
    ])
    feed = parse_feed(body.encode(), "https://site.vn/rss/s.rss")
    assert [e.url for e in feed.entries] == ["https://site.vn/a.html", "https://site.vn/rss/b.html"]
    assert feed.skipped == 1


def test_atom_feed() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
    <entry><title>One</title><link href="https://x.org/1"/><id>urn:1</id><updated>2024-05-01T10:00:00Z</updated>
    <author><name>Ann</name></author></entry></feed>"""
    feed = parse_feed(body, "https://x.org/atom")
    assert feed.entries[0].url == "https://x.org/1"
    assert feed.entries[0].author == "Ann"


def test_empty_valid_feed_is_not_an_error() -> None:
    assert parse_feed(rss("Empty", "https://x.org/", []).encode(), "https://x.org/rss").entries == ()


@pytest.mark.parametrize("body", [b"", b"<html><body>not a feed</body></html>", b"\x00\xff garbage", b"<rss><channel><item>"])
def test_garbage_is_feed_malformed(body: bytes) -> None:
    with pytest.raises(PermanentError) as err:
        parse_feed(body, "https://x.org/rss")
    assert err.value.reason == "feed_malformed"


def test_large_feed() -> None:
    items = [{"title": f"T{i}", "link": f"https://x.org/{i}.html"} for i in range(2000)]
    feed = parse_feed(rss("Big", "https://x.org/", items).encode(), "https://x.org/rss")
    assert len(feed.entries) == 2000


def test_entries_past_the_cap_are_counted_not_read() -> None:
    items = [{"title": f"T{i}", "link": f"https://x.org/{i}.html"} for i in range(2500)]
    items.insert(1, {"title": "bad", "link": "javascript:alert(1)"})
    items.insert(2, {"title": "again", "link": "https://x.org/0.html"})  # a duplicate: not an entry taken
    feed = parse_feed(rss("Big", "https://x.org/", items).encode(), "https://x.org/rss", max_entries=1000)
    assert [e.url for e in feed.entries] == [f"https://x.org/{i}.html" for i in range(1000)]  # the first, in order
    assert (feed.skipped, feed.beyond_cap) == (1, 1500)
    assert parse_feed(rss("S", "https://x.org/", items[:5]).encode(), "https://x.org/rss", max_entries=1000).beyond_cap == 0


def test_a_json_feed_is_capped_too() -> None:
    items = [{"id": str(i), "url": f"https://x.org/{i}.html"} for i in range(30)]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}).encode()
    feed = parse_feed(body, "https://x.org/feed.json", max_entries=10)
    assert (len(feed.entries), feed.beyond_cap) == (10, 20)


def test_feed_text_fields_are_cut_to_a_bounded_length() -> None:
    big = "chữ " * 1_000_000  # 4 MB of words on one line
    body = rss(big, "https://x.org/", [{"title": big, "link": "https://x.org/a.html", "description": big,
                                        "author": big, "guid": "g" * 100_000}]).encode()
    body = body.replace(b"</item>", b"<category>" + big.encode() + b"</category></item>")
    feed = parse_feed(body, "https://x.org/rss")
    [entry] = feed.entries
    assert feed.title is not None and len(feed.title) == MAX_TITLE_CHARS and feed.title.endswith("…")
    assert entry.title is not None and len(entry.title) == MAX_TITLE_CHARS and entry.title.startswith("chữ chữ")
    assert entry.summary is not None and len(entry.summary) == MAX_SUMMARY_CHARS
    assert entry.author is not None and len(entry.author) <= 300
    assert len(entry.tags) == 1 and len(entry.tags[0]) <= 200
    assert entry.guid is not None and len(entry.guid) <= 2048
    assert len(json.dumps(entry.to_json(), ensure_ascii=False)) < 15_000  # what travels in each task message


def test_short_text_fields_are_kept_whole() -> None:
    title = "Người dân Hà Nội " * 50  # 850 characters: long, but under the cap
    feed = parse_feed(rss("S", "https://x.org/", [{"title": title, "link": "https://x.org/a.html"}]).encode(),
                      "https://x.org/rss")
    assert feed.entries[0].title == title.strip()
