"""Holds that never clear expire (7 days; 31 for lodging and car rental) and are released by
the sweeper once, however many sweep; a late capture after expiry still posts. A review
resolved as approved lets the same card, merchant and amount (or less) through once, past the
review threshold only."""

from __future__ import annotations

import asyncio

from authz_server.lifecycle import sweep_expired_holds
from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import Ledger, ThreadedServer
from zentra.cards.v1 import clearing_pb2, clearing_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

DAY_MS = 24 * 3600 * 1000
LIFETIME_CAP = t.SpendControls(spending_limits=[t.SpendLimit(interval=t.LIFETIME, amount_minor=100_000, max_count=100)])


def sweep(server: ThreadedServer, now_ms: int) -> int:
    s = server.server
    return int(server.call(sweep_expired_holds(s.redis, s.scripts, s.keyspace, now_ms)))


def lifetime_usage(server: ThreadedServer, tenant_id: str, card_id: str) -> tuple[int, int]:
    keys = server.server.keyspace
    usage = server.call(server.server.redis.hgetall(keys.usage(keys.shard_of(card_id), tenant_id, card_id)))
    return int(usage[b"L|a"]), int(usage[b"L|c"])


def test_holds_expire_after_seven_days(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger, clock
) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant, LIFETIME_CAP)
    start = clock.now_ms()
    auth = api.authorize(tenant.processor, card.card_id, 5000, mcc="5812")
    assert lifetime_usage(server, tenant.tenant_id, card.card_id) == (5000, 1)
    sweep(server, start + 6 * DAY_MS)
    assert lifetime_usage(server, tenant.tenant_id, card.card_id) == (5000, 1), "not due yet"
    assert sweep(server, start + 7 * DAY_MS + 1000) >= 1
    assert lifetime_usage(server, tenant.tenant_id, card.card_id) == (0, 0), "expiry releases amount and count"
    assert sweep(server, start + 8 * DAY_MS) == 0 or lifetime_usage(server, tenant.tenant_id, card.card_id) == (0, 0)
    ledger.drain()
    [row] = ledger.fetch(
        "SELECT status, expired_minor, remaining_hold_minor FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant.tenant_id, auth.authorization_id,
    )  # fmt: skip
    assert tuple(row) == ("EXPIRED", 5000, 0)
    kinds = sorted(
        r["kind"] for r in ledger.fetch("SELECT kind FROM ledger_transactions WHERE tenant_id = $1", tenant.tenant_id)
    )
    assert kinds == ["expiry", "hold"]
    types = {r["type"] for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1", tenant.tenant_id)}
    assert "card.authorization.expired" in types
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])

    # The money can still arrive: a late capture posts from the customer's balance.
    record = clearing_pb2.ClearingRecord(
        clearing_id=new_id("clr"), authorization_id=auth.authorization_id, card_id=card.card_id, amount_minor=5000,
        currency="USD", merchant=t.Merchant(mcc="5812", country="US"), kind=clearing_pb2.CAPTURE, is_final=True,
    )  # fmt: skip
    result = clearing_pb2_grpc.ClearingServiceStub(api.channel).PostClearing(record, metadata=bearer(tenant.processor))
    assert result.outcome == clearing_pb2.LATE_CAPTURE


def test_lodging_holds_live_31_days(api: Api, tenant: TenantKeys, server: ThreadedServer, clock) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant, LIFETIME_CAP)
    start = clock.now_ms()
    api.authorize(tenant.processor, card.card_id, 20_000, mcc="7011")
    sweep(server, start + 30 * DAY_MS)
    assert lifetime_usage(server, tenant.tenant_id, card.card_id) == (20_000, 1), "a hotel hold lives 31 days"
    sweep(server, start + 31 * DAY_MS + 1000)
    assert lifetime_usage(server, tenant.tenant_id, card.card_id) == (0, 0)


def test_concurrent_sweepers_release_once(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger, clock
) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant, LIFETIME_CAP)
    start = clock.now_ms()
    for _ in range(20):
        api.authorize(tenant.processor, card.card_id, 100, mcc="5411")
    s = server.server

    async def three_sweepers() -> list[int]:
        now = start + 8 * DAY_MS
        return list(await asyncio.gather(*(sweep_expired_holds(s.redis, s.scripts, s.keyspace, now) for _ in range(3))))

    server.call(three_sweepers())
    assert lifetime_usage(server, tenant.tenant_id, card.card_id) == (0, 0)
    ledger.drain()
    [row] = ledger.fetch(
        "SELECT count(*) AS n, sum(e.amount_minor) AS total FROM ledger_transactions x JOIN ledger_entries e "
        "USING (tenant_id, transaction_id) WHERE x.tenant_id = $1 AND x.kind = 'expiry' AND e.direction = 1",
        tenant.tenant_id,
    )
    assert (row["n"], row["total"]) == (20, 2000), "each hold released exactly once"
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_a_review_override_approves_once(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    limits = [t.SpendLimit(interval=t.DAILY, amount_minor=10_000)]
    card = api.issue_card(tenant, t.SpendControls(review_threshold_minor=4000, spending_limits=limits))
    assert api.authorize(tenant.processor, card.card_id, 4500).decision == t.REVIEW
    keys = server.server.keyspace
    override = keys.override(keys.shard_of(card.card_id), tenant.tenant_id, card.card_id)
    fields = {"merchant_id": "m-1", "mcc": "5812", "country": "US", "max_minor": "4500", "currency": "USD",
              "review_id": "authorization:x"}  # fmt: skip
    server.call(server.server.redis.hset(override, mapping=fields))
    assert api.authorize(tenant.processor, card.card_id, 4600).decision == t.REVIEW, "more than was reviewed"
    assert api.authorize(tenant.processor, card.card_id, 4500, mcc="5411").decision == t.REVIEW, "another merchant"
    assert api.authorize(tenant.processor, card.card_id, 4400).decision == t.APPROVE, "the override approves once"
    assert api.authorize(tenant.processor, card.card_id, 4400).decision == t.REVIEW, "and only once"
    server.call(server.server.redis.hset(override, mapping={**fields, "max_minor": "6000"}))
    response = api.authorize(tenant.processor, card.card_id, 6000)
    assert response.reason == t.SPEND_LIMIT_EXCEEDED, "an override never bypasses limits"
    assert server.call(server.server.redis.exists(override)) == 1, "a refused attempt does not use the override up"
