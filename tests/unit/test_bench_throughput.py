"""The throughput benchmark's pure helpers (bench/throughput.py): percentiles, poll-to-XADD latencies, Redis's time and
extraction's share of the CPU."""

from __future__ import annotations

import math

import pytest

from tests.factories import load_bench

bench = load_bench("throughput")


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([5.0], 50, 5.0, id="one-value"),
        pytest.param([3.0, 1.0, 2.0], 50, 2.0, id="odd-count-median-unsorted"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="even-count-median-interpolates"),
        pytest.param([0.0, 10.0], 95, 9.5, id="p95-between-two"),
        pytest.param([float(i) for i in range(1, 101)], 95, 95.05, id="p95-of-1-to-100-like-numpy"),
        pytest.param([1.0, 2.0, 3.0], 0, 1.0, id="p0-is-min"),
        pytest.param([1.0, 2.0, 3.0], 100, 3.0, id="p100-is-max"),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert bench.percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(bench.percentile([], 50))


def test_latency_is_xadd_ms_minus_poll_seconds_for_urls_with_both() -> None:
    found = {"http://a/1": 1000.0, "http://a/2": 1000.5, "http://a/3": 1001.0}  # poll times, seconds
    xadds = {"http://a/1": 1_000_250, "http://a/2": 1_001_000, "http://a/9": 5}  # XADD times, ms
    got = bench.latencies_ms(found, xadds, ["http://a/1", "http://a/2", "http://a/3", "http://a/9"])
    assert got == pytest.approx([250.0, 500.0])  # a/3 never published, a/9 never seen polled: left out


def test_redis_time_is_command_usec_per_article_with_the_leading_commands() -> None:
    stats = {"cmdstat_eval": {"calls": 30, "usec": 3000.0}, "cmdstat_xadd": {"calls": 10, "usec": 600.0},
             "cmdstat_get": {"calls": 100, "usec": 400.0}}
    per_article, lead = bench.redis_time(stats, 10, top=2)
    assert per_article == 400.0 and lead == "eval 75%, xadd 15%"
    assert bench.redis_time({}, 10) == (0.0, "")


def test_extraction_share_is_its_cpu_over_all_the_machine_used() -> None:
    cpu = {"extraction": 16.0, "worker": 2.5, "redis": 0.5, "bench": 0.5, "scheduler": 0.2, "others": 0.3}
    assert bench.extraction_share(cpu) == pytest.approx(16.0 / 20.0)
    assert bench.extraction_share({"worker": 1.0}) == 0.0  # no extraction process seen
    assert bench.extraction_share({}) == 0.0
