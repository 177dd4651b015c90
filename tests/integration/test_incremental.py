"""Incremental authorizations: decided on their own amount against the card's state and limits,
they add to the original's hold (a reversal or clearing of the original covers them), count as
amount but not as another purchase, and the evidence links them to the original."""

from __future__ import annotations

import grpc
import pytest

from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import Ledger, ThreadedServer
from zentra.cards.v1 import authorization_pb2, card_pb2
from zentra.cards.v1 import types_pb2 as t


def increment(api: Api, secret: str, card_id: str, original: str, amount: int) -> authorization_pb2.AuthorizeResponse:
    request = api.authorize_request(card_id, amount, mcc="7011")
    request.incremental_of = original
    return api.authz.Authorize(request, metadata=bearer(secret))


def usage(server: ThreadedServer, tenant_id: str, card_id: str) -> tuple[int, int]:
    keys = server.server.keyspace
    values = server.call(server.server.redis.hgetall(keys.usage(keys.shard_of(card_id), tenant_id, card_id)))
    return int(values[b"D|a"]), int(values[b"D|c"])


def test_an_increment_joins_the_original_hold(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger
) -> None:
    card = api.issue_card(
        tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=20_000, max_count=1)])
    )
    original = api.authorize(tenant.processor, card.card_id, 10_000, mcc="7011")
    assert original.decision == t.APPROVE
    extra = increment(api, tenant.processor, card.card_id, original.authorization_id, 6_000)
    assert extra.decision == t.APPROVE, "one purchase: the count cap of 1 does not stop its increment"
    assert usage(server, tenant.tenant_id, card.card_id) == (16_000, 1)
    too_much = increment(api, tenant.processor, card.card_id, original.authorization_id, 5_000)
    assert too_much.reason == t.SPEND_LIMIT_EXCEEDED, "decided on its own amount against current limits"
    reversal = api.authz.Reverse(
        authorization_pb2.ReverseRequest(reversal_id=new_id("rev"), authorization_id=original.authorization_id),
        metadata=bearer(tenant.processor),
    )
    assert reversal.released_minor == 16_000, "reversing the original releases the increment too"
    assert usage(server, tenant.tenant_id, card.card_id) == (0, 0)
    ledger.drain()
    got = api.authz.GetAuthorization(
        authorization_pb2.GetAuthorizationRequest(authorization_id=extra.authorization_id),
        metadata=bearer(tenant.operator),
    )
    assert (got.incremental_of, got.status) == (original.authorization_id, "INCREMENTED")
    original_row = api.authz.GetAuthorization(
        authorization_pb2.GetAuthorizationRequest(authorization_id=original.authorization_id),
        metadata=bearer(tenant.operator),
    )
    holds = sorted(e.amount_minor for e in original_row.ledger_entries if e.transaction_id.startswith("hold:"))
    assert holds == [6_000, 6_000, 10_000, 10_000], "both holds are listed under the original"
    types = [r["type"] for r in ledger.fetch("SELECT type FROM events WHERE tenant_id = $1", tenant.tenant_id)]
    assert "card.authorization.incremented" in types
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])


def test_an_increment_needs_a_live_approval_of_the_same_card(api: Api, tenant: TenantKeys) -> None:
    card, other = api.issue_card(tenant), api.issue_card(tenant)
    declined = api.authorize(tenant.processor, card.card_id, 100, currency="EUR")
    approved = api.authorize(tenant.processor, other.card_id, 100)

    def code(original: str, card_id: str) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as error:
            increment(api, tenant.processor, card_id, original, 50)
        return error.value.code()

    assert code("auth-nowhere", card.card_id) == grpc.StatusCode.FAILED_PRECONDITION
    assert code(declined.authorization_id, card.card_id) == grpc.StatusCode.FAILED_PRECONDITION
    assert code(approved.authorization_id, card.card_id) == grpc.StatusCode.FAILED_PRECONDITION, "another card's"
    api.cards.FreezeCard(card_pb2.CardActionRequest(card_id=other.card_id), metadata=bearer(tenant.admin))
    frozen = increment(api, tenant.processor, other.card_id, approved.authorization_id, 50)
    assert frozen.reason == t.CARD_FROZEN, "decided against the card's current state"
