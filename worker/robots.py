"""robots.txt: fetched once per site and cached in Redis for every worker, parsed with protego.

A missing robots.txt (4xx) allows everything; a server error or timeout is temporary (try again later),
as RFC 9309 asks; `Crawl-delay` slows the host's rate limit down.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

import redis
import urllib3
from protego import Protego

from worker.errors import PermanentError
from worker.fetch import FetchLimits, fetch

MAX_ROBOTS_BYTES = 500_000
ALLOW_ALL = ""


def robots_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


def load_robots(client: redis.Redis, http: urllib3.PoolManager, prefix: str, url: str, limits: FetchLimits,
                ttl: int) -> Protego:
    """The site's rules, from the cache or fetched now (then cached for `ttl` seconds)."""
    key = f"{prefix}robots:{robots_url(url)}"
    text = client.get(key)
    if text is None:
        text = _fetch_robots(http, robots_url(url), limits)
        client.set(key, text, ex=ttl)
    return Protego.parse(text)


def _fetch_robots(http: urllib3.PoolManager, url: str, limits: FetchLimits) -> str:
    capped = replace(limits, max_bytes=MAX_ROBOTS_BYTES)
    try:
        resp = fetch(http, url, capped, headers={"Accept": "text/plain, */*;q=0.1"})
    except PermanentError as exc:
        if exc.reason.startswith("http_4") or exc.reason == "too_large":
            return ALLOW_ALL
        raise
    return resp.body.decode("utf-8", errors="replace")


def check_robots(rules: Protego, url: str, agent: str) -> None:
    if not rules.can_fetch(url, agent):
        raise PermanentError("robots", f"disallowed by robots.txt for {agent}")
