"""A small threaded HTTP server on 127.0.0.1 serving fixed routes, with ETag/304 support and optional latency,
and builders for RSS feeds and for a whole news site described by a manifest (sections of real pages).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO_SITE = REPO / "tests" / "data" / "site"


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None  # full control, for odd servers


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up (and our deliberately broken handlers) are expected here


class LocalSite:
    def __init__(self, latency: float = 0.0) -> None:
        self.routes: dict[str, Route] = {}
        self.latency = latency
        self.hits: dict[str, int] = {}
        self.log: list[tuple[float, str]] = []  # (time.time() when the request arrived, path)
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with site._lock:
                    site.hits[self.path] = site.hits.get(self.path, 0) + 1
                    site.log.append((time.time(), self.path))
                if site.latency:
                    time.sleep(site.latency)
                route = site.routes.get(self.path)
                if route is None:
                    self._send(404, b"not found", "text/plain")
                    return
                if route.handler is not None:
                    route.handler(self)
                    return
                etag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
                if route.status == 200 and self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", None, {"ETag": etag})
                    return
                headers = {"ETag": etag, **route.headers} if route.status == 200 else dict(route.headers)
                self._send(route.status, route.body, route.content_type, headers)

            def _send(self, status: int, body: bytes, ctype: str | None, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes | str = b"", content_type: str = "text/html; charset=utf-8",
            status: int = 200, headers: dict[str, str] | None = None) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(data, content_type, status, headers or {})
        return self.url(path)

    def start(self) -> LocalSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rss(title: str, link: str, items: list[dict[str, str]]) -> str:
    """RSS 2.0 text; each item may have title, link, description, pubDate (datetime or RFC 822), guid."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
             f"<link>{escape(link)}</link><description>{escape(title)}</description>"]
    for it in items:
        parts.append("<item>")
        for key in ("title", "link", "description", "guid", "pubDate", "author"):
            value = it.get(key)
            if isinstance(value, datetime):
                value = format_datetime(value)
            if value:
                parts.append(f"<{key}>{escape(str(value))}</{key}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts)


@dataclass(frozen=True)
class SiteArticle:
    section: str
    path: str
    title: str
    published: str | None
    file: Path


def load_manifest(site_dir: Path = DEMO_SITE) -> tuple[str, dict[str, str], list[SiteArticle]]:
    """(site name, {section slug: section title}, articles) from `site.yaml` in `site_dir`."""
    data = yaml.safe_load((site_dir / "site.yaml").read_text(encoding="utf-8"))
    sections: dict[str, str] = {}
    articles: list[SiteArticle] = []
    for sec in data["sections"]:
        sections[sec["slug"]] = sec["title"]
        for art in sec["articles"]:
            stem = Path(art["file"]).stem
            articles.append(SiteArticle(sec["slug"], f"/{sec['slug']}/{stem}.html", art["title"],
                                        art.get("published"), site_dir / "pages" / art["file"]))
    return data["name"], sections, articles


def serve_news_site(site: LocalSite, site_dir: Path = DEMO_SITE) -> dict[str, str]:
    """Add the manifest's pages and one RSS feed per section to `site`; returns {feed URL: section title}."""
    name, sections, articles = load_manifest(site_dir)
    feeds: dict[str, str] = {}
    for slug, title in sections.items():
        items = []
        for art in (a for a in articles if a.section == slug):
            url = site.add(art.path, art.file.read_bytes())
            pub = datetime.fromisoformat(art.published) if art.published else None
            items.append({"title": art.title, "link": url, "guid": url, "pubDate": pub})
        feed = site.add(f"/rss/{slug}.rss", rss(f"{title} - {name}", site.url(f"/{slug}"), items),
                        "application/rss+xml; charset=utf-8")
        feeds[feed] = title
    return feeds
