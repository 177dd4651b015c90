"""Fixtures that run the real `python -m authz_server` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.embedded import free_port
from tests.support.stack import ADMIN_TOKEN, Backing

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    target: str
    metrics_port: int
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""


def wait_serving(target: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, f"server exited with {process.returncode}"
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"server at {target} not SERVING within {timeout_s}s")


@pytest.fixture
def server_process(backing: Backing, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real authz-server process on free ports, against the session's Redis and Postgres."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "REDIS_URL": backing.redis_url,
        "DATABASE_URL": backing.database_url,
        "AUTHZ_KEY_PREFIX": backing.key_prefix,
        "AUTHZ_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTHZ_LISTEN_ADDR": f"127.0.0.1:{port}",
        "AUTHZ_METRICS_PORT": str(metrics_port),
        "AUTHZ_DECISION_BUDGET_MS": "3000",
        "AUTHZ_SCRIPT_STALE_MS": "10000",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "authz_server"], env=env, cwd=REPO, stdout=sink, stderr=sink, start_new_session=True
        )
    running = ServerProcess(process, f"127.0.0.1:{port}", metrics_port, log)
    try:
        wait_serving(running.target, process)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the parent and its workers
            process.wait()
