"""The fetcher against local HTTP servers: statuses, redirects, caps, content types, the address guard."""

from __future__ import annotations

import gzip
import socket
import struct
from http.server import BaseHTTPRequestHandler

import pytest

from demo.site import LocalSite
from worker.errors import PermanentError, TemporaryError
from worker.fetch import FetchLimits, fetch_feed, fetch_page, make_client

OPEN = FetchLimits(max_bytes=200_000, allow_private=True, max_redirects=3, total_timeout=10)


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    with make_client("news-ingest-test/0", 2.0, 2.0) as c:
        yield c


def test_page_ok(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    url = site.add("/a.html", "<html><p>Xin chào</p></html>")
    resp = fetch_page(client, url, OPEN)
    assert resp.status == 200 and "Xin chào" in resp.body.decode()


@pytest.mark.parametrize(("status", "kind", "reason"), [
    (404, PermanentError, "http_404"), (410, PermanentError, "http_410"), (403, PermanentError, "http_403"),
    (503, TemporaryError, "http_503"), (429, TemporaryError, "http_429"),
])
def test_status_mapping(site: LocalSite, client, status: int, kind: type, reason: str) -> None:  # type: ignore[no-untyped-def]
    url = site.add("/x", "no", status=status, headers={"Retry-After": "7"})
    with pytest.raises(kind) as err:
        fetch_page(client, url, OPEN)
    assert err.value.reason == reason
    if status == 429:
        assert err.value.retry_after == 7.0


def test_pdf_is_not_html_and_not_downloaded(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    url = site.add("/doc.pdf", b"%PDF-1.4" + b"0" * 150_000, content_type="application/pdf")
    with pytest.raises(PermanentError) as err:
        fetch_page(client, url, OPEN)
    assert err.value.reason == "not_html"


def test_size_cap_and_gzip_bomb(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    big = site.add("/big.html", b"<p>" + b"a" * 300_000)
    with pytest.raises(PermanentError, match="too_large"):
        fetch_page(client, big, OPEN)
    bomb = gzip.compress(b"<p>" + b"a" * 5_000_000)
    url = site.add("/bomb.html", bomb, headers={"Content-Encoding": "gzip"})
    assert len(bomb) < OPEN.max_bytes
    with pytest.raises(PermanentError, match="too_large"):
        fetch_page(client, url, OPEN)


def test_redirects_followed_loop_stopped(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    final = site.add("/final.html", "<p>ok</p>")
    site.add("/moved", "", status=301, headers={"Location": "/final.html"})
    resp = fetch_page(client, site.url("/moved"), OPEN)
    assert resp.url == final and resp.redirected_permanently
    site.add("/loop", "", status=302, headers={"Location": "/loop"})
    with pytest.raises(PermanentError, match="too_many_redirects"):
        fetch_page(client, site.url("/loop"), OPEN)


def test_conditional_get_gives_304(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    url = site.add("/feed.rss", "<rss/>", content_type="application/rss+xml")
    first = fetch_feed(client, url, OPEN)
    again = fetch_feed(client, url, OPEN, etag=first.headers["etag"])
    assert (first.status, again.status, again.body) == (200, 304, b"")


def test_private_addresses_refused_by_default(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    url = site.add("/a.html", "<p>x</p>")
    guarded = FetchLimits(max_bytes=1000, allow_private=False)
    with pytest.raises(PermanentError) as err:
        fetch_page(client, url, guarded)
    assert err.value.reason in ("blocked_address", "blocked_port")
    assert site.hits.get("/a.html") is None  # refused before any request was sent


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]:80/"])
def test_redirect_to_internal_address_is_refused(site: LocalSite, client, target: str) -> None:  # type: ignore[no-untyped-def]
    site.add("/r", "", status=302, headers={"Location": target})
    # The test site itself is allow-listed; the redirect target is not, and is refused before connecting.
    limits = FetchLimits(max_bytes=1000, allow_private=False, allow_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(PermanentError) as err:
        fetch_page(client, site.url("/r"), limits)
    assert err.value.reason == "blocked_address"
    assert site.hits["/r"] == 1


def test_connection_reset_is_temporary(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    def reset(handler: BaseHTTPRequestHandler) -> None:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.shutdown(socket.SHUT_RDWR)
        handler.close_connection = True

    site.add("/reset", "")
    site.routes["/reset"].handler = reset
    with pytest.raises(TemporaryError) as err:
        fetch_page(client, site.url("/reset"), OPEN)
    assert err.value.reason == "connection"
