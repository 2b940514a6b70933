"""A light news site on 127.0.0.1 for the benchmarks: section feeds that grow, article pages, ETags, a fixed
latency per response, and when the feed poll that first listed each article came.

It shares the machine's cores with the pipeline it feeds, so it is made to cost little per request: one asyncio
loop on a thread, responses built once (a page's whole answer when it is added, a feed's when it changes) and
sent after the latency by a timer, not a sleeping thread. `demo.site.LocalSite` (a thread per connection, a
handler per route) is the one for tests that need odd servers.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from demo.site import REPO, rss
from worker.urls import canonical_url

HEAD_END = b"\r\n\r\n"
SHARED_DATA = REPO.parent / "shared" / "data"  # the real pages and feeds beside the checkout
PAGE_SOURCES = ("article-extraction-benchmark/html", "vn-news/vi/articles")  # under it: the pages the benches serve


def read_pages(data: Path = SHARED_DATA) -> list[bytes]:
    """The benchmarks' real pages under `data` (gunzipped), in a stable order; none if `data` is not there."""
    paths = [p for sub in PAGE_SOURCES for p in sorted((data / sub).glob("*.htm*"))]
    return [gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in paths]


@dataclass
class _Feed:
    path: str
    items: list[dict[str, object]] = field(default_factory=list)
    answer: tuple[bytes, bytes] | None = None  # (ETag, whole 200 response) for the current items


def _response(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


NOT_FOUND = _response("404 Not Found", {"Content-Type": "text/plain"}, b"not found")


class NewsSite:
    """Section feeds `/rss/sNN.rss` and the pages added with `add_article`; `found`: canonical URL -> time.time() of
    the feed request whose answer (200, not 304) first listed it."""

    def __init__(self, latency: float, feeds: int) -> None:
        self.latency = latency
        self.found: dict[str, float] = {}
        self._feeds = {f"/rss/s{i:02d}.rss": _Feed(f"/rss/s{i:02d}.rss") for i in range(feeds)}
        self._pages: dict[str, tuple[bytes, bytes]] = {}  # path -> (ETag, whole 200 response)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Connection(self), "127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        self.feed_urls = [self.base + path for path in self._feeds]
        self._thread = threading.Thread(target=self._loop.run_forever, name="newssite", daemon=True)
        self._thread.start()

    def add_article(self, feed: int, path: str, body: bytes) -> str:
        """Serve `body` at `path` (no charset declared: the reader sniffs it) and list it first in feed `feed`;
        returns its canonical URL."""
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        answer = _response("200 OK", {"Content-Type": "text/html", "ETag": etag}, body)
        url = self.base + path
        with self._lock:
            self._pages[path] = (etag.encode(), answer)
            section = self._feeds[f"/rss/s{feed:02d}.rss"]
            section.items.insert(0, {"link": url, "guid": url, "pubDate": datetime.now(UTC)})
            section.answer = None
        return canonical_url(url)

    def stop(self) -> None:
        def close() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(close)
        self._thread.join(10)
        self._loop.close()

    def answer(self, path: str, etag: bytes | None) -> bytes:
        """The whole response to a GET of `path`, at the moment it is sent (the latency has passed)."""
        if (page := self._pages.get(path)) is not None:
            return _response("304 Not Modified", {"ETag": page[0].decode()}) if etag == page[0] else page[1]
        if (feed := self._feeds.get(path)) is None:
            return NOT_FOUND
        arrived = time.time() - self.latency
        with self._lock:
            if feed.answer is None:
                body = rss(path, self.base + path, feed.items).encode()
                tag = f'"{hashlib.sha1(body).hexdigest()[:16]}"'
                feed.answer = (tag.encode(), _response("200 OK", {"ETag": tag,
                                                                  "Content-Type": "application/rss+xml"}, body))
            tag, full = feed.answer
            if etag == tag:
                return _response("304 Not Modified", {"ETag": tag.decode()})
            for item in feed.items:
                self.found.setdefault(canonical_url(str(item["link"])), arrived)
        return full


class _Connection(asyncio.Protocol):
    """HTTP/1.1 GETs on one kept-alive connection, answered in order, each after the site's latency."""

    def __init__(self, site: NewsSite) -> None:
        self.site, self.buffer, self.transport = site, b"", None
        self.pending: list[tuple[str, bytes | None, bool]] = []  # requests not yet answered, in order

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(HEAD_END)) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            path = parts[1].decode("latin-1") if len(parts) >= 2 else "/"
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
            self.pending.append((path, headers.get(b"if-none-match"), headers.get(b"connection") == b"close"))
            self.site._loop.call_later(self.site.latency, self._send)

    def _send(self) -> None:
        if not self.pending or self.transport is None or self.transport.is_closing():
            return
        path, etag, close = self.pending.pop(0)
        self.transport.write(self.site.answer(path, etag))
        if close:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
