"""HTTP fetching within limits: the only module that knows the HTTP library (httpx).

Redirects are followed by hand so every hop passes the address guard; the address actually connected to is
checked too (DNS rebinding). Bodies are read raw while streaming and decompressed here, never more than the
size cap (a compression bomb stops at the cap, without inflating a whole chunk first). Failures map onto the error tree in `worker.errors`.
"""

from __future__ import annotations

import email.utils
import time
import zlib
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urljoin

import httpx

from worker.errors import PermanentError, TemporaryError
from worker.models import Response
from worker.netguard import check_address, check_url

HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    allow_private: bool
    max_redirects: int = 5
    total_timeout: float = 60.0
    allow_hosts: frozenset[str] = frozenset()  # trusted even on private addresses


def make_client(user_agent: str, connect_timeout: float, read_timeout: float, pool_size: int = 64) -> httpx.Client:
    """A thread-safe client: no cookies kept (nothing leaks across hosts), TLS always verified."""
    return httpx.Client(
        headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        follow_redirects=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
        verify=True,
    )


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
    client: httpx.Client,
    url: str,
    limits: FetchLimits,
    *,
    headers: dict[str, str] | None = None,
    html_only: bool = False,
) -> Response:
    """GET `url`; a 2xx or 304 is returned, anything else raises an `IngestError`."""
    deadline = time.monotonic() + limits.total_timeout
    permanent = True
    for _hop in range(limits.max_redirects + 1):
        trusted = check_url(url, limits.allow_private, limits.allow_hosts)
        try:
            with client.stream("GET", url, headers=headers) as resp:
                stream = resp.extensions.get("network_stream")
                peer = stream.get_extra_info("server_addr") if stream is not None else None
                if peer and not trusted:
                    check_address(str(peer[0]), False)
                status = resp.status_code
                if status in (301, 302, 303, 307, 308) and resp.headers.get("location"):
                    permanent = permanent and status in (301, 308)
                    url = urljoin(url, resp.headers["location"])
                    continue
                _raise_for_status(status, resp.headers)
                if status == 304:
                    return Response(url, status, dict(resp.headers), b"", permanent and _hop > 0)
                if html_only and not _is_html(resp.headers.get("content-type", "text/html")):
                    raise PermanentError("not_html", resp.headers.get("content-type", ""))
                body = _read_capped(resp, limits.max_bytes, deadline)
                return Response(str(resp.url), status, dict(resp.headers), body, permanent and _hop > 0)
        except httpx.TimeoutException as exc:
            raise TemporaryError("timeout", f"{type(exc).__name__} for {url[:200]}") from None
        except httpx.InvalidURL as exc:
            raise PermanentError("bad_url", str(exc)) from None
        except httpx.DecodingError as exc:
            raise PermanentError("bad_encoding", str(exc)[:200]) from None
        except httpx.RemoteProtocolError as exc:
            # A response that breaks HTTP itself (e.g. a 100 KB Location header) will not get better with a
            # retry; a connection dropped mid-response will.
            if "header" in str(exc).lower():
                raise PermanentError("bad_response", str(exc)[:200]) from None
            raise TemporaryError("connection", f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise TemporaryError("connection", f"{type(exc).__name__}: {str(exc)[:200]}") from None
    raise PermanentError("too_many_redirects", f"more than {limits.max_redirects} redirects")


def _raise_for_status(status: int, headers: httpx.Headers) -> None:
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


def _read_capped(resp: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    encoding = resp.headers.get("content-encoding", "")
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes and not encoding:
        raise PermanentError("too_large", f"Content-Length {declared} > {max_bytes}")
    decoder = _Decoder(encoding)
    chunks: list[bytes] = []
    size = 0
    for raw in resp.iter_raw():
        chunk = decoder.feed(raw, max_bytes + 1 - size)
        size += len(chunk)
        if size > max_bytes:
            raise PermanentError("too_large", f"body over {max_bytes} bytes (decompressed)")
        if time.monotonic() > deadline:
            raise TemporaryError("timeout", "total deadline exceeded while reading")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_page(client: httpx.Client, url: str, limits: FetchLimits) -> Response:
    return fetch(client, url, limits, headers={"Accept": PAGE_ACCEPT}, html_only=True)


def fetch_feed(
    client: httpx.Client, url: str, limits: FetchLimits, etag: str | None = None, last_modified: str | None = None
) -> Response:
    headers = {"Accept": FEED_ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return fetch(client, url, limits, headers=headers)
