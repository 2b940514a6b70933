"""Feed parsing: RSS, Atom (and anything feedparser reads) from the bytes we fetched, never from a URL.

Links are resolved against the feed's own address and canonicalised. A malformed feed that still yields
entries is used and its problem reported; one that yields nothing is `PermanentError("feed_malformed")`.
"""

from __future__ import annotations

import calendar
import html
import re
from datetime import UTC, datetime
from typing import Any

import feedparser

from worker.errors import PermanentError
from worker.models import FeedEntry, ParsedFeed
from worker.urls import canonical_url

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
# Reported by feedparser but not a defect of the feed: a missing or generic Content-Type.
_HARMLESS = (feedparser.NonXMLContentType,)


def _clean(text: str | None) -> str | None:
    if not text:
        return None
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()
    return text or None


def _when(entry: Any, key: str) -> datetime | None:
    # Look in keys() first: feedparser warns when a missing `updated_parsed` is read through its alias.
    parsed = entry.get(key + "_parsed") if key + "_parsed" in entry.keys() else None
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _entry(raw: Any, base_url: str) -> FeedEntry | None:
    link = (raw.get("link") or "").strip()
    if not link:
        # Some feeds only carry the URL in a permalink guid.
        guid = raw.get("id") or ""
        if raw.get("guidislink") or guid.startswith(("http://", "https://")):
            link = guid
    if not link:
        return None
    try:
        url = canonical_url(_SPACE.sub("", link), base=base_url)
    except PermanentError:
        return None
    tags = tuple(t for t in (_clean(tag.get("term")) for tag in raw.get("tags") or ()) if t)
    return FeedEntry(
        url=url,
        title=_clean(raw.get("title")),
        published_at=_when(raw, "published") or _when(raw, "updated"),
        updated_at=_when(raw, "updated"),
        author=_clean(raw.get("author")),
        summary=_clean(raw.get("summary")),
        guid=raw.get("id") or None,
        tags=tags,
    )


def parse_feed(body: bytes, base_url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse feed bytes; entries keep feed order, duplicates (same canonical URL) removed."""
    headers = {"content-location": base_url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=True)
    problem = None
    exc = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(exc, _HARMLESS):
        problem = f"{type(exc).__name__}: {exc}"[:300] if exc else "malformed feed"
    version = parsed.get("version") or ""
    if not parsed.entries and (problem or not version):
        raise PermanentError("feed_malformed", problem or "not a feed: no RSS/Atom root element")
    entries: list[FeedEntry] = []
    seen: set[str] = set()
    skipped = 0
    for raw in parsed.entries:
        entry = _entry(raw, base_url)
        if entry is None:
            skipped += 1
            continue
        if entry.url in seen:
            continue
        seen.add(entry.url)
        entries.append(entry)
    if not entries and problem:
        raise PermanentError("feed_malformed", problem)
    feed = parsed.get("feed", {})
    ttl = feed.get("ttl")
    return ParsedFeed(
        title=_clean(feed.get("title")),
        entries=tuple(entries),
        ttl_minutes=int(ttl) if isinstance(ttl, str) and ttl.strip().isdigit() else None,
        problem=problem,
        skipped=skipped,
    )
