"""The article tasks: fetch the page, extract it (in a local extraction process), build, publish once; one article
per message, or the new entries of a feed poll in one message."""

from __future__ import annotations

import logging
import random
import time
from typing import Any
from urllib.parse import urlsplit

from celery import Task
from celery.exceptions import Reject
from celery.worker import state as worker_state
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from tasks import metrics
from tasks.app import app, runtime
from tasks.runtime import Runtime
from worker.article import build_article
from worker.errors import IngestError, TemporaryError
from worker.failures import record_failure
from worker.fetch import fetch_page
from worker.models import FeedEntry, Response
from worker.neardup import find_and_remember_args, nearest
from worker.politeness import HostBusy, release_lease, wait_for_turn
from worker.robots import check_robots
from worker.seen import listed_key
from worker.stream import publish_article, published_key
from worker.urls import article_id

log = logging.getLogger(__name__)


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    delay = min(cap, base * 2**attempt) * (0.5 + random.random() / 2)
    return min(cap, max(delay, retry_after or 0.0))


class Later(Exception):
    """Run this article's task again in `countdown` seconds, with `changes` to its arguments: a deferral to the
    host's turn (not an attempt), or a retry after a temporary error."""

    def __init__(self, countdown: float, **changes: Any) -> None:
        super().__init__(f"again in {countdown:.1f}s")
        self.countdown = countdown
        self.changes = changes


@app.task(name="news.ingest_article", bind=True, max_retries=None)
def ingest_article(self: Task, url: str, feed_url: str | None, section: str | None,
                   hints: dict[str, Any] | None = None, feed_title: str | None = None,
                   refresh: bool = False, attempt: int = 1, slot_at: float | None = None) -> str | None:
    """One article. `refresh`: the feed says the entry was updated; fetch again even if published (see
    worker.stream). `attempt` counts failures (waiting for the host's turn is not one); `slot_at` is a reserved
    start time."""
    try:
        return ingest_one(url, feed_url, section, hints, feed_title, refresh, attempt, slot_at)
    except Later as later:
        raise self.retry(countdown=later.countdown, kwargs={**self.request.kwargs, **later.changes}) from None
    except (RedisError, OperationalError) as exc:
        raise _redis_away(exc) from None


@app.task(name="news.ingest_batch")
def ingest_batch(feed_url: str | None, section: str | None, feed_title: str | None,
                 entries: list[dict[str, Any]]) -> int:
    """New entries of one feed poll in one message (Celery's cost per message is a large share of an article's
    CPU): each done in turn as news.ingest_article would, on this thread. An entry to run again later (its host's
    turn, a retry) goes on as its own news.ingest_article. Past half the redelivery timeout, or when the
    worker is asked to stop, the entries not begun go on as a new batch: no message runs long enough to be
    delivered twice, and a warm shutdown waits for one article per thread, not a whole batch. Returns how many of
    its entries it put on the stream (or found there unchanged after fetching them again)."""
    deadline = time.monotonic() + runtime().settings.redelivery_timeout / 2
    done = 0
    try:
        for i, entry in enumerate(entries):
            if i and (time.monotonic() > deadline or _stopping()):
                log.info("batch handed on: %d entries not begun", len(entries) - i, extra={"feed": feed_url})
                send_batch(feed_url, section, feed_title, entries[i:])
                break
            single = {"url": entry["url"], "feed_url": feed_url, "section": section, "hints": entry.get("hints"),
                      "feed_title": feed_title, "refresh": bool(entry.get("refresh"))}
            try:
                done += ingest_one(**single) is not None
            except Later as later:
                ingest_article.apply_async(kwargs={**single, **later.changes}, countdown=later.countdown)
    except (RedisError, OperationalError) as exc:
        raise _redis_away(exc) from None  # the entries done are skipped when it comes back: they are published
    return done


def send_batch(feed_url: str | None, section: str | None, feed_title: str | None,
               entries: list[dict[str, Any]]) -> None:
    """Enqueue news.ingest_batch. Its arguments are shown in monitoring (Flower, events) as the feed and the number
    of entries: left to Celery, that text is a bounded repr of every entry's hints, which cost more CPU than
    sending the message."""
    ingest_batch.apply_async((feed_url, section, feed_title, entries), kwargsrepr="{}",
                             argsrepr=f"({feed_url!r}, {section!r}, {feed_title!r}, <{len(entries)} entries>)")


def _stopping() -> bool:
    """A warm shutdown has begun (Celery sets the exit code, often 0, so compare by identity as Celery does)."""
    return worker_state.should_stop is not None and worker_state.should_stop is not False


def _redis_away(exc: Exception) -> Reject:
    # Redis went away mid-task, or while recording a failure or sending a retry: hand the message back. If Redis
    # is still away for that too, the message stays unacked and the broker delivers it again after the
    # visibility timeout. Never ack a task whose outcome was not written.
    return Reject(f"redis unavailable: {exc}", requeue=True)


