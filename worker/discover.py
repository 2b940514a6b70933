"""Feed discovery for a site: `<link rel="alternate">` feeds on its home page, then common feed paths.

`feed_links` is pure (HTML in, URLs out); `discover_feeds` does the fetching with the caller's client.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import urllib3
from lxml import etree
from lxml import html as lxml_html

from worker.charset import decode_html
from worker.errors import IngestError
from worker.feeds import parse_feed
from worker.fetch import FetchLimits, fetch, fetch_feed

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/json",
              "application/rdf+xml", "application/xml", "text/xml")
COMMON_PATHS = ("/rss", "/feed", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml", "/rss_feed/", "/feeds/",
                "/rss/home.rss", "/rss/tin-moi-nhat.rss", "/feed.json")


@dataclass(frozen=True)
class FoundFeed:
    url: str
    title: str | None
    entries: int


def feed_links(html: str, base_url: str) -> list[str]:
    """Absolute URLs of the feeds a page announces, in page order."""
    try:
        root = lxml_html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    found: list[str] = []
    for link in root.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        ctype = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" in rel and ctype in FEED_TYPES and href:
            url = urljoin(base_url, href)
            if url not in found:
                found.append(url)
    return found


def discover_feeds(client: urllib3.PoolManager, site_url: str, limits: FetchLimits) -> list[FoundFeed]:
    """Feeds of a site that really parse, announced ones first, then common paths."""
    candidates: list[str] = []
    try:
        home = fetch(client, site_url, limits)
        candidates = feed_links(decode_html(home.body, home.headers.get("content-type")), home.url)
    except IngestError:
        pass
    candidates += [urljoin(site_url, p) for p in COMMON_PATHS if urljoin(site_url, p) not in candidates]
    found: list[FoundFeed] = []
    for url in candidates:
        try:
            resp = fetch_feed(client, url, limits)
            parsed = parse_feed(resp.body, resp.url, resp.headers.get("content-type"))
        except IngestError:
            continue
        if parsed.entries and all(f.url != resp.url for f in found):
            found.append(FoundFeed(resp.url, parsed.title, len(parsed.entries)))
    return found
