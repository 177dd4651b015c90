"""DESIGN §5.1: under any interleaving of concurrent Authorize calls on one card, approved
amounts in a window never exceed that window's limit, and fill it exactly when they can."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from authz_server.clock import SettableClock
from tests.support.api import Api, bearer
from tests.support.stack import EPOCH_MS, Backing, ThreadedServer, server_settings
from zentra.cards.v1 import types_pb2 as t

CONCURRENT_CALLS = 600


@pytest.fixture(scope="module")
def patient_server(backing: Backing) -> Iterator[ThreadedServer]:
    """A server whose decision budget (5 s) is long enough for 600 calls queued at once on
    one card: this test is about atomicity, not latency, so no call may fail closed."""
    running = ThreadedServer(
        server_settings(backing, decision_budget_ms=5000, script_stale_ms=10_000), SettableClock(EPOCH_MS)
    ).start()
    yield running
    running.stop()


def fire(api: Api, secret: str, card_id: str, amounts: list[int]) -> list:  # type: ignore[type-arg]
    futures = [
        api.authz.Authorize.future(api.authorize_request(card_id, amount), metadata=bearer(secret), timeout=60)
        for amount in amounts
    ]
    return [future.result() for future in futures]


@pytest.mark.parametrize("seed", [1, 2])
def test_concurrent_approvals_never_exceed_the_daily_limit(patient_server: ThreadedServer, seed: int) -> None:
    api = Api(patient_server.target)
    try:
        tenant = api.new_tenant()
        limit = 100_000
        card = api.issue_card(
            tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=limit)])
        )
        rng = random.Random(seed)
        amounts = [rng.randint(100, 3000) for _ in range(CONCURRENT_CALLS)]
        assert sum(amounts) > 3 * limit
        responses = fire(api, tenant.processor, card.card_id, amounts)
        approved = [a for a, r in zip(amounts, responses, strict=True) if r.decision == t.APPROVE]
        reasons = {t.Reason.Name(r.reason) for r in responses}
        assert reasons <= {"APPROVED", "SPEND_LIMIT_EXCEEDED"}, f"unexpected reasons {reasons} (seed {seed})"
        assert sum(approved) <= limit, f"approved {sum(approved)} > limit {limit} (seed {seed})"
        # Room only shrinks, so every declined amount must exceed the room left at the end.
        declined = [a for a, r in zip(amounts, responses, strict=True) if r.decision != t.APPROVE]
        assert min(declined) > limit - sum(approved), f"a decline would have fit (seed {seed})"
        keys = patient_server.server.keyspace
        counters = patient_server.call(
            patient_server.server.redis.hgetall(keys.usage(keys.shard_of(card.card_id), tenant.tenant_id, card.card_id))
        )
        assert int(counters[b"D|a"]) == sum(approved), "the counter equals the sum of what was approved"
        assert int(counters[b"D|c"]) == len(approved)
    finally:
        api.close()


def test_concurrent_approvals_fill_the_limit_exactly(patient_server: ThreadedServer) -> None:
    api = Api(patient_server.target)
    try:
        tenant = api.new_tenant()
        card = api.issue_card(
            tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=100_000)])
        )
        responses = fire(api, tenant.processor, card.card_id, [1000] * CONCURRENT_CALLS)
        approved = [r for r in responses if r.decision == t.APPROVE]
        assert len(approved) == 100, f"exactly 100 x 1000 fit under 100000, got {len(approved)}"
        assert all(r.reason == t.SPEND_LIMIT_EXCEEDED for r in responses if r.decision != t.APPROVE)
    finally:
        api.close()
