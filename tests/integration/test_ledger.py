"""The ledger writer posts every decision: an authorization record with its rule trace for
every outcome, one balanced hold per approval, the events, and the database itself refuses
an unbalanced ledger transaction."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.api import Api, TenantKeys
from tests.support.stack import Ledger
from zentra.cards.v1 import types_pb2 as t


def test_approval_is_posted_as_a_hold(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    card = api.issue_card(tenant)
    response = api.authorize(tenant.processor, card.card_id, 1250)
    assert response.decision == t.APPROVE
    ledger.drain()
    [record] = ledger.fetch(
        "SELECT * FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant.tenant_id,
        response.authorization_id,
    )
    assert (record["decision"], record["reason"], record["status"], record["amount_minor"]) == (
        t.APPROVE, t.APPROVED, "PENDING", 1250,
    )  # fmt: skip
    entries = ledger.fetch(
        """SELECT e.account, e.direction, e.amount_minor, e.currency, e.account_ref, x.kind
           FROM ledger_entries e JOIN ledger_transactions x USING (tenant_id, transaction_id)
           WHERE x.tenant_id = $1 AND x.authorization_id = $2 ORDER BY e.line""",
        tenant.tenant_id,
        response.authorization_id,
    )
    assert [(e["kind"], e["account"], e["direction"], e["amount_minor"], e["currency"]) for e in entries] == [
        ("hold", "customer_balance", 1, 1250, "USD"),
        ("hold", "reserved_balance", 2, 1250, "USD"),
    ]
    assert {e["account_ref"] for e in entries} == {card.account_ref}


def test_declines_and_reviews_are_recorded_without_postings(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"], review_threshold_minor=5000))
    declined = api.authorize(tenant.processor, card.card_id, 100, mcc="7995")
    review = api.authorize(tenant.processor, card.card_id, 6000)
    missing = api.authorize(tenant.processor, "card_nowhere", 100)
    ledger.drain()
    rows = {
        r["authorization_id"]: r
        for r in ledger.fetch("SELECT * FROM authorizations WHERE tenant_id = $1", tenant.tenant_id)
    }
    assert rows[declined.authorization_id]["status"] == "DECLINED"
    assert rows[review.authorization_id]["status"] == "REVIEW"
    assert rows[missing.authorization_id]["reason"] == t.CARD_NOT_FOUND
    assert rows[missing.authorization_id]["account_ref"] is None
    postings = ledger.fetch("SELECT * FROM ledger_transactions WHERE tenant_id = $1", tenant.tenant_id)
    assert postings == [], "declines and reviews post nothing"


def test_rule_trace_shows_what_the_rules_saw(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"]))
    declined = api.authorize(tenant.processor, card.card_id, 100, mcc="7995")
    ledger.drain()
    [row] = ledger.fetch(
        "SELECT rules FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant.tenant_id,
        declined.authorization_id,
    )
    import json

    rules = json.loads(row["rules"])
    assert [(r["rule"], r["passed"]) for r in rules] == [
        ("card_exists", True), ("card_not_closed", True), ("card_not_frozen", True), ("currency", True),
        ("channel", True), ("mcc", False),
    ]  # fmt: skip
    assert rules[-1]["detail"] == "mcc 7995 is in blocked_mccs [7995]"


def test_events_for_each_decision(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    card = api.issue_card(tenant)
    approved = api.authorize(tenant.processor, card.card_id, 100)
    ledger.drain()
    types = [
        r["type"]
        for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1 ORDER BY sequence", tenant.tenant_id)
    ]
    assert types == ["card.issued", "card.authorization.requested", "card.authorization.approved"]
    [payload] = ledger.fetch(
        "SELECT payload FROM events WHERE tenant_id = $1 AND type = 'card.authorization.approved'", tenant.tenant_id
    )
    assert approved.authorization_id in payload["payload"]


def test_database_refuses_an_unbalanced_transaction(ledger: Ledger, tenant: TenantKeys) -> None:
    async def unbalanced() -> None:
        async with ledger.writer.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO ledger_transactions (tenant_id, transaction_id, kind, source_id) VALUES ($1, 'x:1', 'x', '1')",
                tenant.tenant_id,
            )
            await conn.execute(
                """INSERT INTO ledger_entries (tenant_id, transaction_id, line, account, account_ref, direction,
                       amount_minor, currency)
                   VALUES ($1, 'x:1', 1, 'customer_balance', 'a', 1, 100, 'USD'),
                          ($1, 'x:1', 2, 'reserved_balance', 'a', 2, 99, 'USD')""",
                tenant.tenant_id,
            )

    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        ledger.server.call(unbalanced())
    assert ledger.fetch("SELECT 1 FROM ledger_transactions WHERE tenant_id = $1", tenant.tenant_id) == []
