"""The feed registry in Redis: each feed's config and state in a hash, plus a due-time index.

Keys (under the configured prefix): `feed:<fid>` (hash), `feeds:due` (sorted set: fid -> next poll time),
`feeds:all` (set of fids). A scheduler tick claims the due feeds in one Lua call (O(log n + due)), pushing each
a lease ahead, so a feed is enqueued once per due time even if two schedulers tick together.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis

from worker.urls import canonical_url

ACTIVE, PAUSED, GONE = "active", "paused", "gone"
FAILING_AFTER = 5  # consecutive errors before a feed is shown as failing
DEFAULT_MIN_INTERVAL = 120
DEFAULT_MAX_INTERVAL = 6 * 3600

_CLAIM = """
local fids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, fid in ipairs(fids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], fid) end
return fids
"""


def feed_id(url: str) -> str:
    return hashlib.sha256(canonical_url(url).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeedState:
    fid: str
    url: str
    section: str | None
    interval: float
    status: str = ACTIVE
    min_interval: float = DEFAULT_MIN_INTERVAL
    max_interval: float = DEFAULT_MAX_INTERVAL
    max_entry_age: float | None = None
    body_hash: str | None = None
    last_status: int | None = None
    last_success: float | None = None
    problem: str | None = None
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_poll: float | None = None
    last_result: str | None = None
    last_error: str | None = None
    next_poll: float | None = None
    articles_found: int = 0
    consecutive_errors: int = 0

    @property
    def health(self) -> str:
        if self.status in (PAUSED, GONE):
            return self.status
        return "failing" if self.consecutive_errors >= FAILING_AFTER else "ok"

    @classmethod
    def from_hash(cls, fid: str, h: dict[str, str]) -> FeedState:
        def num(key: str) -> float | None:
            return float(h[key]) if h.get(key) else None

        return cls(
            fid=fid,
            url=h["url"],
            section=h.get("section") or None,
            interval=float(h.get("interval") or 300),
            status=h.get("status") or ACTIVE,
            min_interval=float(h.get("min_interval") or DEFAULT_MIN_INTERVAL),
            max_interval=float(h.get("max_interval") or DEFAULT_MAX_INTERVAL),
            max_entry_age=num("max_entry_age"),
            body_hash=h.get("body_hash") or None,
            last_status=int(h["last_status"]) if h.get("last_status") else None,
            last_success=num("last_success"),
            problem=h.get("problem") or None,
            title=h.get("title") or None,
            etag=h.get("etag") or None,
            last_modified=h.get("last_modified") or None,
            last_poll=num("last_poll"),
            last_result=h.get("last_result") or None,
            last_error=h.get("last_error") or None,
            next_poll=num("next_poll"),
            articles_found=int(h.get("articles_found") or 0),
            consecutive_errors=int(h.get("consecutive_errors") or 0),
        )


class Registry:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.prefix = prefix
        self.due_key = prefix + "feeds:due"
        self.all_key = prefix + "feeds:all"

    def _key(self, fid: str) -> str:
        return f"{self.prefix}feed:{fid}"

    def add(self, url: str, section: str | None, interval: float, *, min_interval: float | None = None,
            max_interval: float | None = None, max_entry_age: float | None = None,
            now: float | None = None) -> str:
        """Register a feed, or update its configuration; its polling state is kept.

        `interval` is the starting point of the adaptive schedule. It may be below the default minimum
        only when the feed sets its own `min_interval`.
        """
        url = canonical_url(url)
        fid = feed_id(url)
        low = min_interval if min_interval is not None else min(DEFAULT_MIN_INTERVAL, interval)
        high = max_interval if max_interval is not None else max(DEFAULT_MAX_INTERVAL, interval)
        if low > high:
            raise ValueError(f"min_interval {low} is above max_interval {high}")
        fields = {
            "url": url, "section": section or "", "interval": min(max(interval, low), high),
            "min_interval": low, "max_interval": high, "max_entry_age": max_entry_age or "",
        }
        key = self._key(fid)
        pipe = self.r.pipeline()
        pipe.hget(key, "url")
        pipe.hset(key, mapping=fields)
        pipe.hsetnx(key, "status", ACTIVE)
        pipe.sadd(self.all_key, fid)
        pipe.hget(key, "status")
        old_url, *_rest, status = pipe.execute()
        if old_url and old_url != url:
            self.r.hset(key, "url", old_url)  # keep the address a permanent redirect taught us
        if status == ACTIVE:
            self.r.zadd(self.due_key, {fid: now if now is not None else time.time()}, nx=True)
        return fid

    def remove(self, fid: str) -> bool:
        pipe = self.r.pipeline()
        pipe.delete(self._key(fid))
        pipe.zrem(self.due_key, fid)
        pipe.srem(self.all_key, fid)
        return bool(pipe.execute()[0])

    def set_status(self, fid: str, status: str, *, now: float | None = None) -> None:
        self.r.hset(self._key(fid), "status", status)
        if status != ACTIVE:
            self.r.zrem(self.due_key, fid)
        else:
            self.r.zadd(self.due_key, {fid: now if now is not None else time.time()})

    def get(self, fid: str) -> FeedState | None:
        h = self.r.hgetall(self._key(fid))
        return FeedState.from_hash(fid, h) if h else None

    def find(self, url_or_fid: str) -> FeedState | None:
        """A feed by id, by the URL it was added with, or by its current URL (after a redirect)."""
        state = self.get(url_or_fid)
        if state is None and url_or_fid.startswith(("http://", "https://")):
            state = self.get(feed_id(url_or_fid))
            if state is None:
                url = canonical_url(url_or_fid)
                state = next((f for f in self.all() if f.url == url), None)
        return state

    def all(self) -> list[FeedState]:
        fids = sorted(self.r.smembers(self.all_key))
        pipe = self.r.pipeline(transaction=False)
        for fid in fids:
            pipe.hgetall(self._key(fid))
        return [FeedState.from_hash(f, h) for f, h in zip(fids, pipe.execute(), strict=True) if h]

    def claim_due(self, now: float, lease: float, limit: int = 1000) -> list[str]:
        """Feeds due at `now`, each pushed `lease` seconds ahead so the next tick does not take it again."""
        return list(self.r.eval(_CLAIM, 1, self.due_key, now, now + lease, limit))

    def record_poll(self, fid: str, *, result: str, ok: bool, next_poll: float, interval: float | None = None,
                    error: str | None = None, new_articles: int = 0, gone: bool = False,
                    fields: dict[str, str | int | float | None] | None = None, now: float | None = None) -> None:
        """Store one poll's outcome. `fields` are extra state (etag, last_modified, body_hash, title, url, ...);
        None values leave the stored ones alone."""
        now = time.time() if now is None else now
        key = self._key(fid)
        if not self.r.exists(key):
            return  # removed while it was being polled
        update: dict[str, str | int | float] = {"last_poll": now, "last_result": result, "next_poll": next_poll}
        if interval is not None:
            update["interval"] = round(interval, 1)
        if ok:
            update.update(last_success=now, last_error="", consecutive_errors=0)
        else:
            update["last_error"] = error or result
        update.update({k: v for k, v in (fields or {}).items() if v is not None})
        pipe = self.r.pipeline()
        pipe.hset(key, mapping=update)
        if not ok:
            pipe.hincrby(key, "consecutive_errors", 1)
        if new_articles:
            pipe.hincrby(key, "articles_found", new_articles)
        if gone:
            pipe.hset(key, "status", GONE)
            pipe.zrem(self.due_key, fid)
        else:
            pipe.zadd(self.due_key, {fid: next_poll}, xx=True)
        pipe.execute()
