"""Prometheus metrics: task bodies run directly against real Redis and a local site, then a real `/metrics`
endpoint is scraped over HTTP (counters as deltas: the default registry lives as long as the test process)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from celery.exceptions import Retry
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from demo.site import LocalSite, rss
from tasks.app import configure
from tasks.ingest import ingest_article
from tasks.metrics import serve
from tasks.poll import poll_feed
from tasks.runtime import Runtime
from tasks.stack import free_port
from worker.registry import Registry

PAGE = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_bytes()
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with httpx.Client(trust_env=False) as http:
        resp = http.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    resp.raise_for_status()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    yield configure(settings)
    configure(settings)


@pytest.fixture
def counters() -> Iterator[Callable[[], Samples]]:
    """The worker's endpoint: the process-wide counters and histograms."""
    server = serve(free_port())
    assert server is not None
    yield lambda: scrape(server.server_port)
    server.shutdown()
    server.server_close()


@pytest.fixture
def gauges(rt: Runtime) -> Iterator[Callable[[], Samples]]:
    """The scheduler's endpoint: the gauges read from Redis (a registry of their own, to leave the global one)."""
    server = serve(free_port(), state=lambda: rt, registry=CollectorRegistry())
    assert server is not None
    yield lambda: scrape(server.server_port)
    server.shutdown()
    server.server_close()


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_a_404_article_is_one_failure_at_fetch(rt: Runtime, site: LocalSite, counters: Callable[[], Samples]) -> None:
    before = counters()
    assert ingest_article(site.url("/missing.html"), None, None) is None
    after = counters()
    assert delta(before, after, "ingest_failures_total", stage="fetch", reason="http_404") == 1
    assert delta(before, after, "ingest_fetch_seconds_count") == 1  # a failed fetch is timed too
    assert delta(before, after, "ingest_extract_seconds_count") == 0
    assert delta(before, after, "ingest_articles_published_total", event="article.created") == 0


def test_created_duplicate_and_updated_articles(rt: Runtime, site: LocalSite,
                                                counters: Callable[[], Samples]) -> None:
    url = site.add("/a.html", PAGE)
    before = counters()
    assert ingest_article(url, None, None) is not None
    assert ingest_article(url, None, None) is None  # already published: skipped before any fetch
    ingest_article(url, None, None, refresh=True)  # fetched again, same text: nothing written
    site.add("/a.html", PAGE.replace("Bệnh xuất hiện chủ yếu".encode(), "Bệnh thường xuất hiện".encode()))
    ingest_article(url, None, None, refresh=True)
    after = counters()
    assert delta(before, after, "ingest_articles_published_total", event="article.created") == 1
    assert delta(before, after, "ingest_articles_published_total", event="duplicate") == 1
    assert delta(before, after, "ingest_articles_published_total", event="article.updated") == 1
    assert delta(before, after, "ingest_fetch_seconds_count") == 3
    assert delta(before, after, "ingest_extract_seconds_count") == 3
    assert delta(before, after, "ingest_extract_seconds_sum") > 0
    assert rt.redis.xlen(rt.settings.stream) == 2


def test_temporary_failures_are_retried_then_counted_as_failures(
        rt: Runtime, site: LocalSite, counters: Callable[[], Samples]) -> None:
    url = site.add("/down.html", "busy", status=503)
    before = counters()
    with pytest.raises(Retry):
        ingest_article(url, None, None)
    middle = counters()
    assert delta(before, middle, "ingest_retries_total", stage="fetch", reason="http_503") == 1
    assert delta(before, middle, "ingest_failures_total", stage="fetch", reason="http_503") == 0
    ingest_article(url, None, None, attempt=rt.settings.max_attempts)  # the last attempt: recorded
    after = counters()
    assert delta(middle, after, "ingest_failures_total", stage="fetch", reason="http_503") == 1
    assert delta(middle, after, "ingest_retries_total", stage="fetch", reason="http_503") == 0


def test_waiting_for_the_hosts_turn_is_a_deferral(rt: Runtime, site: LocalSite,
                                                  counters: Callable[[], Samples]) -> None:
    url = site.add("/later.html", PAGE)
    before = counters()
    with pytest.raises(Retry):
        ingest_article(url, None, None, slot_at=time.time() + 30)  # its reserved turn is far ahead
    after = counters()
    assert delta(before, after, "ingest_deferrals_total") == 1
    assert delta(before, after, "ingest_fetch_seconds_count") == 0 and site.hits.get("/later.html", 0) == 0


def test_feed_polls_by_result_and_feed_failures(rt: Runtime, site: LocalSite, r: redis_lib.Redis,
                                                counters: Callable[[], Samples]) -> None:
    reg = Registry(r, rt.settings.key_prefix)
    good = reg.add(site.add("/rss", rss("S", site.base, [{"title": "A", "link": site.url("/a.html")}]),
                            "text/xml"), None, 300)
    bad = reg.add(site.add("/gone.rss", "", status=404), None, 300)
    before = counters()
    poll_feed(good)
    poll_feed(bad)
    after = counters()
    assert delta(before, after, "ingest_feed_polls_total", result="ok") == 1
    assert delta(before, after, "ingest_feed_polls_total", result="http_404") == 1
    assert delta(before, after, "ingest_failures_total", stage="feed", reason="http_404") == 1


