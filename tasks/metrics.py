"""Prometheus metrics: counters and histograms the tasks update in their own process, and gauges read from
Redis at scrape time (stream, consumer groups, dead letters, feed health). Every `ingest worker` serves its
counters; the one `ingest scheduler` also serves the Redis gauges, so each appears once per deployment.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from tasks.runtime import Runtime
from worker.registry import FeedState
from worker.stream import EVENT_CREATED, EVENT_UPDATED, Published

log = logging.getLogger(__name__)

# No `*_created` series: they double the lines of every scrape and no query here needs them.
disable_created_metrics()

FEED_POLLS = Counter("ingest_feed_polls", "Feed polls by result: ok, not_modified, unchanged, or the error reason.",
                     ["result"])
ARTICLES_PUBLISHED = Counter(
    "ingest_articles_published",
    "Articles through the publish step: article.created, article.updated, or duplicate (nothing written).",
    ["event"])
FAILURES = Counter("ingest_failures", "Failures recorded in the failures log, by stage and reason.",
                   ["stage", "reason"])
RETRIES = Counter("ingest_retries", "Temporary article failures that were retried, by stage and reason.",
                  ["stage", "reason"])
DEFERRALS = Counter("ingest_deferrals", "Article tasks deferred to wait for their host's turn (HostBusy).")
FETCH_SECONDS = Histogram("ingest_fetch_seconds", "Time to fetch an article page (failed fetches included).",
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60))
EXTRACT_SECONDS = Histogram("ingest_extract_seconds", "Time to extract an article from its HTML (failures included).",
                            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

DUPLICATE = "duplicate"
HEALTHS = ("ok", "failing", "paused", "gone")  # FeedState.health; every one is reported, zero or not


def feed_polled(result: str) -> None:
    FEED_POLLS.labels(result).inc()


def article_published(published: Published) -> None:
    event = EVENT_CREATED if published.revision == 1 else EVENT_UPDATED
    ARTICLES_PUBLISHED.labels(event if published.new else DUPLICATE).inc()


def failed(stage: str, reason: str) -> None:
    FAILURES.labels(stage, reason).inc()


def retried(stage: str, reason: str) -> None:
    RETRIES.labels(stage, reason).inc()


def deferred() -> None:
    DEFERRALS.inc()


def stream_report(client: redis.Redis, stream: str, dead_stream: str) -> dict[str, Any]:
    """The stream's length, first entry, dead letters and consumer groups (what `ingest status` shows)."""
    groups = []
    first_id = None
    if client.exists(stream):
        info = client.xinfo_stream(stream)
        first_id = info["first-entry"][0] if info.get("first-entry") else None
        trimmed = max(0, int(info["entries-added"]) - int(info["length"]))
        for g in client.xinfo_groups(stream):
            groups.append({"name": g["name"], "pending": g["pending"], "lag": g.get("lag"),
                           "consumers": g["consumers"], "last_delivered": g["last-delivered-id"],
                           "missed_trimmed_entries": _missed(client, stream, g, trimmed, first_id)})
    return {"name": stream, "length": client.xlen(stream), "first_id": first_id,
            "dead_letters": client.xlen(dead_stream), "groups": groups}


def _ms_seq(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _missed(client: redis.Redis, stream: str, group: dict[str, Any], trimmed: int,
            first_id: str | None) -> int | None:
    """How many entries were trimmed before this group handled them: 0, a count, or None (some, count unknown).

    Two ways to lose one: trimmed before it was delivered (Redis counts the entries a group has read,
    `entries-read`, known for groups made by `worker.consumer`, against all entries ever added), or trimmed
    while delivered but not yet acked (pending, older than the first retained entry).
    """
    if not trimmed or first_id is None:
        return 0
    stale = client.xpending_range(stream, group["name"], min="-", max=f"({first_id}", count=min(trimmed, 100_000))
    read = group.get("entries-read")
    if read is not None:
        return max(0, trimmed - int(read)) + len(stale)
    if _ms_seq(group["last-delivered-id"]) < _ms_seq(first_id):
        return None
    return len(stale)


class RedisCollector(Collector):
    """Gauges computed from Redis at each scrape. `runtime` is called then, so a reconfigured process is
    read through its current clients."""

    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    def describe(self) -> Iterable[Metric]:
        return _families(None, [])

    def collect(self) -> Iterable[Metric]:
        rt = self._runtime()
        s = rt.settings
        try:
            report = stream_report(rt.redis, s.stream, s.dead_letter_stream)
            feeds = rt.registry.all()
        except redis.RedisError as exc:
            # The scrape still answers, so Prometheus sees "Redis unreadable", not a scheduler that is down.
            log.warning("metrics: Redis unreadable", extra={"reason": str(exc)})
            return [_gauge("ingest_redis_up", "1 when this scrape could read the pipeline's state from Redis.", 0)]
        return _families(report, feeds)


def _gauge(name: str, doc: str, value: float | None = None, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value, labels=labels)


def _families(report: dict[str, Any] | None, feeds: list[FeedState]) -> list[Metric]:
    """The gauges; without a report, empty families (for `describe`)."""
    up = _gauge("ingest_redis_up", "1 when this scrape could read the pipeline's state from Redis.")
    length = _gauge("ingest_stream_length", "Entries in the article stream (XLEN).")
    dead = _gauge("ingest_dead_letters", "Entries in the dead-letter stream <stream>:dead.")
    lag = _gauge("ingest_consumer_lag", "Stream entries not yet delivered to the consumer group (Redis's lag; "
                 "absent while Redis cannot tell).", labels=["group"])
    pending = _gauge("ingest_consumer_pending", "Entries delivered to the group and not acked yet.",
                     labels=["group"])
    health = _gauge("ingest_feeds", "Registered feeds by health: ok, failing, paused, gone.", labels=["health"])
    families: list[Metric] = [up, length, dead, lag, pending, health]
    if report is None:
        return families
    up.add_metric([], 1)
    length.add_metric([], report["length"])
    dead.add_metric([], report["dead_letters"])
    for g in report["groups"]:
        if g["lag"] is not None:
            lag.add_metric([g["name"]], g["lag"])
        pending.add_metric([g["name"]], g["pending"])
    counts = Tally(f.health for f in feeds)
    for name in sorted(set(HEALTHS) | set(counts)):
        health.add_metric([name], counts[name])
    return families


def serve(port: int, state: Callable[[], Runtime] | None = None,
          registry: CollectorRegistry = REGISTRY) -> WSGIServer | None:
    """Serve `/metrics` on `port` from a daemon thread; with `state`, the Redis gauges too. Returns the server
    (`shutdown()` stops it), or None when `port` is 0 or taken: a process never stops for its metrics (say, a
    second worker on one host with the default port), it warns."""
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, registry=registry)
    except (OSError, OverflowError) as exc:  # taken, or out of range (INGEST_METRICS_PORT=65535 + 1)
        log.warning("metrics not served on port %d", port, extra={"reason": str(exc)})
        return None
    if state is not None:
        registry.register(RedisCollector(state))
    log.info("metrics served on port %d", server.server_port)
    return server

