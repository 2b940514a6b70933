"""Small builders of test records."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.models import Article, ExtractorV1, SiteV1


def article(n: int, text: str = "Nội dung") -> Article:
    return Article(
        schema="article/v1", id=f"{n:032x}", url=f"https://x.vn/{n}.html", feed_url="https://x.vn/rss",
        feed_urls=["https://x.vn/rss"], site=SiteV1(domain="x.vn", name="X"), section="S", title=f"Bài {n}",
        authors=[], published_at=None, language="vi", lead=None, text=text, images=[], tags=[],
        fetched_at=datetime.now(UTC), extractor=ExtractorV1(name="trafilatura", version="2"),
    )
