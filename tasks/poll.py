"""Feed tasks: the scheduler's tick (enqueue due feeds, one scheduler at a time) and one feed's poll."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from celery import Task
from celery.exceptions import Reject
from redis.exceptions import RedisError

from tasks import metrics
from tasks.app import app, runtime
from tasks.ingest import ingest_article, send_batch
from tasks.runtime import Runtime
from worker.failures import record_failure
from worker.politeness import reserve_slot
from worker.polling import PollOutcome, fresh_entries, next_delay, next_interval
from worker.polling import poll_feed as poll
from worker.registry import ACTIVE, FeedState
from worker.seen import mark_seen, note_listing, sort_sightings
from worker.urls import article_id

log = logging.getLogger(__name__)


@app.task(name="news.schedule_due_feeds")
def schedule_due_feeds() -> int:
    rt = runtime()
    s = rt.settings
    # The lock makes a second scheduler (started by mistake) a no-op rather than a double poll.
    if not rt.redis.set(s.key("lock", "scheduler"), "1", nx=True, px=int(s.tick_seconds * 900)):
        return 0
    fids = rt.registry.claim_due(time.time(), lease=s.redelivery_timeout + 60)
    for fid in fids:
        poll_feed.delay(fid)
    return len(fids)


@app.task(name="news.poll_feed", bind=True)
def poll_feed(self: Task, fid: str) -> int:
    rt = runtime()
    s = rt.settings
    state = rt.registry.get(fid)
    if state is None or state.status != ACTIVE:
        return 0
    lock = s.key("lock", "feed", fid)
    # The lock holds this message's task id: a redelivery of it (its worker died mid-poll, leaving the lock) polls
    # at once instead of dropping the poll until the feed is due again.
    holder = self.request.id or uuid.uuid4().hex
    if not rt.redis.set(lock, holder, nx=True, ex=int(s.total_timeout) + 30) and rt.redis.get(lock) != holder:
        return 0  # being polled right now by another worker
    try:
        # Feeds are few and configured on purpose: fetched at once, but they take a turn from their host's
        # pace, so the article requests that follow keep the rate.
        host = urlsplit(state.url).netloc.lower()
        reserve_slot(rt.redis, s.key_prefix, host, rt.host_policy(host).interval)
        rt.prefetch_robots(state.url)  # the site's articles, usually on the feed's host, will need it next
        outcome = poll(rt.http, state, rt.limits(s.max_feed_bytes), max_entries=s.max_feed_entries)
        log_left_out(state, outcome)
        new = fan_out(rt, state, outcome)
        if not outcome.ok and outcome.error is not None:
            record_failure(rt.redis, s.key_prefix, url=state.url, feed=state.url, stage="feed",
                           reason=outcome.result, detail=outcome.error.detail, maxlen=s.failures_maxlen)
            metrics.failed("feed", outcome.result)
        metrics.feed_polled(outcome.result)
        interval = next_interval(state, outcome, new, time.time())
        log.info("feed polled: %d new, next interval %.0f s", new, interval,
                 extra={"feed": state.url, "status": outcome.result,
                        "reason": outcome.error.reason if outcome.error else None})
        rt.registry.record_poll(
            fid, result=outcome.result, ok=outcome.ok, error=str(outcome.error) if outcome.error else None,
            interval=interval, next_poll=time.time() + next_delay(state, outcome, interval),
            new_articles=new, gone=outcome.gone, fields={
                "etag": outcome.etag, "last_modified": outcome.last_modified, "body_hash": outcome.body_hash,
                "title": outcome.title, "url": outcome.moved_to, "last_status": outcome.http_status,
                # A parsed feed always sets it: "" clears a problem the feed no longer has.
                "problem": (outcome.feed_problem or "") if outcome.result == "ok" else None,
            },
        )
        return new
    except RedisError as exc:
        raise Reject(f"redis unavailable: {exc}", requeue=True) from None  # see news.ingest_article
    finally:
        with contextlib.suppress(RedisError):
            rt.redis.delete(lock)  # if Redis is away, the lock's own expiry frees the feed


def log_left_out(state: FeedState, outcome: PollOutcome) -> None:
    """Entries the feed lists that this poll does not take (also stored as the feed's `problem`)."""
    if outcome.skipped:
        log.info("%d entries skipped: their link is not a web page", outcome.skipped,
                 extra={"feed": state.url, "reason": "bad_url"})
    if outcome.beyond_cap:
        log.info("%d entries ignored past the first %d", outcome.beyond_cap, len(outcome.entries),
                 extra={"feed": state.url, "reason": "too_many_entries"})


def fan_out(rt: Runtime, state: FeedState, outcome: PollOutcome) -> int:
    """Enqueue entries never seen before, and seen ones whose `updated` date moved, `batch_size` to a message;
    note this feed on every entry it lists. Returns how many new."""
    s = rt.settings
    entries = fresh_entries(outcome.entries, state.max_entry_age or s.max_entry_age, datetime.now(UTC))
    by_id = {article_id(e.url): e for e in entries}
    versions = {aid: e.updated_at.timestamp() if e.updated_at else 0.0 for aid, e in by_id.items()}
    note_listing(rt.redis, s.key_prefix, state.url, list(by_id), s.seen_ttl_seconds)
    new, updated = sort_sightings(rt.redis, s.key_prefix, versions)
    refreshed, title = set(updated), outcome.title or state.title
    jobs = [{"url": by_id[aid].url, "hints": by_id[aid].to_json(), "refresh": aid in refreshed}
            for aid in new + updated]
    if s.batch_size > 1:
        for i in range(0, len(jobs), s.batch_size):
            send_batch(state.url, state.section, title, jobs[i:i + s.batch_size])
    else:
        for job in jobs:
            ingest_article.delay(job["url"], state.url, state.section, job["hints"], feed_title=title,
                                 refresh=job["refresh"])
    mark_seen(rt.redis, s.key_prefix, {aid: versions[aid] for aid in new + updated}, s.seen_ttl_seconds)
    return len(new)
