"""DESIGN §5.6, fail closed: with Redis stopped or slower than the decision budget, Authorize
answers DECLINE / SYSTEM_UNAVAILABLE / "96" within the budget and never approves; the answer
sticks for retries (and voids a late approval of the same attempt); the server recovers by
itself when Redis returns; administrative calls answer UNAVAILABLE instead of hanging."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_server.clock import SettableClock
from devstack.embedded import EmbeddedRedis
from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import EPOCH_MS, Backing, ThreadedServer, server_settings, wait_until
from zentra.cards.v1 import card_pb2
from zentra.cards.v1 import types_pb2 as t

BUDGET_MS = 50
# gRPC and the test client's own overhead on top of the budget, on a loaded 2-core machine.
CLIENT_SLACK_MS = 250


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A private Redis this module may stop and restart, whatever REDIS_URL says."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("fail-closed-redis", numbered=True))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fragile(backing: Backing, own_redis: EmbeddedRedis) -> Iterator[ThreadedServer]:
    settings = server_settings(
        replace(backing, redis_url=own_redis.url), decision_budget_ms=BUDGET_MS, admin_timeout_ms=1000
    )
    running = ThreadedServer(settings, SettableClock(EPOCH_MS)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(fragile: ThreadedServer) -> Iterator[Api]:
    client = Api(fragile.target)
    yield client
    client.close()


@pytest.fixture
def tenant(api: Api) -> TenantKeys:
    return api.new_tenant()


def health(server: ThreadedServer) -> str:
    with grpc.insecure_channel(server.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def timed_authorize(api: Api, secret: str, card_id: str, amount: int = 1000, authorization_id: str | None = None):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = api.authorize(secret, card_id, amount, authorization_id=authorization_id)
    return response, (time.perf_counter() - started) * 1000


def assert_fail_closed(response, elapsed_ms: float) -> None:  # type: ignore[no-untyped-def]
    assert (response.decision, response.reason, response.response_code) == (
        t.DECLINE,
        t.SYSTEM_UNAVAILABLE,
        "96",
    )
    assert elapsed_ms < BUDGET_MS + CLIENT_SLACK_MS, f"fail-closed answer took {elapsed_ms:.0f} ms"


def test_redis_down_declines_within_budget_then_recovers(
    api: Api, tenant: TenantKeys, fragile: ThreadedServer, own_redis: EmbeddedRedis
) -> None:
    card = api.issue_card(tenant)
    assert api.authorize(tenant.processor, card.card_id).decision == t.APPROVE
    own_redis.stop()
    try:
        for i in range(20):
            response, elapsed_ms = timed_authorize(api, tenant.processor, card.card_id, authorization_id=f"down-{i}")
            assert_fail_closed(response, elapsed_ms)
        # A retry of a fail-closed id replays that decline.
        again = api.authorize(tenant.processor, card.card_id, authorization_id="down-0")
        assert (again.reason, again.replayed) == (t.SYSTEM_UNAVAILABLE, True)
        assert wait_until(lambda: health(fragile) == "NOT_SERVING", timeout_s=5), "health reports Redis away"
        # Administrative calls do not hang either.
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as error:
            api.cards.FreezeCard(card_pb2.CardActionRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.perf_counter() - started < 3.0
    finally:
        own_redis.start()
    assert wait_until(lambda: health(fragile) == "SERVING", timeout_s=10), "health recovers with Redis"
    assert wait_until(lambda: api.authorize(tenant.processor, card.card_id).decision == t.APPROVE, timeout_s=15), (
        "approvals resume by themselves once Redis is back"
    )
    # The fail-closed answers were stored once Redis returned: still a decline, still replayed.
    client = redis.Redis.from_url(own_redis.url)
    keys = [fragile.server.keyspace.replay(tenant.tenant_id, f"down-{i}") for i in range(20)]
    assert wait_until(lambda: all(client.hget(key, "r") == b"12" for key in keys), timeout_s=5)
    again = api.authorize(tenant.processor, card.card_id, authorization_id="down-3")
    assert (again.decision, again.reason, again.replayed) == (t.DECLINE, t.SYSTEM_UNAVAILABLE, True)


def test_slow_redis_declines_and_voids_the_late_approval(
    api: Api, tenant: TenantKeys, fragile: ThreadedServer, own_redis: EmbeddedRedis
) -> None:
    card = api.issue_card(
        tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=10_000)])
    )
    assert api.authorize(tenant.processor, card.card_id, 1000).decision == t.APPROVE
    client = redis.Redis.from_url(own_redis.url)
    keys = fragile.server.keyspace
    usage_key = keys.usage(keys.shard_of(card.card_id), tenant.tenant_id, card.card_id)
    replay_key = keys.replay(tenant.tenant_id, "slow-1")

    # Redis stalls for 300 ms: our script is queued behind the stall, the call gives up at 50 ms.
    client.execute_command("CLIENT", "PAUSE", "300", "ALL")
    response, elapsed_ms = timed_authorize(api, tenant.processor, card.card_id, 2000, authorization_id="slow-1")
    assert_fail_closed(response, elapsed_ms)

    # The queued script ran after the stall (and may have approved); the tombstone voids it.
    assert wait_until(lambda: client.hget(replay_key, "r") == b"12", timeout_s=5), (
        "the stored answer is the fail-closed decline"
    )
    assert wait_until(lambda: client.hget(usage_key, "D|a") == b"1000", timeout_s=5), (
        f"nothing stays reserved for the fail-closed attempt: {client.hgetall(usage_key)}"
    )
    again = api.authorize(tenant.processor, card.card_id, 2000, authorization_id="slow-1")
    assert (again.decision, again.reason, again.replayed) == (t.DECLINE, t.SYSTEM_UNAVAILABLE, True)
    assert api.authorize(tenant.processor, card.card_id, 9000).decision == t.APPROVE


def test_caller_deadline_shorter_than_budget(
    api: Api, tenant: TenantKeys, fragile: ThreadedServer, own_redis: EmbeddedRedis
) -> None:
    """The server answers before the caller's own deadline when that is shorter than the
    budget; and whoever gives up first, the id ends as a decline with nothing reserved."""
    card = api.issue_card(tenant)
    client = redis.Redis.from_url(own_redis.url)
    client.execute_command("CLIENT", "PAUSE", "300", "ALL")
    request = api.authorize_request(card.card_id, 100, authorization_id="deadline-1")
    try:
        response = api.authz.Authorize(request, metadata=bearer(tenant.processor), timeout=0.03)
        assert response.reason == t.SYSTEM_UNAVAILABLE
    except grpc.RpcError as error:  # on a loaded machine the client's own deadline may still win
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    keys = fragile.server.keyspace
    replay_key = keys.replay(tenant.tenant_id, "deadline-1")
    usage_key = keys.usage(keys.shard_of(card.card_id), tenant.tenant_id, card.card_id)
    assert wait_until(lambda: client.hget(replay_key, "r") == b"12", timeout_s=5)
    assert wait_until(lambda: client.hget(usage_key, "D|a") in (None, b"0"), timeout_s=5)
