"""The h2load cross-check runs end to end where h2load is installed: both servers answer every
call, and the real server answers each by a replay (the check fails otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
def test_h2load_drives_null_and_replay_paths(tmp_path: Path) -> None:
    output = tmp_path / "h2load.json"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    finished = subprocess.run(
        [sys.executable, "-m", "loadtest.h2load_check", "--requests", "1000", "--repeats", "2", "--output", str(output)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    result = json.loads(output.read_text())
    assert sorted(pair["first"] for pair in result["pairs"]) == ["null", "real"], "the order alternates"
    for pair in result["pairs"]:
        for server in ("real", "null"):
            numbers = pair[server]
            assert numbers["succeeded"] == numbers["status_2xx"] == 1000, numbers
            assert numbers["per_s"] > 0 and 0 < numbers["min_ms"] <= numbers["mean_ms"] <= numbers["max_ms"]
        assert pair["ratio"] == pytest.approx(pair["real"]["per_s"] / pair["null"]["per_s"])
    assert "real replay / null" in finished.stdout
