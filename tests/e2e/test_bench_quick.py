"""`make bench` keeps working: its quick mode runs end to end (embedded stores, real server,
null server, Redis alone, ledger writer) and writes a result with all four parts, positive
throughput, percentiles in order, and a picture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# The quick run takes under a minute on a 2-core machine; a busy CI machine gets slack.
BENCH_TIMEOUT_S = 240


def check_phase(where: str, phase: dict[str, Any]) -> None:
    latency = phase["latency_ms"]
    assert phase["throughput_per_s"] > 0, f"{where}: no throughput: {phase}"
    assert phase["answered"] > 0, f"{where}: nothing answered"
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"] <= latency["max"], (
        f"{where}: percentiles out of order: {latency}"
    )
    assert not phase["errors"], f"{where}: calls without an answer: {phase['errors']}"


def test_quick_bench_measures_all_four_parts(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    png = tmp_path / "latency.png"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    finished = subprocess.run(
        # Two pairs: the repeated, alternating measurement of the two targets is exercised too.
        [sys.executable, "-m", "loadtest", "--quick", "--repeats", "2", "--output", str(output), "--png", str(png)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
    )
    assert finished.returncode == 0, f"bench failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
    result = json.loads(output.read_text())

    assert set(result) >= {"machine", "config", "seed", "real", "null", "redis_only", "ledger", "ratios", "targets"}
    assert result["config"]["decision_budget_ms"] == 50, "the real server runs with its default decision budget"
    assert result["seed"]["cards"] == 1000

    for server in ("real", "null"):
        check_phase(f"{server} closed", result[server]["closed"])
        assert len(result[server]["open"]) == len(result["config"]["rate_fractions"])
        for phase in result[server]["open"]:
            check_phase(f"{server} open at {phase['offered_per_s']}/s", phase)
    real_rates = [p["offered_per_s"] for p in result["real"]["open"]]
    assert real_rates == [p["offered_per_s"] for p in result["null"]["open"]], "null is offered the real rates"
    assert real_rates == sorted(real_rates) and real_rates[0] > 0

    decisions = result["real"]["closed"]["decisions"]
    for outcome in ("APPROVE/APPROVED", "DECLINE/MCC_NOT_ALLOWED", "DECLINE/COUNTRY_NOT_ALLOWED"):
        assert decisions.get(outcome, 0) > 0, f"the mix has {outcome}: {decisions}"
    assert result["real"]["closed"]["replayed"] > 0, "the mix has replays"

    check_phase("redis-only closed", result["redis_only"]["closed"])
    ledger = result["ledger"]
    assert ledger["posted_per_s"] > 0 and ledger["catch_up_s"] >= 0, ledger

    ratios = result["ratios"]
    assert ratios["closed_throughput_real_over_null"] > 0
    assert ratios["closed_throughput_real_over_redis_only"] > 0
    assert {t["target"] for t in result["targets"]} and all(isinstance(t["met"], bool) for t in result["targets"])
    closed_pairs = result["repeats"]["closed"]
    assert [pair["first"] for pair in closed_pairs] == ["real", "null"], "the order alternates"
    assert result["real"]["closed"]["decided_per_s"] in [pair["real_per_s"] for pair in closed_pairs]
    [half] = result["repeats"]["open"]
    assert half["fraction"] == 0.5 and len(half["pairs"]) == 2
    assert "measured in 2 pairs" in finished.stdout
    assert png.read_bytes().startswith(b"\x89PNG"), "a PNG was drawn"
    assert "real / null" in finished.stdout, "the table with its ratios is printed"
