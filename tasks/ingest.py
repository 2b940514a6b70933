"""The article task: fetch the page, extract it (in the local process pool), build, publish once."""

from __future__ import annotations

import logging
import random
from typing import Any
from urllib.parse import urlsplit

from celery import Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from tasks import metrics
from tasks.app import app, runtime
from tasks.runtime import Runtime
from worker.article import build_article
from worker.errors import IngestError, TemporaryError
from worker.failures import record_failure
from worker.fetch import fetch_page
from worker.models import Article, FeedEntry, Response
from worker.neardup import find_and_remember, simhash
from worker.politeness import HostBusy, release_lease, wait_for_turn
from worker.robots import check_robots
from worker.stream import publish_article, published_key
from worker.urls import article_id

log = logging.getLogger(__name__)


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    delay = min(cap, base * 2**attempt) * (0.5 + random.random() / 2)
    return min(cap, max(delay, retry_after or 0.0))


@app.task(name="news.ingest_article", bind=True, max_retries=None)
def ingest_article(self: Task, url: str, feed_url: str | None, section: str | None,
                   hints: dict[str, Any] | None = None, feed_title: str | None = None,
                   refresh: bool = False, attempt: int = 1, slot_at: float | None = None) -> str | None:
    """`refresh`: the feed says the entry was updated; fetch again even if published (see worker.stream).
    `attempt` counts failures (waiting for the host's turn is not one); `slot_at` is a reserved start time."""
    try:
        return _ingest(self, url, feed_url, section, hints, feed_title, refresh, attempt, slot_at)
    except (RedisError, OperationalError) as exc:
        # Redis went away mid-task, or while recording a failure or sending a retry: hand the message back. If
        # Redis is still away for that too, the message stays unacked and the broker delivers it again after
        # the visibility timeout. Never ack a task whose outcome was not written.
        raise Reject(f"redis unavailable: {exc}", requeue=True) from None


def _ingest(self: Task, url: str, feed_url: str | None, section: str | None, hints: dict[str, Any] | None,
            feed_title: str | None, refresh: bool, attempt: int, slot_at: float | None) -> str | None:
    rt = runtime()
    s = rt.settings
    stage = "fetch"
    try:
        page = polite_fetch(rt, url, slot_at, unless=None if refresh else published_key(s.key_prefix, article_id(url)))
        if page is None:
            return None  # already on the stream: this task ran before (a redelivery, a duplicate message)
        stage = "extract"
        with metrics.EXTRACT_SECONDS.time():
            extracted = rt.extract(page.body, page.headers.get("content-type"), page.url)
        stage = "build"
        entry = FeedEntry.from_json(hints) if hints else None
        article = build_article(url, extracted, rt.origin(url, feed_url, section, feed_title), entry)
        article = mark_near_duplicate(rt, article)
        stage = "publish"
        published = publish_article(rt.redis, s.stream, s.key_prefix, article,
                                    retention=rt.retention, marker_ttl=s.seen_ttl_seconds * 2)
    except HostBusy as busy:
        metrics.deferred()
        raise self.retry(countdown=busy.countdown, kwargs={**self.request.kwargs, "slot_at": busy.slot_at}) from None
    except TemporaryError as exc:
        if attempt < s.max_attempts:
            log.warning("retrying (attempt %d)", attempt,
                        extra={"url": url, "feed": feed_url, "stage": stage, "reason": exc.reason})
            metrics.retried(stage, exc.reason)
            delay = retry_delay(attempt, s.retry_base_delay, s.retry_max_delay, exc.retry_after)
            raise self.retry(countdown=delay, kwargs={**self.request.kwargs, "attempt": attempt + 1,
                                                      "slot_at": None}) from None
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


def mark_near_duplicate(rt: Runtime, article: Article) -> Article:
    """Set `duplicate_of` when an earlier article has nearly the same text, and remember this one's text."""
    h = simhash(article.text)
    if h is None:
        return article
    earlier = find_and_remember(rt.redis, rt.settings.key_prefix, article.id, h, rt.settings.seen_ttl_seconds)
    return article.model_copy(update={"duplicate_of": earlier}) if earlier else article


def _fail(url: str, feed_url: str | None, stage: str, exc: IngestError, attempts: int) -> None:
    rt = runtime()
    metrics.failed(stage, exc.reason)
    log.info("article dropped", extra={"url": url, "feed": feed_url, "stage": stage, "reason": exc.reason})
    record_failure(rt.redis, rt.settings.key_prefix, url=url, feed=feed_url, stage=stage, reason=exc.reason,
                   detail=exc.detail, attempts=attempts, maxlen=rt.settings.failures_maxlen)
