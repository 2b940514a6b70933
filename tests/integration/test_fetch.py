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


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_compressed_pages_decode_and_bombs_stop_at_the_cap(site: LocalSite, client, encoding: str) -> None:  # type: ignore[no-untyped-def]
    import zlib

    def squash(data: bytes) -> bytes:
        if encoding == "gzip":
            return gzip.compress(data)
        if encoding == "deflate":
            return zlib.compress(data)
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return c.compress(data) + c.flush()

    header = {"Content-Encoding": "deflate" if encoding == "raw-deflate" else encoding}
    ok = site.add("/ok.html", squash("<p>Tiếng Việt</p>".encode() * 100), headers=header)
    assert fetch_page(client, ok, OPEN).body == "<p>Tiếng Việt</p>".encode() * 100
    bomb = squash(b"\0" * 200_000_000)  # 200 MB of zeros in about 200 KB
    url = site.add("/bomb.html", bomb, headers=header)
    with pytest.raises(PermanentError, match="too_large"):
        fetch_page(client, url, OPEN)


def test_unknown_content_encoding_is_refused(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    url = site.add("/x.html", b"\x00\x01", headers={"Content-Encoding": "zstd-custom"})
    with pytest.raises(PermanentError, match="bad_encoding"):
        fetch_page(client, url, OPEN)


def test_slow_loris_hits_the_total_deadline(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    import time

    def drip(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.end_headers()
        try:
            for _ in range(100):
                h.wfile.write(b"<p>x</p>\n")
                h.wfile.flush()
                time.sleep(0.3)  # each read is quick enough; the whole never ends
        except OSError:
            pass

    site.add("/slow", "")
    site.routes["/slow"].handler = drip
    limits = FetchLimits(max_bytes=1_000_000, allow_private=True, total_timeout=2)
    started = time.monotonic()
    with pytest.raises(TemporaryError) as err:
        fetch_page(client, site.url("/slow"), limits)
    assert err.value.reason == "timeout" and time.monotonic() - started < 5


TONES = "\u0300\u0301\u0303\u0309\u0323"  # the combining tone marks windows-1258 has


def cp1258(text: str) -> bytes:
    """Encode Vietnamese as windows-1258 does: letters with their vowel marks, then a combining tone mark."""
    import unicodedata

    out = b""
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            parts = unicodedata.normalize("NFD", ch)
            base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in TONES))
            out += base.encode("cp1258") + "".join(c for c in parts if c in TONES).encode("cp1258")
    return out


VI = "Tuổi trẻ Thủ đô đưa tin về những người dân"


@pytest.mark.parametrize(("body", "ctype"), [
    (cp1258(f"<html><head><meta charset='windows-1258'></head><p>{VI}</p></html>"), "text/html"),
    (cp1258(f"<html><p>{VI}</p></html>"), "text/html; charset=windows-1258"),
    (__import__("unicodedata").normalize("NFD", f"<p>{VI}</p>").encode(), "text/html"),
])
def test_vietnamese_legacy_and_decomposed_pages_come_out_as_nfc(site: LocalSite, client, body: bytes,
                                                                 ctype: str) -> None:  # type: ignore[no-untyped-def]
    from worker.charset import decode_html

    assert VI.encode("utf-8") not in body  # really another byte form
    resp = fetch_page(client, site.add("/vi.html", body, content_type=ctype), OPEN)
    assert VI in decode_html(resp.body, resp.headers.get("content-type"))


def test_redirect_to_loopback_is_refused_when_only_the_site_is_trusted(site: LocalSite, client) -> None:  # type: ignore[no-untyped-def]
    port = site.server.server_address[1]
    site.add("/r", "", status=302, headers={"Location": f"http://127.0.0.1:{port}/admin"})
    # Reach the test site by the name "localhost", the one trusted host; its redirect to 127.0.0.1 is not.
    limits = FetchLimits(max_bytes=1000, allow_private=False, allow_hosts=frozenset({"localhost"}))
    with pytest.raises(PermanentError) as err:
        fetch_page(client, f"http://localhost:{port}/r", limits)
    assert err.value.reason in ("blocked_address", "blocked_port")
    assert "/admin" not in site.hits
