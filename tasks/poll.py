"""Feed tasks: the scheduler's tick (enqueue due feeds, one scheduler at a time) and one feed's poll."""

from __future__ import annotations

import logging
import time

from tasks.app import app, runtime
from tasks.ingest import ingest_article
from worker.failures import record_failure
from worker.polling import next_poll_delay
from worker.polling import poll_feed as poll
from worker.registry import ACTIVE
from worker.seen import mark_seen, unseen
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


@app.task(name="news.poll_feed")
def poll_feed(fid: str) -> int:
    rt = runtime()
    s = rt.settings
    state = rt.registry.get(fid)
    if state is None or state.status != ACTIVE:
        return 0
    lock = s.key("lock", "feed", fid)
    if not rt.redis.set(lock, "1", nx=True, ex=int(s.total_timeout) + 30):
        return 0  # being polled right now by another worker
    try:
        outcome = poll(rt.http, state, rt.limits(s.max_feed_bytes))
        ids = {article_id(e.url): e for e in outcome.entries}
        new = unseen(rt.redis, s.key_prefix, list(ids))
        section = state.section or outcome.title
        for aid in new:
            ingest_article.delay(ids[aid].url, state.url, section, ids[aid].to_json())
        mark_seen(rt.redis, s.key_prefix, new, s.seen_ttl_seconds)
        if not outcome.ok and outcome.error is not None:
            record_failure(rt.redis, s.key_prefix, url=state.url, feed=state.url, stage="feed",
                           reason=outcome.result, detail=outcome.error.detail, maxlen=s.failures_maxlen)
        log.info("feed polled feed=%s status=%s new=%d", state.url, outcome.result, len(new))
        rt.registry.record_poll(
            fid, result=outcome.result, ok=outcome.ok, error=str(outcome.error) if outcome.error else None,
            next_poll=time.time() + next_poll_delay(state, outcome, s.max_interval), new_articles=len(new),
            etag=outcome.etag, last_modified=outcome.last_modified, title=outcome.title, url=outcome.moved_to,
        )
        return len(new)
    finally:
        rt.redis.delete(lock)
