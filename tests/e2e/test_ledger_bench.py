"""`python -m loadtest.ledger_bench --quick` runs end to end within a minute, checks the ledger it produced, and writes JSON with positive numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
QUICK_RUN_S_MAX = 60.0  # the promise made for --quick on a 2-core machine


def test_quick_benchmark_writes_positive_numbers(tmp_path: Path) -> None:
    output = tmp_path / "ledger.json"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.ledger_bench", "--quick", "--output", str(output)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=QUICK_RUN_S_MAX,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decisions posted per second" in result.stdout
    report = json.loads(output.read_text())
    assert report["config"]["stack"] == "embedded"
    backlog, burst = report["backlog"], report["burst"]
    assert backlog["decisions"] == 2_000
    assert backlog["stream_entries"] >= backlog["decisions"]
    for key in (
        "approvals",
        "authorize_per_s",
        "drain_s",
        "posted_per_s",
        "batches",
        "mean_batch_records",
        "mean_commit_ms",
    ):
        assert backlog[key] > 0, f"backlog {key} = {backlog[key]}"
    for key in ("achieved_per_s", "decisions", "approvals", "catch_up_s"):
        assert burst[key] > 0, f"burst {key} = {burst[key]}"
    assert burst["backlog_peak_entries"] >= burst["backlog_at_stop_entries"] >= 0
