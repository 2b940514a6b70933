"""One feed poll as functions: conditional GET, change detection, parsing, and the next poll time.

No Celery, no Redis: the task layer passes the HTTP client and the stored state in, and stores the outcome.

Scheduling: a feed's interval adapts to how often it publishes. After a successful poll that found `n` new
entries, the observed pace is `elapsed / n` seconds per article; the next interval moves halfway toward the
time in which `TARGET_NEW_PER_POLL` articles appear. A poll with nothing new lengthens the interval by
`QUIET_GROWTH`. The result stays within the feed's `min_interval`..`max_interval`, never below the floors the
server asks for (RSS `<ttl>`, `Cache-Control: max-age`, `Expires`, `Retry-After`), and gets up to 10% jitter so
feeds of one host drift apart. Errors back off exponentially from the interval up to `max_interval`, and the
feed keeps being retried at that pace; only 410 Gone stops polling.
"""

from __future__ import annotations

import email.utils
import hashlib
import random
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import urllib3

from worker.errors import IngestError, PermanentError, TemporaryError
from worker.feeds import parse_feed
from worker.fetch import FetchLimits, fetch_feed
from worker.models import FeedEntry
from worker.registry import FeedState

TARGET_NEW_PER_POLL = 3
QUIET_GROWTH = 1.25
JITTER = 0.1
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.I)


@dataclass(frozen=True)
class PollOutcome:
    result: str  # "ok", "not_modified", "unchanged", or an error reason such as "http_404", "feed_malformed"
    ok: bool
    http_status: int | None = None
    entries: tuple[FeedEntry, ...] = ()
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    moved_to: str | None = None  # new URL after a permanent redirect
    problem: str | None = None  # a malformed feed that still yielded entries
    error: IngestError | None = None
    floor_seconds: float = 0.0  # the server's own minimum wait (ttl, max-age, Expires, Retry-After)
    skipped: int = 0  # entries without a web page link (none, file:, javascript:, malformed, overlong)
    beyond_cap: int = 0  # entries past the cap on entries per poll, not read

    @property
    def gone(self) -> bool:
        return self.result == "http_410"

    @property
    def feed_problem(self) -> str | None:
        """What the feed's health should say: the parser's problem, and the entries this poll left out."""
        parts = [self.problem] if self.problem else []
        if self.skipped:
            parts.append(f"skipped {self.skipped} {'entry' if self.skipped == 1 else 'entries'} whose link is not a "
                         "web page")
        if self.beyond_cap:
            parts.append(f"took the first {len(self.entries)} entries, ignored {self.beyond_cap} more")
        return "; ".join(parts) or None


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def cache_floor(headers: dict[str, str], now: datetime) -> float:
    """Seconds the response may be cached, from Cache-Control max-age or Expires (0 if none)."""
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    if match:
        return float(match.group(1))
    expires = headers.get("expires")
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return 0.0


def poll_feed(client: urllib3.PoolManager, state: FeedState, limits: FetchLimits, now: datetime | None = None,
              max_entries: int | None = None) -> PollOutcome:
    """One poll. `max_entries`: take at most that many entries, the first in feed order."""
    now = now or datetime.now(UTC)
    try:
        resp = fetch_feed(client, state.url, limits, etag=state.etag, last_modified=state.last_modified)
    except IngestError as exc:
        retry_after = exc.retry_after if isinstance(exc, TemporaryError) else None
        status = int(exc.reason[5:]) if exc.reason.startswith("http_") and exc.reason[5:].isdigit() else None
        return PollOutcome(exc.reason, False, http_status=status, error=exc, floor_seconds=retry_after or 0.0)
    base = PollOutcome(
        "not_modified", True, http_status=resp.status, floor_seconds=cache_floor(resp.headers, now),
        moved_to=resp.url if resp.redirected_permanently and resp.url != state.url else None,
        etag=resp.headers.get("etag"), last_modified=resp.headers.get("last-modified"),
    )
    if resp.status == 304:
        return base
    digest = body_hash(resp.body)
    if digest == state.body_hash:
        # Same bytes as last time (servers that ignore conditional requests, or keep the ETag): skip parsing.
        return replace(base, result="unchanged", body_hash=digest)
    try:
        parsed = parse_feed(resp.body, resp.url, resp.headers.get("content-type"), max_entries)
    except PermanentError as exc:
        return replace(base, result=exc.reason, ok=False, error=exc, body_hash=digest)
    floor = max(base.floor_seconds, (parsed.ttl_minutes or 0) * 60.0)
    return replace(base, result="ok", entries=parsed.entries, title=parsed.title, body_hash=digest,
                   problem=parsed.problem, floor_seconds=floor, skipped=parsed.skipped, beyond_cap=parsed.beyond_cap)


def fresh_entries(entries: tuple[FeedEntry, ...], max_age: float | None, now: datetime) -> list[FeedEntry]:
    """Entries not older than `max_age` seconds (entries without a date are kept)."""
    if not max_age:
        return list(entries)
    cutoff = now - timedelta(seconds=max_age)
    return [e for e in entries if e.published_at is None or e.published_at >= cutoff]


def next_interval(state: FeedState, outcome: PollOutcome, new_count: int, now: float) -> float:
    """The feed's interval after this poll (stored; the base of the next backoff), before floors and jitter."""
    if not outcome.ok:
        return float(state.interval)
    if new_count and state.last_success:
        elapsed = max(1.0, now - state.last_success)
        wanted = elapsed / new_count * TARGET_NEW_PER_POLL
        interval = (state.interval + wanted) / 2
    elif new_count:
        interval = float(state.interval)  # first successful poll: nothing to compare with
    else:
        interval = state.interval * QUIET_GROWTH
    return min(max(interval, state.min_interval), state.max_interval)


def next_delay(state: FeedState, outcome: PollOutcome, interval: float) -> float:
    """Seconds until the next poll: the interval on success, exponential backoff on errors; floors, jitter."""
    if outcome.ok:
        delay = interval
    else:
        delay = min(interval * 2.0 ** min(state.consecutive_errors + 1, 16), float(state.max_interval))
    delay = max(delay, min(outcome.floor_seconds, float(state.max_interval)))
    return delay * (1.0 + JITTER * random.random())