def ingest_one(url: str, feed_url: str | None, section: str | None, hints: dict[str, Any] | None = None,
               feed_title: str | None = None, refresh: bool = False, attempt: int = 1,
               slot_at: float | None = None) -> str | None:
    """Fetch, extract, build and publish one article; record a final failure. Returns the stream entry id, or
    None (already published, or failed). Raises Later to run again, RedisError when Redis is away."""
    rt = runtime()
    s = rt.settings
    aid = article_id(url)
    stage = "fetch"
    try:
        page = polite_fetch(rt, url, slot_at, unless=None if refresh else published_key(s.key_prefix, aid))
        if page is None:
            return None  # already on the stream: this task ran before (a redelivery, a duplicate message)
        stage = "extract"
        with metrics.EXTRACT_SECONDS.time():
            extracted = rt.extract(page.body, page.headers.get("content-type"), page.url)
        stage = "build"
        entry = FeedEntry.from_json(hints) if hints else None
        listed, earlier = listings_and_near_duplicate(rt, aid, extracted.simhash)
        article = build_article(url, extracted, rt.origin(url, feed_url, section, feed_title, listed), entry)
        if earlier is not None:
            article = article.model_copy(update={"duplicate_of": earlier})
        stage = "publish"
        # The page's own title and text (not the feed's title): the extraction process hashed them already.
        same = (article.title, article.text) == (extracted.title, extracted.text)
        published = publish_article(rt.redis, s.stream, s.key_prefix, article, retention=rt.retention,
                                    marker_ttl=s.seen_ttl_seconds * 2, known_hash=extracted.content_hash if same else None)
    except HostBusy as busy:
        metrics.deferred()
        raise Later(busy.countdown, slot_at=busy.slot_at) from None
    except TemporaryError as exc:
        if attempt < s.max_attempts:
            log.warning("retrying (attempt %d)", attempt,
                        extra={"url": url, "feed": feed_url, "stage": stage, "reason": exc.reason})
            metrics.retried(stage, exc.reason)
            delay = retry_delay(attempt, s.retry_base_delay, s.retry_max_delay, exc.retry_after)
            raise Later(delay, attempt=attempt + 1, slot_at=None) from None
        _fail(url, feed_url, stage, exc, attempt)
        return None
    except IngestError as exc:
        _fail(url, feed_url, stage, exc, attempt)
        return None
    except RedisError:
        raise
    except Exception as exc:  # a bug on one page: record it rather than re-deliver the page forever
        log.exception("unexpected error", extra={"url": url, "feed": feed_url, "stage": stage})
        _fail(url, feed_url, stage, IngestError("internal_error", f"{type(exc).__name__}: {exc}"[:300]), attempt)
        return None
    metrics.article_published(published)
    log.info("article %s: entry %s, revision %d", "published" if published.new else "already on the stream",
             published.entry_id, published.revision,
             extra={"url": url, "feed": feed_url, "status": "published" if published.new else "duplicate"})
    return published.entry_id


def polite_fetch(rt: Runtime, url: str, slot_at: float | None, unless: str | None = None) -> Response | None:
    """Fetch a page if robots.txt allows it, in the host's turn (rate and concurrency shared via Redis); None,
    without a request, if the key `unless` exists."""
    s = rt.settings
    host = urlsplit(url).netloc.lower()  # politeness is per origin server: host and port
    rules = rt.robots(url)
    check_robots(rules, url, s.robots_agent)
    policy = rt.host_policy(host, rules.crawl_delay(s.robots_agent))
    token = wait_for_turn(rt.redis, s.key_prefix, host, policy, slot_at=slot_at, max_defer=s.max_defer,
                          lease_ttl=s.total_timeout + 30, unless=unless)
    if token is None:
        return None
    try:
        with metrics.FETCH_SECONDS.time():
            return fetch_page(rt.http, url, rt.limits(s.max_page_bytes))
    finally:
        release_lease(rt.redis, s.key_prefix, host, token)


def listings_and_near_duplicate(rt: Runtime, aid: str, h: int | None) -> tuple[tuple[str, ...], str | None]:
    """In one round trip: the feeds that list the article, and an earlier article with nearly the same text
    (SimHash `h`; None for a text too short to judge), this one's text remembered for later ones."""
    s = rt.settings
    if h is None:
        return tuple(sorted(rt.redis.smembers(listed_key(s.key_prefix, aid)))), None
    *bands, listed = rt.redis.eval(*find_and_remember_args(s.key_prefix, aid, h, s.seen_ttl_seconds,
                                                           also_read=(listed_key(s.key_prefix, aid),)))
    return tuple(sorted(listed)), nearest(bands, aid, h)


def _fail(url: str, feed_url: str | None, stage: str, exc: IngestError, attempts: int) -> None:
    rt = runtime()
    metrics.failed(stage, exc.reason)
    log.info("article dropped", extra={"url": url, "feed": feed_url, "stage": stage, "reason": exc.reason})
    record_failure(rt.redis, rt.settings.key_prefix, url=url, feed=feed_url, stage=stage, reason=exc.reason,
                   detail=exc.detail, attempts=attempts, maxlen=rt.settings.failures_maxlen)
