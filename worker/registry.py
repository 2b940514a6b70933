"""The feed registry in Redis: each feed's config and state in a hash, plus a due-time index.

Keys (under the configured prefix): `feed:<fid>` (hash), `feeds:due` (sorted set: fid -> next poll time),
`feeds:all` (set of fids). The scheduler claims due feeds atomically, so a feed is enqueued once per due time.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis

from worker.urls import canonical_url

ACTIVE, PAUSED = "active", "paused"
FAILING_AFTER = 5  # consecutive errors before a feed is shown as failing


def feed_id(url: str) -> str:
    return hashlib.sha256(canonical_url(url).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeedState:
    fid: str
    url: str
    section: str | None
    interval: int
    status: str = ACTIVE
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
        if self.status == PAUSED:
            return PAUSED
        return "failing" if self.consecutive_errors >= FAILING_AFTER else "ok"

    @classmethod
    def from_hash(cls, fid: str, h: dict[str, str]) -> FeedState:
        def num(key: str) -> float | None:
            return float(h[key]) if h.get(key) else None

        return cls(
            fid=fid,
            url=h["url"],
            section=h.get("section") or None,
            interval=int(h.get("interval") or 300),
            status=h.get("status") or ACTIVE,
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

    def add(self, url: str, section: str | None, interval: int, *, now: float | None = None) -> str:
        """Register a feed, or update its section and interval; its polling state is kept."""
        url = canonical_url(url)
        fid = feed_id(url)
        fields = {"url": url, "section": section or "", "interval": interval}
        pipe = self.r.pipeline()
        pipe.hset(self._key(fid), mapping=fields)
        pipe.hsetnx(self._key(fid), "status", ACTIVE)
        pipe.sadd(self.all_key, fid)
        pipe.execute()
        if self.get(fid).status == ACTIVE:
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
        if status == PAUSED:
            self.r.zrem(self.due_key, fid)
        else:
            self.r.zadd(self.due_key, {fid: now if now is not None else time.time()})

    def get(self, fid: str) -> FeedState | None:
        h = self.r.hgetall(self._key(fid))
        return FeedState.from_hash(fid, h) if h else None

    def find(self, url_or_fid: str) -> FeedState | None:
        state = self.get(url_or_fid)
        if state is None and url_or_fid.startswith(("http://", "https://")):
            state = self.get(feed_id(url_or_fid))
        return state

    def all(self) -> list[FeedState]:
        fids = sorted(self.r.smembers(self.all_key))
        pipe = self.r.pipeline(transaction=False)
        for fid in fids:
            pipe.hgetall(self._key(fid))
        return [FeedState.from_hash(f, h) for f, h in zip(fids, pipe.execute(), strict=True) if h]

    def claim_due(self, now: float, lease: float, limit: int = 1000) -> list[str]:
        """Feeds due at `now`, each pushed `lease` seconds ahead so the next tick does not take it again."""
        fids = self.r.zrangebyscore(self.due_key, "-inf", now, start=0, num=limit)
        if fids:
            self.r.zadd(self.due_key, {fid: now + lease for fid in fids}, xx=True)
        return list(fids)

    def record_poll(self, fid: str, *, result: str, next_poll: float, ok: bool, error: str | None = None,
                    new_articles: int = 0, etag: str | None = None, last_modified: str | None = None,
                    title: str | None = None, url: str | None = None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        key = self._key(fid)
        if not self.r.exists(key):
            return  # removed while it was being polled
        fields: dict[str, str | float] = {"last_poll": now, "last_result": result, "next_poll": next_poll}
        if ok:
            fields["last_success"] = now
            fields["last_error"] = ""
            fields["consecutive_errors"] = 0
        else:
            fields["last_error"] = error or result
        for name, value in (("etag", etag), ("last_modified", last_modified), ("title", title), ("url", url)):
            if value is not None:
                fields[name] = value
        pipe = self.r.pipeline()
        pipe.hset(key, mapping=fields)
        if not ok:
            pipe.hincrby(key, "consecutive_errors", 1)
        if new_articles:
            pipe.hincrby(key, "articles_found", new_articles)
        pipe.zadd(self.due_key, {fid: next_poll}, xx=True)
        pipe.execute()
