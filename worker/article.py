"""Article building: merge what the page says with what the feed said, into the stream's `Article` (v1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from zoneinfo import ZoneInfo

from worker.errors import NotAnArticle
from worker.models import Article, Extracted, ExtractorV1, FeedEntry, ImageV1, SiteV1
from worker.urls import article_id, site_domain

# Read from package metadata, not by importing trafilatura: processes that only build or publish articles
# (the worker's main process, the scheduler) stay free of the extraction stack's memory.
EXTRACTOR_NAME = "trafilatura"
EXTRACTOR_VERSION = version("trafilatura")


@dataclass(frozen=True)
class Origin:
    """Where the article came from: its feed (if any) and the site's configured options."""

    feed_url: str | None = None
    also_listed_in: tuple[str, ...] = ()  # other feeds that listed the same article
    section: str | None = None  # the configured section of the feed
    feed_title: str | None = None
    site_name: str | None = None
    timezone: str = "UTC"
    language: str | None = None


def _aware(value: datetime | None, tz: str) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(tz))


DATE_DISAGREEMENT = timedelta(days=2)


def _flags(page: Extracted, hints: FeedEntry | None, tz: str) -> list[str]:
    """What looks wrong: a page date far from the feed's (a stale or misread date on the page)."""
    flags = []
    page_date = _aware(page.published_at, tz)
    if page_date and hints and hints.published_at and abs(page_date - hints.published_at) > DATE_DISAGREEMENT:
        flags.append("published_at_differs_from_feed")
    return flags


def _published(page: datetime | None, feed: datetime | None, tz: str) -> datetime | None:
    """The page's date, unless it only names the day and the feed gives a time on that same day."""
    if page is None:
        return feed
    day_only = page.tzinfo is None and (page.hour, page.minute, page.second) == (0, 0, 0)
    page = _aware(page, tz)
    if day_only and feed is not None and page is not None:
        if feed.astimezone(ZoneInfo(tz)).date() == page.date():
            return feed
    return page


def build_article(
    url: str,
    page: Extracted,
    origin: Origin,
    hints: FeedEntry | None = None,
    fetched_at: datetime | None = None,
) -> Article:
    """`url` is the canonical URL. The page wins; the feed entry fills what the page lacks."""
    title = page.title or (hints.title if hints else None)
    if not title:
        raise NotAnArticle("no_title")
    authors = list(page.authors) or ([hints.author] if hints and hints.author else [])
    published = _published(page.published_at, hints.published_at if hints else None, origin.timezone)
    tags = list(dict.fromkeys(list(page.tags) + list(hints.tags if hints else ())))
    return Article(
        schema="article/v1",
        id=article_id(url),
        url=url,
        feed_url=origin.feed_url,
        feed_urls=list(dict.fromkeys(([origin.feed_url] if origin.feed_url else []) + list(origin.also_listed_in))),
        site=SiteV1(domain=site_domain(url), name=origin.site_name or page.site_name),
        section=origin.section or page.section or origin.feed_title,
        title=title,
        authors=authors,
        published_at=published,
        language=page.language or origin.language,
        lead=page.lead or (hints.summary if hints else None),
        text=page.text,
        images=[ImageV1(url=i.url, caption=i.caption) for i in page.images],
        tags=tags,
        fetched_at=fetched_at or datetime.now(UTC),
        extractor=ExtractorV1(name=EXTRACTOR_NAME, version=EXTRACTOR_VERSION),
        flags=_flags(page, hints, origin.timezone),
    )
