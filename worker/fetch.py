"""HTTP fetching within limits: the only module that knows the HTTP library (urllib3).

Redirects are followed by hand so every hop passes the address guard; the address actually connected to is
checked too (DNS rebinding). Bodies are read raw while streaming and decompressed here, never more than the
size cap (a compression bomb stops at the cap, without inflating a whole chunk first). Failures map onto the error tree in `worker.errors`.
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    HeaderParsingError,
    HTTPError,
    InvalidHeader,
    LocationValueError,
    NewConnectionError,
    ProtocolError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import parse_url
from urllib3.util.response import assert_header_parsing

from worker.errors import IngestError, PermanentError, TemporaryError
from worker.models import Response
from worker.netguard import check_address, check_url

HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
READ_SIZE = 64 * 1024  # at most one socket read per call: a trickling body still meets the deadline check
KEEPALIVE_EXPIRY = 5.0  # as httpx: a NAT may forget a quiet connection without telling either end


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    allow_private: bool
    max_redirects: int = 5
    total_timeout: float = 60.0
    allow_hosts: frozenset[str] = frozenset()  # trusted even on private addresses


class _StrictResponse(http.client.HTTPResponse):
    """Refuses a head that http.client only half parsed (a line that is not a header ends the headers there,
    and the body's framing with them)."""

    def begin(self) -> None:
        super().begin()
        assert_header_parsing(self.msg)


class _PeerConnection(HTTPConnection):
    """Remembers the address it connected to (http.client lets go of the socket of a response that closes the
    connection, before we could ask it), and is not reused once idle for `KEEPALIVE_EXPIRY` seconds."""

    response_class = _StrictResponse
    peer = ""
    used_at = 0.0

    def connect(self) -> None:
        super().connect()
        self.peer = str(self.sock.getpeername()[0])

    def getresponse(self) -> urllib3.HTTPResponse:
        self.used_at = time.monotonic()
        return super().getresponse()

    @property
    def is_connected(self) -> bool:  # asked by the pool before it reuses the connection
        return time.monotonic() - self.used_at < KEEPALIVE_EXPIRY and super().is_connected


class _PeerTLSConnection(_PeerConnection, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _PeerConnection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _PeerTLSConnection


def make_client(user_agent: str, connect_timeout: float, read_timeout: float,
                pool_size: int = 64) -> urllib3.PoolManager:
    """A thread-safe client: kept-alive connections to up to `pool_size` hosts, `pool_size` each; no cookies
    kept (nothing leaks across hosts), no proxy read from the environment, TLS always verified (certifi)."""
    client = urllib3.PoolManager(
        num_pools=pool_size,
        maxsize=pool_size,
        headers={"User-Agent": user_agent, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"},
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ssl_context=ssl.create_default_context(cafile=certifi.where()),  # loaded once, not per connection
    )
    client.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    return client


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _is_html(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


def fetch(
    client: urllib3.PoolManager,
    url: str,
    limits: FetchLimits,
    *,
    headers: dict[str, str] | None = None,
    html_only: bool = False,
) -> Response:
    """GET `url`; a 2xx or 304 is returned, anything else raises an `IngestError`."""
    deadline = time.monotonic() + limits.total_timeout
    sent = {**client.headers, **headers} if headers else client.headers
    permanent = True
    for _hop in range(limits.max_redirects + 1):
        trusted = check_url(url, limits.allow_private, limits.allow_hosts)
        try:
            resp = client.urlopen("GET", url, headers=sent, redirect=False, preload_content=False,
                                  decode_content=False)
        except (HTTPError, http.client.HTTPException) as exc:
            raise _failure(exc, url, in_head=True) from None
        try:
            if not trusted:
                _check_peer(resp)
            status = resp.status
            got = _header_dict(resp.headers)
            if status in (301, 302, 303, 307, 308) and got.get("location"):
                permanent = permanent and status in (301, 308)
                url = urljoin(url, got["location"])
                continue
            _raise_for_status(status, got)
            if status == 304:
                return Response(url, status, got, b"", permanent and _hop > 0)
            if html_only and not _is_html(got.get("content-type", "text/html")):
                raise PermanentError("not_html", got.get("content-type", ""))
            body = _read_capped(resp, got, limits.max_bytes, deadline)
            return Response(parse_url(url).url, status, got, body, permanent and _hop > 0)
        except (HTTPError, OSError) as exc:
            raise _failure(exc, url, in_head=False) from None
        finally:
            _release(resp)
    raise PermanentError("too_many_redirects", f"more than {limits.max_redirects} redirects")


def _check_peer(resp: urllib3.BaseHTTPResponse) -> None:
    peer = getattr(resp.connection, "peer", "")
    if not peer:  # never expected; refuse rather than skip the check
        raise PermanentError("blocked_address", "the address connected to is unknown")
    check_address(peer, False)


def _release(resp: urllib3.BaseHTTPResponse) -> None:
    """Back to the pool, closed first unless its body was read to the end (as httpx did: what is left unread
    would be taken for the next response)."""
    if not resp.closed:
        resp.close()
    resp.release_conn()


def _failure(exc: Exception, url: str, in_head: bool) -> IngestError:
    """The error tree's name for an HTTP-library exception (`in_head`: raised before the body was read)."""
    cause = exc.args[1] if isinstance(exc, ProtocolError) and len(exc.args) > 1 else exc
    # NewConnectionError (refused, no such host) subclasses ConnectTimeoutError, for urllib3 1.x's sake
    if isinstance(exc, Urllib3Timeout) and not isinstance(exc, NewConnectionError):
        return TemporaryError("timeout", f"{type(exc).__name__} for {url[:200]}")
    if isinstance(exc, LocationValueError) or isinstance(cause, http.client.InvalidURL):
        return PermanentError("bad_url", str(exc)[:200])
    detail = f"{type(cause).__name__}: {str(cause)[:200]}"
    # Headers that break HTTP (a 100 KB Location header, a line that is not a header, over 100 headers) will
    # not get better with a retry; a connection dropped or refused will, and so may a bad status line (what a
    # kept-alive connection reads when the previous response sent more than it declared).
    if in_head and (isinstance(cause, http.client.LineTooLong | HeaderParsingError | InvalidHeader)
                    or type(cause) is http.client.HTTPException):  # "got more than 100 headers"
        return PermanentError("bad_response", detail)
    return TemporaryError("connection", detail)


def _header_dict(headers: urllib3.HTTPHeaderDict) -> dict[str, str]:
    """Lowercase names, repeated headers joined by ", ", values stripped. http.client reads header bytes as
    Latin-1; a head that is valid UTF-8 (a raw UTF-8 Location, say) is read as UTF-8, as httpx did."""
    got = {name.lower(): value.strip() for name, value in headers.itermerged()}
    if all(value.isascii() for value in got.values()):
        return got
    try:
        return {name: value.encode("latin-1").decode() for name, value in got.items()}
    except UnicodeError:
        return got


def _raise_for_status(status: int, headers: dict[str, str]) -> None:
    if status == 429 or status >= 500:
        raise TemporaryError(f"http_{status}", retry_after=parse_retry_after(headers.get("retry-after")))
    if status >= 400 or (status >= 300 and status != 304):
        raise PermanentError(f"http_{status}")


class _Decoder:
    """Content-Encoding decoding that never produces more than asked for (compression bombs stop at the cap)."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()  # zlib-wrapped; raw deflate is retried in `feed`
        else:
            raise PermanentError("bad_encoding", f"unsupported Content-Encoding {encoding!r}")
        self._raw_deflate_tried = encoding != "deflate"

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._z is None:
            return data
        try:
            out = self._z.decompress(data, limit)
        except zlib.error:
            if self._raw_deflate_tried:
                raise PermanentError("bad_encoding", "corrupt compressed body") from None
            self._raw_deflate_tried = True
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._z.decompress(data, limit)
        while self._z.unconsumed_tail and len(out) <= limit:
            out += self._z.decompress(self._z.unconsumed_tail, limit + 1 - len(out))
        return out


def _read_capped(resp: urllib3.BaseHTTPResponse, headers: dict[str, str], max_bytes: int,
                 deadline: float) -> bytes:
    encoding = headers.get("content-encoding", "")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes and not encoding:
        raise PermanentError("too_large", f"Content-Length {declared} > {max_bytes}")
    decoder = _Decoder(encoding)
    chunks: list[bytes] = []
    size = 0
    while raw := resp.read1(READ_SIZE, decode_content=False):
        chunk = decoder.feed(raw, max_bytes + 1 - size)
        size += len(chunk)
        if size > max_bytes:
            raise PermanentError("too_large", f"body over {max_bytes} bytes (decompressed)")
        if time.monotonic() > deadline:
            raise TemporaryError("timeout", "total deadline exceeded while reading")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_page(client: urllib3.PoolManager, url: str, limits: FetchLimits) -> Response:
    return fetch(client, url, limits, headers={"Accept": PAGE_ACCEPT}, html_only=True)


def fetch_feed(
    client: urllib3.PoolManager, url: str, limits: FetchLimits, etag: str | None = None, last_modified: str | None = None
) -> Response:
    headers = {"Accept": FEED_ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return fetch(client, url, limits, headers=headers)
