"""Clearing records matched to authorizations and posted per DESIGN "Ledger semantics":
exact, over- and under-captures (several per authorization), late captures, force posts and
refunds, with deltas, reviews, events, counters that follow the money, idempotency on
clearing_id, and a reversal racing a clearing never releasing or settling more than was held."""

from __future__ import annotations

import grpc
import pytest

from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import Ledger, ThreadedServer
from zentra.cards.v1 import authorization_pb2, clearing_pb2, clearing_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

DAILY = t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=100_000)])


def clearing(
    card_id: str, amount: int, authorization_id: str = "", final: bool = True, kind: int = clearing_pb2.CAPTURE, **kw
) -> clearing_pb2.ClearingRecord:  # type: ignore[no-untyped-def]
    return clearing_pb2.ClearingRecord(
        clearing_id=kw.get("clearing_id") or new_id("clr"),
        authorization_id=authorization_id,
        card_id=card_id,
        amount_minor=amount,
        currency=kw.get("currency", "USD"),
        merchant=t.Merchant(id="m-1", name="Cafe", mcc="5812", country="US", city="Boston"),
        kind=kind,
        is_final=final,
    )


def post(api: Api, secret: str, record: clearing_pb2.ClearingRecord) -> clearing_pb2.ClearingResult:
    return clearing_pb2_grpc.ClearingServiceStub(api.channel).PostClearing(record, metadata=bearer(secret))


def counted(server: ThreadedServer, tenant_id: str, card_id: str) -> tuple[int, int]:
    keys = server.server.keyspace
    usage = server.call(server.server.redis.hgetall(keys.usage(keys.shard_of(card_id), tenant_id, card_id)))
    return int(usage.get(b"D|a", 0)), int(usage.get(b"D|c", 0))


def outcome(result: clearing_pb2.ClearingResult) -> tuple[str, int, int, int, int]:
    return (
        clearing_pb2.ClearingOutcome.Name(result.outcome), result.from_hold_minor, result.from_balance_minor,
        result.released_minor, result.delta_minor,
    )  # fmt: skip


def entries(ledger: Ledger, tenant_id: str, clearing_id: str) -> list[tuple[str, int, int]]:
    rows = ledger.fetch(
        "SELECT account, direction, amount_minor FROM ledger_entries WHERE tenant_id = $1 AND transaction_id = $2 ORDER BY line",
        tenant_id, f"clearing:{clearing_id}",
    )  # fmt: skip
    return [(r["account"], r["direction"], r["amount_minor"]) for r in rows]


def status(ledger: Ledger, tenant_id: str, authorization_id: str) -> tuple[str, int, int]:
    [row] = ledger.fetch(
        "SELECT status, cleared_minor, remaining_hold_minor FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant_id, authorization_id,
    )  # fmt: skip
    return tuple(row)  # type: ignore[return-value]


