"""Serving on every core: AUTHZ_WORKERS=2 runs two server processes on one port, both take
calls, the metrics endpoint aggregates them, and SIGTERM to the parent alone (docker stop)
or to the whole process group (Ctrl-C) drains both."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.embedded import free_port
from tests.e2e.conftest import REPO, wait_serving
from tests.support.api import Api, bearer
from tests.support.stack import ADMIN_TOKEN, Backing, wait_until
from zentra.cards.v1 import authorization_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

pytestmark = pytest.mark.e2e


def samples(port: int, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def start_workers(
    backing: Backing, tmp_path: Path, port: int, metrics_port: int, new_session: bool
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": backing.redis_url,
        "DATABASE_URL": backing.database_url,
        "AUTHZ_KEY_PREFIX": backing.key_prefix,
        "AUTHZ_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTHZ_LISTEN_ADDR": f"127.0.0.1:{port}",
        "AUTHZ_METRICS_PORT": str(metrics_port),
        "AUTHZ_WORKERS": "2",
    }
    log = (tmp_path / "workers.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "authz_server"], env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=new_session
    )


@pytest.mark.parametrize("signal_whole_group", [False, True], ids=["parent-only", "process-group"])
def test_two_workers_share_the_port_and_the_metrics(backing: Backing, tmp_path: Path, signal_whole_group: bool) -> None:
    port, metrics_port = free_port(), free_port()
    parent = start_workers(backing, tmp_path, port, metrics_port, new_session=True)
    try:
        wait_serving(f"127.0.0.1:{port}", parent)
        api = Api(f"127.0.0.1:{port}")
        tenant = api.new_tenant()
        card = api.issue_card(tenant)
        api.close()
        # Many short-lived connections: the kernel spreads connections over the two listeners.
        calls = 0
        for _ in range(40):
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
                request = Api.authorize_request(card.card_id, 10)
                assert stub.Authorize(request, metadata=bearer(tenant.processor), timeout=10).decision == t.APPROVE
                calls += 1
        # What the calls counted reaches Prometheus within metrics.SYNC_INTERVAL_S.
        give_up = time.monotonic() + 10
        while (handled := sum(samples(metrics_port, "zentra_grpc_server_handled_total").values())) < calls + 5 or sum(
            (per_worker := samples(metrics_port, "zentra_grpc_server_worker_handled_total")).values()
        ) < handled:
            assert time.monotonic() < give_up, f"calls never added up: {handled} handled, per worker {per_worker}"
            time.sleep(0.1)
        assert len(per_worker) == 2 and all(v > 0 for v in per_worker.values()), (
            f"both workers take calls: {per_worker}"
        )
        assert sum(per_worker.values()) == handled, "each RPC counted once, by the worker that took it"
        approvals = samples(metrics_port, "zentra_authz_decisions_total")
        assert approvals[(("decision", "APPROVE"), ("reason", "APPROVED"))] == calls, "counters add up across workers"
        rss = samples(metrics_port, "zentra_authz_worker_resident_memory_bytes")
        assert len(rss) >= 1

        if signal_whole_group:
            os.killpg(parent.pid, signal.SIGINT)
        else:
            parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0, (tmp_path / "workers.log").read_text()[-3000:]
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()


def test_workers_die_with_a_killed_parent(backing: Backing, tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL) takes its workers with it: none keeps serving."""
    port, metrics_port = free_port(), free_port()
    parent = start_workers(backing, tmp_path, port, metrics_port, new_session=True)
    try:
        wait_serving(f"127.0.0.1:{port}", parent)
        parent.kill()
        parent.wait()

        def port_closed() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) != 0

        assert wait_until(port_closed, timeout_s=20), "orphaned workers still serve the port"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
