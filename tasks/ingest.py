"""The article task: fetch the page, extract it (in the local process pool), build, publish once."""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task

from tasks.app import app, runtime
from worker.article import build_article
from worker.charset import decode_html
from worker.errors import IngestError, TemporaryError
from worker.failures import record_failure
from worker.fetch import fetch_page
from worker.models import FeedEntry
from worker.stream import is_published, publish_article
from worker.urls import article_id

log = logging.getLogger(__name__)


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    delay = min(cap, base * 2**attempt) * (0.5 + random.random() / 2)
    return min(cap, max(delay, retry_after or 0.0))


@app.task(name="news.ingest_article", bind=True, max_retries=None)
def ingest_article(self: Task, url: str, feed_url: str | None, section: str | None,
                   hints: dict[str, Any] | None = None, feed_title: str | None = None,
                   refresh: bool = False) -> str | None:
    """`refresh`: the feed says the entry was updated; fetch again even if published (see worker.stream)."""
    rt = runtime()
    s = rt.settings
    if not refresh and is_published(rt.redis, s.key_prefix, article_id(url)):
        return None
    stage = "fetch"
    try:
        page = fetch_page(rt.http, url, rt.limits(s.max_page_bytes))
        stage = "extract"
        extracted = rt.extract(decode_html(page.body, page.headers.get("content-type")), page.url)
        stage = "build"
        entry = FeedEntry.from_json(hints) if hints else None
        article = build_article(url, extracted, rt.origin(url, feed_url, section, feed_title), entry)
        stage = "publish"
        published = publish_article(rt.redis, s.stream, s.key_prefix, article,
                                    retention=rt.retention, marker_ttl=s.seen_ttl_seconds * 2)
    except TemporaryError as exc:
        attempt = self.request.retries + 1
        if attempt < s.max_attempts:
            log.warning("retrying url=%s stage=%s reason=%s attempt=%d", url, stage, exc.reason, attempt)
            raise self.retry(countdown=retry_delay(attempt, s.retry_base_delay, s.retry_max_delay,
                                                   exc.retry_after)) from None
        _fail(url, feed_url, stage, exc, attempt)
        return None
    except IngestError as exc:
        _fail(url, feed_url, stage, exc, self.request.retries + 1)
        return None
    log.info("article published url=%s entry=%s new=%s revision=%d", url, published.entry_id, published.new,
             published.revision)
    return published.entry_id


def _fail(url: str, feed_url: str | None, stage: str, exc: IngestError, attempts: int) -> None:
    rt = runtime()
    log.info("article dropped url=%s stage=%s reason=%s", url, stage, exc.reason)
    record_failure(rt.redis, rt.settings.key_prefix, url=url, feed=feed_url, stage=stage, reason=exc.reason,
                   detail=exc.detail, attempts=attempts, maxlen=rt.settings.failures_maxlen)
