"""One feed poll as a function: conditional GET, parse, and the time of the next poll.

No Celery, no Redis: the task layer passes the HTTP client in and stores the outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from worker.errors import IngestError, PermanentError, TemporaryError
from worker.feeds import parse_feed
from worker.fetch import FetchLimits, fetch_feed
from worker.models import FeedEntry
from worker.registry import FeedState


@dataclass(frozen=True)
class PollOutcome:
    result: str  # "ok", "not_modified", or an error reason such as "http_404", "feed_malformed"
    ok: bool
    entries: tuple[FeedEntry, ...] = ()
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None  # new URL after a permanent redirect
    problem: str | None = None  # a malformed feed that still yielded entries
    error: IngestError | None = None
    ttl_seconds: float | None = None


def poll_feed(client: httpx.Client, state: FeedState, limits: FetchLimits) -> PollOutcome:
    try:
        resp = fetch_feed(client, state.url, limits, etag=state.etag, last_modified=state.last_modified)
    except IngestError as exc:
        return PollOutcome(result=exc.reason, ok=False, error=exc)
    moved = resp.url if resp.redirected_permanently and resp.url != state.url else None
    etag = resp.headers.get("etag")
    last_modified = resp.headers.get("last-modified")
    if resp.status == 304:
        return PollOutcome("not_modified", True, etag=etag, last_modified=last_modified, moved_to=moved)
    try:
        parsed = parse_feed(resp.body, resp.url, resp.headers.get("content-type"))
    except PermanentError as exc:
        return PollOutcome(result=exc.reason, ok=False, error=exc, moved_to=moved)
    return PollOutcome(
        "ok", True, entries=parsed.entries, title=parsed.title, etag=etag, last_modified=last_modified,
        moved_to=moved, problem=parsed.problem,
        ttl_seconds=parsed.ttl_minutes * 60.0 if parsed.ttl_minutes else None,
    )


def next_poll_delay(state: FeedState, outcome: PollOutcome, max_interval: int) -> float:
    """Seconds until the next poll: the interval on success, exponential backoff on errors, with jitter."""
    if outcome.ok:
        delay = float(state.interval)
        if outcome.ttl_seconds:
            delay = max(delay, min(outcome.ttl_seconds, float(max_interval)))
    else:
        errors = state.consecutive_errors + 1
        delay = min(state.interval * 2.0 ** min(errors, 16), float(max_interval))
        if isinstance(outcome.error, TemporaryError) and outcome.error.retry_after:
            delay = max(delay, min(outcome.error.retry_after, float(max_interval)))
    # Up to 10% jitter, so feeds of one host registered together drift apart.
    return delay * (1.0 + 0.1 * random.random())

