"""Replay safety: a retried Authorize gets the original answer with replayed=true and
reserves nothing more; the same id with a different request is ALREADY_EXISTS."""

from __future__ import annotations

import grpc
import pytest

from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import ThreadedServer
from zentra.cards.v1 import authorization_pb2, card_pb2
from zentra.cards.v1 import types_pb2 as t


def usage(server: ThreadedServer, tenant_id: str, card_id: str) -> dict[bytes, bytes]:
    keys = server.server.keyspace
    key = keys.usage(keys.shard_of(card_id), tenant_id, card_id)
    return server.call(server.server.redis.hgetall(key))


def test_same_request_replays_without_reserving(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    card = api.issue_card(
        tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=10_000)])
    )
    request = api.authorize_request(card.card_id, 6000)
    first = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    counters = usage(server, tenant.tenant_id, card.card_id)
    assert counters[b"D|a"] == b"6000" and counters[b"D|c"] == b"1"
    for _ in range(3):
        again = api.authz.Authorize(request, metadata=bearer(tenant.processor))
        assert again.replayed
        expected = authorization_pb2.AuthorizeResponse()
        expected.CopyFrom(first)
        expected.replayed = True
        assert again == expected, "a replay returns the original answer, decided_at included"
    assert usage(server, tenant.tenant_id, card.card_id) == counters, "replays reserve nothing"
    assert t.Reason.Name(api.authorize(tenant.processor, card.card_id, 4000).reason) == "APPROVED"
    assert t.Reason.Name(api.authorize(tenant.processor, card.card_id, 1).reason) == "SPEND_LIMIT_EXCEEDED"


def test_replay_wins_over_later_changes(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant)
    request = api.authorize_request(card.card_id, 500)
    assert api.authz.Authorize(request, metadata=bearer(tenant.processor)).decision == t.APPROVE
    api.cards.FreezeCard(card_pb2.CardActionRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    again = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    assert (again.decision, again.replayed, again.policy_version) == (t.APPROVE, True, 1)


def test_declines_replay_too(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"]))
    request = api.authorize_request(card.card_id, 500, mcc="7995")
    first = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    again = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    assert (first.reason, first.replayed) == (t.MCC_NOT_ALLOWED, False)
    assert (again.reason, again.replayed) == (t.MCC_NOT_ALLOWED, True)


CHANGES = [
    pytest.param({"amount_minor": 501}, id="amount"),
    pytest.param({"currency": "EUR"}, id="currency"),
    pytest.param({"channel": t.ECOMMERCE}, id="channel"),
    pytest.param(
        {"merchant": t.Merchant(id="m-2", name="Other", mcc="5812", country="US", city="Boston")},
        id="merchant",
    ),
]


@pytest.mark.parametrize("change", CHANGES)
def test_same_id_different_request_is_already_exists(
    api: Api, tenant: TenantKeys, server: ThreadedServer, change
) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant)
    request = api.authorize_request(card.card_id, 500)
    api.authz.Authorize(request, metadata=bearer(tenant.processor))
    counters = usage(server, tenant.tenant_id, card.card_id)
    different = authorization_pb2.AuthorizeRequest()
    different.CopyFrom(request)
    for field, value in change.items():
        if field == "merchant":
            different.merchant.CopyFrom(value)
        else:
            setattr(different, field, value)
    with pytest.raises(grpc.RpcError) as error:
        api.authz.Authorize(different, metadata=bearer(tenant.processor))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "authorization_id" in error.value.details()
    assert usage(server, tenant.tenant_id, card.card_id) == counters


def test_same_id_on_another_card_is_already_exists(api: Api, tenant: TenantKeys) -> None:
    first, second = api.issue_card(tenant), api.issue_card(tenant)
    request = api.authorize_request(first.card_id, 500)
    api.authz.Authorize(request, metadata=bearer(tenant.processor))
    request.card_id = second.card_id
    with pytest.raises(grpc.RpcError) as error:
        api.authz.Authorize(request, metadata=bearer(tenant.processor))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_replay_record_outlives_seven_days(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    card = api.issue_card(tenant)
    response = api.authorize(tenant.processor, card.card_id, authorization_id="auth-ttl-check")
    assert response.decision == t.APPROVE
    key = server.server.keyspace.replay(tenant.tenant_id, "auth-ttl-check")
    ttl = server.call(server.server.redis.ttl(key))
    # An approval's record outlives its hold (7 days here) by the replay retention (7 days).
    assert 14 * 24 * 3600 - 60 <= ttl <= 14 * 24 * 3600
    declined = api.authorize(tenant.processor, card.card_id, currency="EUR", authorization_id="auth-ttl-declined")
    assert declined.decision == t.DECLINE
    ttl = server.call(server.server.redis.ttl(server.server.keyspace.replay(tenant.tenant_id, "auth-ttl-declined")))
    assert 7 * 24 * 3600 - 60 <= ttl <= 7 * 24 * 3600