def test_stream_consumer_groups_and_dead_letters(rt: Runtime, r: redis_lib.Redis,
                                                 gauges: Callable[[], Samples]) -> None:
    stream, dead = rt.settings.stream, rt.settings.dead_letter_stream
    for i in range(5):
        r.xadd(stream, {"event": "article.created", "id": str(i)})
    r.xgroup_create(stream, "search", id="0")
    r.xreadgroup("search", "c1", {stream: ">"}, count=2)  # delivered, not acked
    r.xgroup_create(stream, "archive", id="$")  # starts at the end: nothing to read
    r.xadd(dead, {"event": "article.created", "id": "x"})
    got = gauges()
    assert value(got, "ingest_redis_up") == 1
    assert value(got, "ingest_stream_length") == r.xlen(stream) == 5
    assert value(got, "ingest_consumer_lag", group="search") == 3
    assert value(got, "ingest_consumer_pending", group="search") == 2
    assert value(got, "ingest_consumer_lag", group="archive") == 0
    assert value(got, "ingest_consumer_pending", group="archive") == 0
    assert value(got, "ingest_dead_letters") == 1


def test_lag_is_absent_while_redis_cannot_tell(rt: Runtime, r: redis_lib.Redis,
                                               gauges: Callable[[], Samples]) -> None:
    stream = rt.settings.stream
    for i in range(3):
        r.xadd(stream, {"id": str(i)})
    r.xgroup_create(stream, "fresh", id="$")  # at the end, with no count of entries read yet
    r.xadd(stream, {"id": "3"})
    r.xadd(stream, {"id": "4"})
    assert r.xinfo_groups(stream)[0]["lag"] is None
    got = gauges()
    assert ("ingest_consumer_lag", frozenset({("group", "fresh")})) not in got  # see docs/metrics.md
    assert value(got, "ingest_consumer_pending", group="fresh") == 0
    r.xreadgroup("fresh", "c1", {stream: ">"}, count=10)  # caught up with the end: Redis has a count again
    assert value(gauges(), "ingest_consumer_lag", group="fresh") == 0


def test_feeds_by_health(rt: Runtime, site: LocalSite, r: redis_lib.Redis, gauges: Callable[[], Samples]) -> None:
    reg = Registry(r, rt.settings.key_prefix)
    reg.add(site.url("/ok1.rss"), None, 300)
    reg.add(site.url("/ok2.rss"), None, 300)
    reg.set_status(reg.add(site.url("/paused.rss"), None, 300), "paused")
    poll_feed(reg.add(site.add("/gone.rss", "", status=410), None, 300))
    failing = reg.add(site.add("/down.rss", "", status=503), None, 300)
    for _ in range(5):  # five errors in a row make a feed failing
        poll_feed(failing)
    got = gauges()
    assert {h: value(got, "ingest_feeds", health=h) for h in ("ok", "failing", "paused", "gone")} == \
        {"ok": 2, "failing": 1, "paused": 1, "gone": 1}
    assert value(got, "ingest_stream_length") == 0 and value(got, "ingest_dead_letters") == 0


def test_unreachable_redis_still_answers_the_scrape(settings: Settings) -> None:
    down = Runtime(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    server = serve(free_port(), state=lambda: down, registry=CollectorRegistry())
    assert server is not None
    try:
        got = scrape(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
    assert value(got, "ingest_redis_up") == 0 and ("ingest_redis_up", frozenset()) in got
    assert not any(name == "ingest_stream_length" for name, _ in got)


def test_a_taken_port_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tasks.metrics")  # whatever an earlier in-process worker set
    first = serve(free_port(), registry=CollectorRegistry())
    assert first is not None
    try:
        assert serve(first.server_port, registry=CollectorRegistry()) is None
    finally:
        first.shutdown()
        first.server_close()
    assert serve(0) is None  # 0: off
    assert "metrics not served" in caplog.text


def test_the_scheduler_command_serves_the_redis_gauges(settings: Settings, site: LocalSite, r: redis_lib.Redis,
                                                       tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {site.url('/a.rss')}\n  - url: {site.url('/b.rss')}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update({"REDIS_URL": settings.redis_url, "INGEST_VAR_DIR": str(tmp_path / "var"),
                "INGEST_TICK_SECONDS": "3600"})
    proc = subprocess.Popen([sys.executable, "-m", "tasks.cli", "scheduler", "--config", str(feeds),
                             "--metrics-port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                got = scrape(port)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "scheduler served no metrics"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)
    assert value(got, "ingest_feeds", health="ok") == 2 and value(got, "ingest_redis_up") == 1
    assert value(got, "ingest_stream_length") == r.xlen(settings.stream) == 0
