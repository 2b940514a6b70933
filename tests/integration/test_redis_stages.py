"""Stages that talk to Redis, against a real redis-server: feed registry, seen-set, failures."""

from __future__ import annotations

import redis as redis_lib

from worker.failures import list_failures, record_failure
from worker.neardup import BAND_CAP, find_and_remember
from worker.registry import FAILING_AFTER, Registry, feed_id
from worker.seen import mark_seen, sort_sightings

P = "t:"


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


def test_seen_set_tells_new_from_updated(r: redis_lib.Redis) -> None:
    assert sort_sightings(r, P, {"a": 0.0, "b": 5.0}) == (["a", "b"], [])
    mark_seen(r, P, {"a": 0.0, "b": 5.0}, ttl_seconds=100)
    assert sort_sightings(r, P, {"a": 0.0, "b": 5.0, "c": 0.0}) == (["c"], [])
    assert sort_sightings(r, P, {"a": 10.0, "b": 5.0}) == ([], ["a"])  # a's entry was updated since
    assert 0 < r.ttl(f"{P}seen:a") <= 100


def test_failures_are_recorded_newest_first(r: redis_lib.Redis) -> None:
    record_failure(r, P, url="https://x.vn/1", feed="https://x.vn/rss", stage="fetch", reason="http_404")
    record_failure(r, P, url="https://x.vn/2", feed=None, stage="extract", reason="extraction_empty", attempts=2)
    rows = list_failures(r, P)
    assert [(f["url"], f["reason"], f["attempts"], f["feed"]) for f in rows] == [
        ("https://x.vn/2", "extraction_empty", 2, None), ("https://x.vn/1", "http_404", 1, "https://x.vn/rss")]
    assert {"stage", "time"} <= set(rows[0])


def test_near_duplicates_are_found_and_a_story_seen_often_stays_bounded(r: redis_lib.Redis) -> None:
    h = 0x0123_4567_89AB_CDEF
    assert find_and_remember(r, P, "first", h, 60) is None
    assert find_and_remember(r, P, "near", h ^ 0b101, 60) == "first"  # 2 bits apart
    assert find_and_remember(r, P, "far", h ^ 0xFFFF_0000_FFFF_0000, 60) is None  # 32 bits apart, same 2 bands
    for i in range(BAND_CAP + 50):  # the same story again and again
        assert find_and_remember(r, P, f"copy{i}", h, 60) is not None
    assert max(r.scard(k) for k in r.scan_iter(f"{P}simhash:*")) == BAND_CAP
    assert find_and_remember(r, P, "late", h, 60) is not None
