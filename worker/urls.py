"""URL identity: resolve a feed link, canonicalise it (courlan), and derive the stable article id."""

from __future__ import annotations

import hashlib
from urllib.parse import urljoin, urlsplit, urlunsplit

from courlan import normalize_url

from worker.errors import PermanentError

MAX_URL_LENGTH = 2048


def canonical_url(url: str, base: str | None = None) -> str:
    """Absolute http(s) URL with tracking parameters, fragment and default port removed, host lowercased.

    Raises PermanentError("bad_url") for anything that cannot name a web page.
    """
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise PermanentError("bad_url", f"URL longer than {MAX_URL_LENGTH} characters")
    if base:
        try:
            url = urljoin(base, url)
        except ValueError as exc:  # e.g. a malformed bracketed host, "http://[oops/"
            raise PermanentError("bad_url", f"{url[:200]!r}: {exc}") from None
    if len(url) > MAX_URL_LENGTH:
        raise PermanentError("bad_url", f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise PermanentError("bad_url", f"{url[:200]!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PermanentError("bad_url", f"not an http(s) URL: {url[:200]!r}")
    try:
        normalised = normalize_url(url)
    except (ValueError, TypeError) as exc:
        raise PermanentError("bad_url", f"{url[:200]!r}: {exc}") from None
    parts = urlsplit(normalised)
    path = parts.path or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def article_id(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def site_domain(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host
