"""Feed parsing: RSS 0.9x/1.0/2.0 and Atom, and JSON Feed, from the bytes we fetched, never a URL.

A well-formed UTF-8 feed, the usual case, is read by fastfeedparser (lxml: about 1/40 of feedparser's time on a
50-item feed, where feedparser cost as much CPU per new article as extracting it); anything else (another
encoding, a document that is not well-formed XML, xml:base) by feedparser, which is lenient and says what is wrong.
Links are resolved against the feed's own address and canonicalised. A malformed feed that still yields
entries is used and its problem reported; one that yields nothing is `PermanentError("feed_malformed")`.
Text fields are cut to a bounded length, since every entry travels in a task message.
"""

from __future__ import annotations

import calendar
import codecs
import html
import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import fastfeedparser
import feedparser
from lxml import etree

from worker.errors import PermanentError
from worker.models import FeedEntry, ParsedFeed
from worker.urls import canonical_url

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
# Reported by feedparser but not a defect of the feed: a missing or generic Content-Type.
_HARMLESS = (feedparser.NonXMLContentType,)
# Longest text kept per field, in characters (real titles are under 300, summaries a few paragraphs); longer text
# is cut and ends with "…". Entity expansion alone can make a 300 KB title out of a 1 KB feed.
MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 10_000
MAX_AUTHOR_CHARS = 300
MAX_TAG_CHARS = 200
MAX_TAGS = 100
MAX_GUID_CHARS = 2_048


