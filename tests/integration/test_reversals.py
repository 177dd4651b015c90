"""Reverse: a full or partial release of an approval's hold, atomic with the window counters
it was counted in, replay-safe on reversal_id, refused when there is nothing (or not that
much) to release, and posted to the ledger (debit reserved, credit customer)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import Ledger, ThreadedServer
from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t

DAILY_10K = t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=10_000)])


def reverse(api: Api, secret: str, authorization_id: str, amount: int = 0, reversal_id: str | None = None):  # type: ignore[no-untyped-def]
    request = authorization_pb2.ReverseRequest(
        reversal_id=reversal_id or new_id("rev"), authorization_id=authorization_id, amount_minor=amount
    )
    return api.authz.Reverse(request, metadata=bearer(secret))


def counters(server: ThreadedServer, tenant_id: str, card_id: str) -> dict[str, int]:
    keys = server.server.keyspace
    raw = server.call(server.server.redis.hgetall(keys.usage(keys.shard_of(card_id), tenant_id, card_id)))
    return {k.decode(): int(v) for k, v in raw.items() if not k.endswith(b"|p")}


def refused(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code()


def test_full_reversal_releases_amount_and_count(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger
) -> None:
    card = api.issue_card(tenant, DAILY_10K)
    approved = api.authorize(tenant.processor, card.card_id, 6000)
    response = reverse(api, tenant.processor, approved.authorization_id)
    assert (response.released_minor, response.remaining_hold_minor, response.replayed) == (6000, 0, False)
    assert counters(server, tenant.tenant_id, card.card_id)["D|a"] == 0
    assert counters(server, tenant.tenant_id, card.card_id)["D|c"] == 0, "a full reversal gives back the count"
    assert api.authorize(tenant.processor, card.card_id, 10_000).decision == t.APPROVE, "the whole limit is free again"
    ledger.drain()
    [row] = ledger.fetch(
        "SELECT status, reversed_minor, remaining_hold_minor FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant.tenant_id, approved.authorization_id,
    )  # fmt: skip
    assert tuple(row) == ("REVERSED", 6000, 0)
    kinds = [r["kind"] for r in ledger.fetch(
        "SELECT kind FROM ledger_transactions WHERE tenant_id = $1 AND authorization_id = $2 ORDER BY created_at, kind",
        tenant.tenant_id, approved.authorization_id,
    )]  # fmt: skip
    assert sorted(kinds) == ["hold", "reversal"]
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])
    events = [r["type"] for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1", tenant.tenant_id)]
    assert "card.authorization.reversed" in events


def test_partial_reversals_release_amount_only(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger
) -> None:
    card = api.issue_card(tenant, DAILY_10K)
    approved = api.authorize(tenant.processor, card.card_id, 5000)
    first = reverse(api, tenant.processor, approved.authorization_id, 2000)
    assert (first.released_minor, first.remaining_hold_minor) == (2000, 3000)
    now = counters(server, tenant.tenant_id, card.card_id)
    assert (now["D|a"], now["D|c"]) == (3000, 1), "a partial reversal gives back amount, not the count"
    got = api.authz.GetAuthorization(
        authorization_pb2.GetAuthorizationRequest(authorization_id=approved.authorization_id),
        metadata=bearer(tenant.operator),
    )
    assert (got.posted, got.remaining_hold_minor, got.status) == (False, 3000, "PARTIALLY_REVERSED")
    rest = reverse(api, tenant.processor, approved.authorization_id)
    assert (rest.released_minor, rest.remaining_hold_minor) == (3000, 0)
    assert counters(server, tenant.tenant_id, card.card_id)["D|c"] == 0
    ledger.drain()
    got = api.authz.GetAuthorization(
        authorization_pb2.GetAuthorizationRequest(authorization_id=approved.authorization_id),
        metadata=bearer(tenant.operator),
    )
    assert (got.posted, got.remaining_hold_minor, got.status) == (True, 0, "REVERSED")
    assert sorted(e.amount_minor for e in got.ledger_entries) == [2000, 2000, 3000, 3000, 5000, 5000]
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_replay_and_conflicts(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    card = api.issue_card(tenant, DAILY_10K)
    approved = api.authorize(tenant.processor, card.card_id, 5000)
    other = api.authorize(tenant.processor, card.card_id, 1000)
    first = reverse(api, tenant.processor, approved.authorization_id, 1500, reversal_id="rev-1")
    again = reverse(api, tenant.processor, approved.authorization_id, 1500, reversal_id="rev-1")
    assert (again.released_minor, again.remaining_hold_minor, again.replayed) == (1500, 3500, True)
    assert first.replayed is False
    assert counters(server, tenant.tenant_id, card.card_id)["D|a"] == 4500, "a replay releases nothing more"
    assert (
        refused(lambda: reverse(api, tenant.processor, approved.authorization_id, 1000, "rev-1"))
        == grpc.StatusCode.ALREADY_EXISTS
    )
    assert (
        refused(lambda: reverse(api, tenant.processor, other.authorization_id, 1500, "rev-1"))
        == grpc.StatusCode.ALREADY_EXISTS
    )


def test_refusals_change_nothing(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"], review_threshold_minor=8000))
    approved = api.authorize(tenant.processor, card.card_id, 5000)
    declined = api.authorize(tenant.processor, card.card_id, 100, mcc="7995")
    review = api.authorize(tenant.processor, card.card_id, 9000)
    before = counters(server, tenant.tenant_id, card.card_id)
    p = tenant.processor
    assert refused(lambda: reverse(api, p, approved.authorization_id, 5001)) == grpc.StatusCode.FAILED_PRECONDITION
    assert refused(lambda: reverse(api, p, declined.authorization_id)) == grpc.StatusCode.FAILED_PRECONDITION
    assert refused(lambda: reverse(api, p, review.authorization_id)) == grpc.StatusCode.FAILED_PRECONDITION
    assert refused(lambda: reverse(api, p, "auth-unknown")) == grpc.StatusCode.NOT_FOUND
    other = api.new_tenant()
    assert refused(lambda: reverse(api, other.processor, approved.authorization_id)) == grpc.StatusCode.NOT_FOUND
    assert refused(lambda: reverse(api, p, approved.authorization_id, -1)) == grpc.StatusCode.INVALID_ARGUMENT
    assert counters(server, tenant.tenant_id, card.card_id) == before
    reverse(api, p, approved.authorization_id)
    assert refused(lambda: reverse(api, p, approved.authorization_id)) == grpc.StatusCode.FAILED_PRECONDITION, (
        "nothing left"
    )


def test_reversal_after_the_day_rolled_releases_only_current_windows(
    api: Api, tenant: TenantKeys, server: ThreadedServer, clock
) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant, DAILY_10K)
    clock.set_ms(int(datetime(2026, 3, 18, 23, 0, tzinfo=UTC).timestamp() * 1000))
    approved = api.authorize(tenant.processor, card.card_id, 4000)
    clock.set_ms(int(datetime(2026, 3, 19, 1, 0, tzinfo=UTC).timestamp() * 1000))
    assert api.authorize(tenant.processor, card.card_id, 7000).decision == t.APPROVE
    reverse(api, tenant.processor, approved.authorization_id)
    after = counters(server, tenant.tenant_id, card.card_id)
    assert after["D|a"] == 7000, "today's usage is not touched by releasing yesterday's approval"
    assert after["W|a"] == 7000 and after["M|a"] == 7000, "the week and month it was counted in give it back"


def test_concurrent_reversals_never_release_more_than_the_hold(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    card = api.issue_card(tenant)
    approved = api.authorize(tenant.processor, card.card_id, 3000)
    futures = [
        api.authz.Reverse.future(
            authorization_pb2.ReverseRequest(
                reversal_id=new_id("rev"), authorization_id=approved.authorization_id, amount_minor=100
            ),
            metadata=bearer(tenant.processor),
        )
        for _ in range(60)
    ]
    released = 0
    for future in futures:
        try:
            released += future.result().released_minor
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert released == 3000
    ledger.drain()
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])
    [row] = ledger.fetch("SELECT reversed_minor FROM authorizations WHERE tenant_id = $1", tenant.tenant_id)
    assert row["reversed_minor"] == 3000
