"""Near-duplicate hashing, the feed-disagreement flag, and per-site drop selectors."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xxhash

from config import SourcesError
from config.sources import parse_sources
from worker.article import Origin, build_article
from worker.extract import extract_article, extract_page
from worker.models import Extracted, FeedEntry
from worker.neardup import MAX_DISTANCE, simhash
from worker.stream import content_hash

STORY = " ".join(f"Câu thứ {i} của bản tin nói về mưa lớn ở Hà Nội và các tỉnh phía bắc trong tuần này." for i in range(12))


def test_simhash_finds_the_same_story_and_tells_others_apart() -> None:
    a = simhash(STORY)
    edited = simhash(STORY.replace("Câu thứ 3", "Đoạn số 3") + " Theo TTXVN.")
    other = simhash(STORY.replace("mưa lớn ở Hà Nội", "giá vàng ở TP.HCM").replace("phía bắc", "phía nam"))
    assert a is not None and edited is not None and other is not None
    assert simhash(STORY) == a
    assert (a ^ edited).bit_count() <= MAX_DISTANCE
    assert (a ^ other).bit_count() > MAX_DISTANCE
    assert simhash("Tin ngắn.") is None


def plain_simhash(text: str) -> int:
    """The definition, bit by bit: bit b is set when most shingle hashes have it set."""
    words = re.findall(r"\w+", text.lower())
    hashes = [xxhash.xxh64_intdigest(" ".join(words[i:i + 3]).encode()) for i in range(len(words) - 2)]
    return sum(1 << b for b in range(64) if 2 * sum(h >> b & 1 for h in hashes) > len(hashes))


@pytest.mark.parametrize("seed", range(5))
def test_simhash_counts_bits_like_its_definition(seed: int) -> None:
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("abcdeghiklmnopqrstuvxyđâêôơư", k=rng.randint(1, 7))) for _ in range(300)]
    text = " ".join(rng.choices(vocabulary, k=rng.randint(60, 1500)))
    assert simhash(text) == plain_simhash(text)


def page(published: datetime | None) -> Extracted:
    return Extracted(title="T", text="Nội dung " * 30, published_at=published)


@pytest.mark.parametrize(("page_date", "flagged"), [
    (datetime(2019, 5, 1, 9, tzinfo=UTC), True),  # years off: a stale date on the page
    (datetime(2025, 5, 1, 20, tzinfo=UTC), False),  # hours apart: normal
    (None, False),
])
def test_a_page_date_far_from_the_feeds_is_flagged(page_date: datetime | None, flagged: bool) -> None:
    hints = FeedEntry("https://x.vn/a", published_at=datetime(2025, 5, 1, 9, tzinfo=UTC))
    article = build_article("https://x.vn/a", page(page_date), Origin(), hints)
    assert ("published_at_differs_from_feed" in article.flags) == flagged


def test_per_site_drop_selectors() -> None:
    html = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_text()
    plain = extract_article(html, "https://vnexpress.net/a.html")
    assert "Theo bác sĩ Hồng" in plain.text
    dropped = extract_article(html, "https://vnexpress.net/a.html", drop=("p.Normal:nth-of-type(4)",))
    assert len(dropped.text) < len(plain.text)
    sources = parse_sources({"sites": {"x.vn": {"drop": ["div.promo", "#related > ul"]}}})
    assert sources.sites["x.vn"].drop == ("div.promo", "#related > ul")
    with pytest.raises(SourcesError, match="CSS selector"):
        parse_sources({"sites": {"x.vn": {"drop": ["div[["]}}})


def test_extract_page_fingerprints_the_text_it_extracted() -> None:
    body = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_bytes()
    got = extract_page(body, "text/html; charset=utf-8", "https://vnexpress.net/a.html")
    assert got.simhash is not None and got.simhash == simhash(got.text)
    # The content hash too, the same the stream computes for an article with this title and text.
    built = build_article("https://vnexpress.net/a.html", got, Origin())
    assert got.content_hash is not None and got.content_hash == content_hash(built)
    assert extract_page(body.replace(b"</p>", b" </p>", 1), "text/html; charset=utf-8",
                        "https://vnexpress.net/a.html").content_hash == got.content_hash  # whitespace aside
