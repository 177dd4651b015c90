"""The pair `make bench` reports when a measurement is repeated: the one whose real/null ratio
is the median (loadtest/bench.py, median_pair)."""

from __future__ import annotations

from typing import Any

from loadtest.bench import median_pair


def closed(real_per_s: float, null_per_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"decided_per_s": real_per_s}, {"decided_per_s": null_per_s}


def open_loop(real_p99: float, null_p99: float) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"latency_ms": {"p99": real_p99}}, {"latency_ms": {"p99": null_p99}}


def test_the_median_ratio_not_the_median_throughput() -> None:
    # Ratios 0.5, 0.7, 0.6: the median pair is the third, though its real rate is the lowest.
    pairs = [closed(3000, 6000), closed(3500, 5000), closed(2400, 4000)]
    assert median_pair(pairs) == 2


def test_an_even_number_of_pairs_reports_the_middle_less_favourable_to_the_real_server() -> None:
    pairs = [closed(3000, 5000), closed(3300, 5000), closed(2800, 5000), closed(3200, 5000)]
    assert median_pair(pairs) == 0  # ratios 0.60, 0.66, 0.56, 0.64: the lower middle, 0.60
    latencies = [open_loop(4.5, 3.0), open_loop(9.0, 3.0), open_loop(6.0, 3.0), open_loop(5.4, 3.0)]
    assert median_pair(latencies, latency=True) == 2  # ratios 1.5, 3.0, 2.0, 1.8: the upper middle, 2.0


def test_latency_pairs_are_ranked_by_p99_ratio() -> None:
    pairs = [open_loop(6.0, 3.0), open_loop(4.0, 3.0), open_loop(9.0, 3.0)]
    assert median_pair(pairs, latency=True) == 0  # ratios 2.0, 1.33, 3.0


def test_one_pair_is_its_own_median() -> None:
    assert median_pair([closed(1, 2)]) == 0
