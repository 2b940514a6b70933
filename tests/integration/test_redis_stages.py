"""Stages that talk to Redis, against a real redis-server: registry, seen-set, publish-once, consumer, failures."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import redis as redis_lib

from worker.consumer import subscribe
from worker.failures import list_failures, record_failure
from worker.models import Article, ExtractorV1, SiteV1
from worker.registry import FAILING_AFTER, Registry, feed_id
from worker.seen import mark_seen, unseen
from worker.stream import is_published, publish_article

P = "t:"


def article(n: int) -> Article:
    return Article(
        schema="article/v1", id=f"{n:032x}", url=f"https://x.vn/{n}.html", feed_url="https://x.vn/rss",
        feed_urls=["https://x.vn/rss"], site=SiteV1(domain="x.vn", name="X"), section="S", title=f"Bài {n}", authors=[], published_at=None,
        language="vi", lead=None, text="Nội dung", images=[], tags=[], fetched_at=datetime.now(UTC),
        extractor=ExtractorV1(name="trafilatura", version="2"),
    )


def test_registry_add_claim_record(r: redis_lib.Redis) -> None:
    reg = Registry(r, P)
    fid = reg.add("https://x.vn/rss/a.rss?utm_source=z", "A", 60, now=100.0)
    assert fid == feed_id("https://x.vn/rss/a.rss")
    assert reg.add("https://x.vn/rss/a.rss", "A2", 30, now=100.0) == fid  # same feed: updated, not duplicated
    assert [f.section for f in reg.all()] == ["A2"]
    assert reg.claim_due(now=99.0, lease=50) == []
    assert reg.claim_due(now=101.0, lease=50) == [fid]
    assert reg.claim_due(now=102.0, lease=50) == []  # leased: a second tick does not take it again
    for _ in range(FAILING_AFTER):
        reg.record_poll(fid, result="http_500", ok=False, next_poll=500.0)
    state = reg.get(fid)
    assert state is not None and state.health == "failing" and state.consecutive_errors == FAILING_AFTER
    reg.record_poll(fid, result="ok", ok=True, next_poll=600.0, new_articles=3, fields={"etag": '"e"'})
    state = reg.get(fid)
    assert state is not None and (state.health, state.articles_found, state.etag) == ("ok", 3, '"e"')
    assert reg.claim_due(now=599.0, lease=50) == [] and reg.claim_due(now=601.0, lease=50) == [fid]


def test_registry_pause_resume_remove(r: redis_lib.Redis) -> None:
    reg = Registry(r, P)
    fid = reg.add("https://x.vn/rss", None, 60, now=0.0)
    reg.set_status(fid, "paused")
    assert reg.claim_due(now=10.0, lease=5) == []
    reg.set_status(fid, "active", now=10.0)
    assert reg.claim_due(now=10.0, lease=5) == [fid]
    assert reg.remove(fid) and reg.get(fid) is None and reg.all() == []
    reg.record_poll(fid, result="ok", ok=True, next_poll=1.0)  # a poll finishing after removal adds nothing back
    assert reg.get(fid) is None


def test_seen_set(r: redis_lib.Redis) -> None:
    assert unseen(r, P, ["a", "b"]) == ["a", "b"]
    mark_seen(r, P, ["a"], ttl_seconds=100)
    assert unseen(r, P, ["a", "b", "c"]) == ["b", "c"]
    assert 0 < r.ttl(f"{P}seen:a") <= 100


def test_publish_once_even_when_racing(r: redis_lib.Redis) -> None:
    a = article(1)
    results = []

    def publish() -> None:
        client = redis_lib.Redis.from_url(_url(r), decode_responses=True)
        results.append(publish_article(client, "s", P, a, maxlen=1000, marker_ttl=100))

    threads = [threading.Thread(target=publish) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.xlen("s") == 1
    assert sum(p.new for p in results) == 1
    assert len({p.entry_id for p in results}) == 1
    assert is_published(r, P, a.id)
    entry = r.xrange("s")[0][1]
    assert entry["id"] == a.id and entry["site"] == "x.vn" and Article.from_json(entry["article"]) == a


def _url(r: redis_lib.Redis) -> str:
    kw = r.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


def test_consumer_group_acks_and_reclaims_from_a_dead_consumer(r: redis_lib.Redis) -> None:
    for n in range(5):
        publish_article(r, "s", P, article(n), maxlen=1000, marker_ttl=100)
    dead = subscribe(r, "s", "g", "dead", from_start=True, idle_timeout=0.2, batch=3)
    taken = [next(dead).article.id for _ in range(3)]  # delivered, never acked: the consumer "dies"
    time.sleep(0.2)
    alive = list(subscribe(r, "s", "g", "alive", idle_timeout=0.5, claim_idle_ms=100))
    got = [m.article.id for m in alive]
    assert sorted(got) == sorted(article(n).id for n in range(5))
    assert set(taken) <= set(got)
    for m in alive:
        m.ack()
    assert r.xpending("s", "g")["pending"] == 0


def test_consumer_resumes_its_own_pending_after_restart(r: redis_lib.Redis) -> None:
    publish_article(r, "s", P, article(1), maxlen=1000, marker_ttl=100)
    first = next(subscribe(r, "s", "g", "c1", from_start=True, idle_timeout=0.2))
    again = next(subscribe(r, "s", "g", "c1", idle_timeout=0.2, claim_idle_ms=60_000))
    assert again.entry_id == first.entry_id
    again.ack()
    assert list(subscribe(r, "s", "g", "c1", idle_timeout=0.2)) == []


def test_failures_are_recorded_newest_first(r: redis_lib.Redis) -> None:
    record_failure(r, P, url="https://x.vn/1", feed="https://x.vn/rss", stage="fetch", reason="http_404")
    record_failure(r, P, url="https://x.vn/2", feed=None, stage="extract", reason="extraction_empty", attempts=2)
    rows = list_failures(r, P)
    assert [(f["url"], f["reason"], f["attempts"], f["feed"]) for f in rows] == [
        ("https://x.vn/2", "extraction_empty", 2, None), ("https://x.vn/1", "http_404", 1, "https://x.vn/rss")]
    assert {"stage", "time"} <= set(rows[0])