def _clean(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
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
    tags = [_clean(tag.get("term"), MAX_TAG_CHARS) for tag in (raw.get("tags") or ())[:MAX_TAGS]]
    return FeedEntry(
        url=url,
        title=_clean(raw.get("title"), MAX_TITLE_CHARS),
        published_at=(raw.get("_published") or _when(raw, "published")
                      or raw.get("_updated") or _when(raw, "updated")),
        updated_at=raw.get("_updated") or _when(raw, "updated"),
        author=_clean(raw.get("author"), MAX_AUTHOR_CHARS),
        summary=_clean(raw.get("summary"), MAX_SUMMARY_CHARS),
        guid=(raw.get("id") or "")[:MAX_GUID_CHARS] or None,
        tags=tuple(t for t in tags if t),
    )


def _is_json_feed(body: bytes, content_type: str | None) -> bool:
    ctype = (content_type or "").split(";")[0].strip().lower()
    return ctype in ("application/feed+json", "application/json") or body.lstrip()[:1] == b"{"


def _text(value: Any) -> str | None:
    """A JSON value that should be a string: itself, or None when it is anything else."""
    return value if isinstance(value, str) else None


def _date_when(value: Any) -> datetime | None:
    """An ISO 8601 date (JSON Feed's, fastfeedparser's, W3CDTF) or, failing that, an RFC 822 one, in UTC; None if
    it is neither."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError, OverflowError):
            return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _parse_json_feed(body: bytes, base_url: str, max_entries: int | None) -> ParsedFeed:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentError("feed_malformed", f"JSON Feed: {exc}"[:300]) from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise PermanentError("feed_malformed", "JSON document is not a JSON Feed")
    items = data.get("items") if isinstance(data.get("items"), list) else []
    raw = []
    for item in items:
        if not isinstance(item, dict):
            continue
        authors = item.get("authors") if isinstance(item.get("authors"), list) else [item.get("author")]
        name = next((_text(a.get("name")) for a in authors if isinstance(a, dict) and _text(a.get("name"))), None)
        tags = item.get("tags") if isinstance(item.get("tags"), list) else []
        raw.append({
            "link": _text(item.get("url")) or _text(item.get("external_url")) or "", "id": _text(item.get("id")),
            "title": _text(item.get("title")), "summary": _text(item.get("summary")) or _text(item.get("content_text")),
            "author": name, "tags": [{"term": t} for t in tags if isinstance(t, str)],
            "_published": _date_when(item.get("date_published")), "_updated": _date_when(item.get("date_modified")),
        })
    return _collect(raw, base_url, _clean(_text(data.get("title")), MAX_TITLE_CHARS), None, None, max_entries)


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([^"']*)["']""", re.I)
_UTF8 = ("utf-8", "utf8")
_STRICT_XML = etree.XMLParser(recover=False, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _xml_encoding(head: bytes) -> str | None:
    """The encoding named in the XML declaration at the start of `head`, lowercased; None if there is none."""
    declared = _DECLARED_ENCODING.match(head)
    return declared.group(1).decode("latin-1").lower() if declared else None


def _is_utf8(body: bytes, content_type: str | None) -> bool:
    """Declared UTF-8, or not declared at all (XML's default), and decodes as such."""
    charset = re.search(r"charset\s*=\s*\"?([\w.:-]+)", content_type or "", re.I)
    names = (charset.group(1).lower() if charset else None, _xml_encoding(body[:200].removeprefix(codecs.BOM_UTF8)))
    if any(name is not None and name.replace("_", "-") not in _UTF8 for name in names):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Where feedparser finds an RSS item's `updated` date, which fastfeedparser leaves out (it reads dc:date as the
# publication date when there is no pubDate, as feedparser's published-or-updated fallback does).
_RSS_ITEMS = ("channel/item", "{http://purl.org/rss/1.0/}item")
_RSS_UPDATED = ("{http://purl.org/dc/elements/1.1/}date", "{http://purl.org/dc/terms/}modified",
                "{http://www.w3.org/2005/Atom}updated")


def _rss_updated(root: Any, count: int) -> list[datetime | None]:
    """Each RSS item's `updated` date (W3CDTF), for `count` entries read from the same items in order."""
    items = next((found for path in _RSS_ITEMS if (found := root.findall(path))), [])
    if len(items) != count:
        return [None] * count
    return [_date_when(next((t.strip() for tag in _RSS_UPDATED if (t := item.findtext(tag))), None))
            for item in items]


def _parse_well_formed(body: bytes, content_type: str | None) -> tuple[list[dict[str, Any]], str | None,
                                                                        int | None] | None:
    """Entries (as `_entry` reads them), title and TTL of a well-formed UTF-8 RSS/Atom feed without xml:base or
    entity declarations; None for any other document, which feedparser reads instead."""
    if b"xml:base" in body or b"<!ENTITY" in body or not _is_utf8(body, content_type):
        return None
    try:
        # Parsed twice, ~0.1 ms: the strict parse decides what is well-formed (fastfeedparser recovers silently,
        # where feedparser would report the problem) and gives the TTL and RSS `updated` dates.
        root = etree.fromstring(body, _STRICT_XML)
        kind = etree.QName(root).localname
        parsed = fastfeedparser.parse(body, include_media=False, include_enclosures=False)
    except Exception:  # noqa: BLE001 - not well-formed, or not a feed: feedparser says what it is
        return None
    if kind not in ("rss", "feed", "RDF"):
        return None
    entries = parsed.entries
    updated = ([_date_when(e.get("updated")) for e in entries] if kind == "feed"
               else _rss_updated(root, len(entries)))
    raw = [{"link": e.get("link"), "id": e.get("id"), "title": e.get("title"), "author": e.get("author"),
            "summary": e.get("description"), "tags": e.get("tags") or (),
            "_published": _date_when(e.get("published")), "_updated": when}
           for e, when in zip(entries, updated, strict=True)]
    ttl = root.findtext("channel/ttl")
    return raw, parsed.feed.get("title"), int(ttl) if ttl and ttl.strip().isdigit() else None


def _repair_utf8(body: bytes, content_type: str | None) -> tuple[bytes, str | None]:
    """A feed declared UTF-8 with a few invalid bytes: replace just those. Left to feedparser, one bad byte
    makes it re-decode the whole document in a legacy charset, garbling every Vietnamese title."""
    declared = _xml_encoding(body[:200]) in _UTF8 or "utf-8" in (content_type or "").lower().replace("utf8", "utf-8")
    if not declared:
        return body, None
    try:
        body.decode("utf-8")
        return body, None
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")
        return text.encode("utf-8"), f"InvalidUTF8: {text.count(chr(0xFFFD))} invalid byte sequences replaced"


def parse_feed(body: bytes, base_url: str, content_type: str | None = None,
               max_entries: int | None = None) -> ParsedFeed:
    """Parse feed bytes; entries keep feed order, duplicates (same canonical URL) removed. With `max_entries`,
    only that many are taken (the first, in feed order) and the rest counted in `ParsedFeed.beyond_cap`."""
    if _is_json_feed(body, content_type):
        return _parse_json_feed(body, base_url, max_entries)
    body, repaired = _repair_utf8(body, content_type)
    if (fast := _parse_well_formed(body, content_type)) is not None:
        raw, title, ttl = fast
        return _collect(raw, base_url, _clean(title, MAX_TITLE_CHARS), ttl, repaired, max_entries)
    return _parse_leniently(body, base_url, content_type, max_entries, repaired)


def _parse_leniently(body: bytes, base_url: str, content_type: str | None, max_entries: int | None,
                     problem: str | None = None) -> ParsedFeed:
    """Any RSS/Atom document, with feedparser; `problem`: one found before it (reported unless it finds one)."""
    headers = {"content-location": base_url}
    if content_type:
        headers["content-type"] = content_type
    try:
        parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=True)
    except Exception as exc:  # noqa: BLE001 - hostile input reaches odd corners of feedparser; ours is one error
        raise PermanentError("feed_malformed", f"{type(exc).__name__}: {exc}"[:300]) from None
    exc = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(exc, _HARMLESS) and problem is None:
        problem = f"{type(exc).__name__}: {exc}"[:300] if exc else "malformed feed"
    version = parsed.get("version") or ""
    if not parsed.entries and (problem or not version):
        raise PermanentError("feed_malformed", problem or "not a feed: no RSS/Atom root element")
    feed = parsed.get("feed", {})
    ttl = feed.get("ttl")
    ttl_minutes = int(ttl) if isinstance(ttl, str) and ttl.strip().isdigit() else None
    return _collect(parsed.entries, base_url, _clean(feed.get("title"), MAX_TITLE_CHARS), ttl_minutes, problem,
                    max_entries)


def _collect(raw_entries: Any, base_url: str, title: str | None, ttl: int | None, problem: str | None,
             max_entries: int | None = None) -> ParsedFeed:
    entries: list[FeedEntry] = []
    seen: set[str] = set()
    skipped = beyond_cap = 0
    for read, raw in enumerate(raw_entries):
        if max_entries is not None and len(entries) >= max_entries:
            beyond_cap = len(raw_entries) - read
            break
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
    return ParsedFeed(title=title, entries=tuple(entries), ttl_minutes=ttl, problem=problem, skipped=skipped,
                      beyond_cap=beyond_cap)