def test_exact_capture(api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger) -> None:
    card = api.issue_card(tenant, DAILY)
    auth = api.authorize(tenant.processor, card.card_id, 2500)
    record = clearing(card.card_id, 2500, auth.authorization_id)
    assert outcome(post(api, tenant.processor, record)) == ("MATCHED", 2500, 0, 0, 0)
    assert counted(server, tenant.tenant_id, card.card_id) == (2500, 1)
    ledger.drain()
    assert entries(ledger, tenant.tenant_id, record.clearing_id) == [
        ("reserved_balance", 1, 2500), ("settlement_account", 2, 2500),
    ]  # fmt: skip
    assert status(ledger, tenant.tenant_id, auth.authorization_id) == ("CLEARED", 2500, 0)
    types = {r["type"] for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1", tenant.tenant_id)}
    assert "card.clearing.posted" in types and "card.clearing.mismatch" not in types
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_over_capture_within_and_beyond_tolerance(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger
) -> None:
    card = api.issue_card(tenant, DAILY)
    tip = api.authorize(tenant.processor, card.card_id, 1000)
    result = post(api, tenant.processor, clearing(card.card_id, 1150, tip.authorization_id))
    assert outcome(result) == ("MISMATCHED", 1000, 150, 0, 150)
    assert result.review_id == "", "a 15% tip is within the 20% tolerance"
    assert counted(server, tenant.tenant_id, card.card_id) == (1150, 1), "counters follow the money: the tip counts"
    big = api.authorize(tenant.processor, card.card_id, 1000)
    record = clearing(card.card_id, 1600, big.authorization_id)
    result = post(api, tenant.processor, record)
    assert outcome(result) == ("MISMATCHED", 1000, 600, 0, 600) and result.review_id == f"clearing:{record.clearing_id}"
    ledger.drain()
    assert entries(ledger, tenant.tenant_id, record.clearing_id) == [
        ("reserved_balance", 1, 1000), ("settlement_account", 2, 1000),
        ("customer_balance", 1, 600), ("settlement_account", 2, 600),
    ]  # fmt: skip
    [review] = ledger.fetch(
        "SELECT * FROM reviews WHERE tenant_id = $1 AND kind = 'CLEARING_MISMATCH'", tenant.tenant_id
    )
    assert (review["status"], review["delta_minor"], review["authorization_id"]) == ("OPEN", 600, big.authorization_id)
    types = [r["type"] for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1", tenant.tenant_id)]
    assert types.count("card.clearing.mismatch") == 2 and types.count("review.opened") == 1
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_partial_shipments_then_final(api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger) -> None:
    card = api.issue_card(tenant, DAILY)
    auth = api.authorize(tenant.processor, card.card_id, 3000)
    first = post(api, tenant.processor, clearing(card.card_id, 1000, auth.authorization_id, final=False))
    assert outcome(first) == ("MISMATCHED", 1000, 0, 0, -2000) and first.review_id == ""
    assert counted(server, tenant.tenant_id, card.card_id) == (3000, 1), "a non-final clearing leaves the windows alone"
    last = post(api, tenant.processor, clearing(card.card_id, 1500, auth.authorization_id, final=True))
    assert outcome(last) == ("MISMATCHED", 1500, 0, 500, -500)
    assert counted(server, tenant.tenant_id, card.card_id) == (2500, 1), "after the final clearing: the cleared amount"
    ledger.drain()
    assert status(ledger, tenant.tenant_id, auth.authorization_id) == ("CLEARED", 2500, 0)
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_late_capture_after_reversal(api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger) -> None:
    card = api.issue_card(tenant, DAILY)
    auth = api.authorize(tenant.processor, card.card_id, 1000)
    api.authz.Reverse(
        authorization_pb2.ReverseRequest(reversal_id=new_id("rev"), authorization_id=auth.authorization_id),
        metadata=bearer(tenant.processor),
    )
    assert counted(server, tenant.tenant_id, card.card_id) == (0, 0)
    record = clearing(card.card_id, 1000, auth.authorization_id)
    result = post(api, tenant.processor, record)
    assert outcome(result) == ("LATE_CAPTURE", 0, 1000, 0, 0) and result.review_id
    assert counted(server, tenant.tenant_id, card.card_id) == (1000, 1), "the money moved: it counts again"
    ledger.drain()
    assert entries(ledger, tenant.tenant_id, record.clearing_id) == [
        ("customer_balance", 1, 1000), ("settlement_account", 2, 1000),
    ]  # fmt: skip
    assert ledger.fetch("SELECT kind FROM reviews WHERE tenant_id = $1", tenant.tenant_id)[0]["kind"] == "LATE_CAPTURE"
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_force_post_and_refund(api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger) -> None:
    card = api.issue_card(tenant, DAILY)
    force = clearing(card.card_id, 700)
    refund = clearing(card.card_id, 300, kind=clearing_pb2.REFUND)
    assert outcome(post(api, tenant.processor, force))[0] == "FORCE_POSTED"
    assert outcome(post(api, tenant.processor, refund))[0] == "REFUNDED"
    assert counted(server, tenant.tenant_id, card.card_id) == (0, 0), "force posts and refunds leave counters alone"
    ledger.drain()
    assert entries(ledger, tenant.tenant_id, force.clearing_id) == [
        ("customer_balance", 1, 700),
        ("settlement_account", 2, 700),
    ]
    rows = ledger.fetch(
        "SELECT account, direction, amount_minor FROM ledger_entries WHERE tenant_id = $1 AND transaction_id = $2",
        tenant.tenant_id, f"refund:{refund.clearing_id}",
    )  # fmt: skip
    assert sorted(tuple(r) for r in rows) == [("customer_balance", 2, 300), ("settlement_account", 1, 300)]
    kinds = {r["kind"] for r in ledger.fetch("SELECT kind FROM reviews WHERE tenant_id = $1", tenant.tenant_id)}
    assert kinds == {"FORCE_POST"}
    types = {r["type"] for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1", tenant.tenant_id)}
    assert {"card.refund.posted", "card.clearing.posted", "review.opened"} <= types
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])


def test_idempotent_on_clearing_id_and_refusals(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    card = api.issue_card(tenant, DAILY)
    auth = api.authorize(tenant.processor, card.card_id, 1000)
    record = clearing(card.card_id, 1000, auth.authorization_id)
    first = post(api, tenant.processor, record)
    again = post(api, tenant.processor, record)
    assert again.replayed and outcome(again) == outcome(first)
    assert counted(server, tenant.tenant_id, card.card_id) == (1000, 1)
    record.amount_minor = 999

    def code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
        with pytest.raises(grpc.RpcError) as error:
            call()
        return error.value.code()

    assert code(lambda: post(api, tenant.processor, record)) == grpc.StatusCode.ALREADY_EXISTS
    other_card = api.issue_card(tenant, DAILY)
    assert code(lambda: post(api, tenant.processor, clearing(other_card.card_id, 5, auth.authorization_id))) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert code(lambda: post(api, tenant.processor, clearing("card_nope", 5))) == grpc.StatusCode.NOT_FOUND
    assert code(lambda: post(api, tenant.processor, clearing(card.card_id, 0))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: post(api, tenant.operator, clearing(card.card_id, 5))) == grpc.StatusCode.PERMISSION_DENIED


def test_reversal_racing_clearing_never_exceeds_the_hold(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    card = api.issue_card(tenant, DAILY)
    auths = [api.authorize(tenant.processor, card.card_id, 5000).authorization_id for _ in range(15)]
    stub = clearing_pb2_grpc.ClearingServiceStub(api.channel)
    for authorization_id in auths:
        reversal = api.authz.Reverse.future(
            authorization_pb2.ReverseRequest(reversal_id=new_id("rev"), authorization_id=authorization_id),
            metadata=bearer(tenant.processor),
        )
        capture = stub.PostClearing.future(
            clearing(card.card_id, 5000, authorization_id), metadata=bearer(tenant.processor)
        )
        for future in (reversal, capture):
            try:
                future.result()
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # the reversal found nothing left
    ledger.drain()
    for authorization_id in auths:
        [row] = ledger.fetch(
            """SELECT COALESCE((SELECT sum(released_minor) FROM reversals WHERE tenant_id = $1 AND authorization_id = $2), 0)
                    + COALESCE((SELECT sum(from_hold_minor + released_minor) FROM clearings
                                WHERE tenant_id = $1 AND authorization_id = $2), 0) AS out_of_hold""",
            tenant.tenant_id, authorization_id,
        )  # fmt: skip
        assert row["out_of_hold"] == 5000, f"{authorization_id}: the hold gave exactly what it held"
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_currency_and_card_must_match(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    """A force post or refund in another currency, or a refund naming another card's
    authorization, is refused: it would post money in the wrong currency or on the wrong card."""
    card, other = api.issue_card(tenant, DAILY), api.issue_card(tenant, DAILY)
    auth = api.authorize(tenant.processor, other.card_id, 500)

    def code(record: clearing_pb2.ClearingRecord) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as error:
            post(api, tenant.processor, record)
        return error.value.code()

    assert code(clearing(card.card_id, 100, currency="EUR")) == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        code(clearing(card.card_id, 100, kind=clearing_pb2.REFUND, currency="JPY"))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    wrong_card_refund = clearing(card.card_id, 100, auth.authorization_id, kind=clearing_pb2.REFUND)
    assert code(wrong_card_refund) == grpc.StatusCode.FAILED_PRECONDITION
    ledger.drain()
    currencies = {
        r["currency"]
        for r in ledger.fetch("SELECT currency FROM ledger_entries WHERE tenant_id = $1", tenant.tenant_id)
    }
    assert currencies <= {"USD"}
