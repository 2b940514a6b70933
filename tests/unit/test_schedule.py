"""The adaptive schedule and cache floors, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.errors import TemporaryError
from worker.models import FeedEntry
from worker.polling import JITTER, PollOutcome, cache_floor, fresh_entries, next_delay, next_interval
from worker.registry import FeedState

NOW = 1_000_000.0


def state(**kw: object) -> FeedState:
    base: dict[str, object] = {"fid": "f", "url": "https://x.vn/rss", "section": None, "interval": 600.0,
                               "min_interval": 120.0, "max_interval": 21600.0, "last_success": NOW - 600}
    base.update(kw)
    return FeedState(**base)  # type: ignore[arg-type]


OK = PollOutcome("ok", True)


def test_busy_feed_is_polled_more_often() -> None:
    # 12 new articles in 10 minutes: 3 articles appear every 150 s; move halfway from 600 s toward it.
    assert next_interval(state(), OK, 12, NOW) == pytest.approx((600 + 150) / 2)


def test_quiet_feed_is_polled_less_often_up_to_its_maximum() -> None:
    assert next_interval(state(), OK, 0, NOW) == pytest.approx(750)
    assert next_interval(state(interval=20000.0), OK, 0, NOW) == 21600.0


def test_interval_never_below_the_feeds_minimum() -> None:
    st, seen = state(), []
    for _ in range(6):  # a very busy feed converges on its minimum, never below
        st = state(interval=next_interval(st, OK, 10_000, NOW))
        seen.append(st.interval)
    assert min(seen) == 120.0 and seen[-1] == 120.0
    # A feed's own min_interval may go below the default minimum.
    assert 30.0 <= next_interval(state(min_interval=30.0, interval=60.0), OK, 10_000, NOW) < 31.0
    assert next_interval(state(min_interval=30.0, interval=30.0), OK, 10_000, NOW) == 30.0


def test_errors_back_off_exponentially_up_to_the_maximum() -> None:
    err = PollOutcome("http_500", False, error=TemporaryError("http_500"))
    delays = [next_delay(state(consecutive_errors=n), err, 600.0) for n in range(8)]
    for n, d in enumerate(delays):
        expected = min(600 * 2 ** (n + 1), 21600)
        assert expected <= d <= expected * (1 + JITTER)
    assert next_interval(state(), err, 0, NOW) == 600.0  # the interval itself is kept for after recovery


@pytest.mark.parametrize(("floor", "expected_min"), [(0.0, 600.0), (3600.0, 3600.0), (10**9, 21600.0)])
def test_server_floors_are_honoured_within_the_maximum(floor: float, expected_min: float) -> None:
    d = next_delay(state(), PollOutcome("ok", True, floor_seconds=floor), 600.0)
    assert expected_min <= d <= expected_min * (1 + JITTER)


def test_jitter_spreads_feeds() -> None:
    assert len({round(next_delay(state(), OK, 600.0), 3) for _ in range(20)}) > 10


@pytest.mark.parametrize(("headers", "expected"), [
    ({"cache-control": "public, max-age=900"}, 900.0),
    ({"cache-control": "s-maxage=10, max-age=60"}, 60.0),
    ({"expires": "Thu, 01 Jan 2026 01:00:00 GMT"}, 3600.0),
    ({"expires": "garbage"}, 0.0),
    ({}, 0.0),
])
def test_cache_floor(headers: dict[str, str], expected: float) -> None:
    assert cache_floor(headers, datetime(2026, 1, 1, tzinfo=UTC)) == expected


def test_fresh_entries_skips_old_ones_keeps_undated() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    old = FeedEntry("https://x/1", published_at=now - timedelta(days=3))
    new = FeedEntry("https://x/2", published_at=now - timedelta(hours=1))
    undated = FeedEntry("https://x/3")
    assert fresh_entries((old, new, undated), 86400, now) == [new, undated]
    assert fresh_entries((old, new, undated), None, now) == [old, new, undated]
