"""Advices: what the network already approved in stand-in is never declined (a missing card
aside), is reserved and posted even past limits or on a frozen card, and is flagged as an
advice in the evidence, the events and the metrics."""

from __future__ import annotations

import json

from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import Ledger, ThreadedServer
from zentra.cards.v1 import card_pb2
from zentra.cards.v1 import types_pb2 as t


def advise(api: Api, secret: str, card_id: str, amount: int, **kw):  # type: ignore[no-untyped-def]
    request = api.authorize_request(card_id, amount, **kw)
    request.advice = True
    return request, api.authz.Authorize(request, metadata=bearer(secret))


def test_advices_are_reserved_past_limits_and_state(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger
) -> None:
    controls = t.SpendControls(
        spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=1000)], blocked_mccs=["7995"]
    )
    card = api.issue_card(tenant, controls)
    api.cards.FreezeCard(card_pb2.CardActionRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    request, response = advise(api, tenant.processor, card.card_id, 5000, mcc="7995")
    assert (response.decision, response.reason, response.response_code) == (t.APPROVE, t.APPROVED, "00")
    keys = server.server.keyspace
    usage = server.call(
        server.server.redis.hgetall(keys.usage(keys.shard_of(card.card_id), tenant.tenant_id, card.card_id))
    )
    assert usage[b"D|a"] == b"5000", "reserved in its windows, past the daily limit"
    again = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    assert again.replayed and again.decision == t.APPROVE
    plain = api.authorize(tenant.processor, card.card_id, 10)
    assert plain.reason == t.CARD_FROZEN, "only advices skip the checks"
    ledger.drain()
    [row] = ledger.fetch(
        "SELECT advice, status, rules FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant.tenant_id, request.authorization_id,
    )  # fmt: skip
    assert row["advice"] is True and row["status"] == "PENDING"
    assert json.loads(row["rules"])[0]["rule"] == "advice"
    types = [r["type"] for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1", tenant.tenant_id)]
    assert "card.authorization.advice" in types
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_an_advice_for_a_missing_card_is_declined(api: Api, tenant: TenantKeys) -> None:
    _, response = advise(api, tenant.processor, "card_missing", 100)
    assert (response.decision, response.reason) == (t.DECLINE, t.CARD_NOT_FOUND)
