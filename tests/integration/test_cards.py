"""Card administration: IssueCard idempotency, policy_version rules, state transitions
(closing is final), and every change visible to the very next Authorize."""

from __future__ import annotations

import grpc
import pytest

from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import ThreadedServer
from zentra.cards.v1 import card_pb2
from zentra.cards.v1 import types_pb2 as t


def issue_request(**overrides) -> card_pb2.IssueCardRequest:  # type: ignore[no-untyped-def]
    fields = dict(idempotency_key=new_id("idem"), customer_ref="cust-9", account_ref="acct-9", currency="EUR")
    fields.update(overrides)
    return card_pb2.IssueCardRequest(**fields)


def action(card_id: str, reason: str = "") -> card_pb2.CardActionRequest:
    return card_pb2.CardActionRequest(card_id=card_id, reason=reason)


def test_issue_card_is_idempotent(api: Api, tenant: TenantKeys) -> None:
    request = issue_request(spend_controls=t.SpendControls(blocked_mccs=["7995"]))
    first = api.cards.IssueCard(request, metadata=bearer(tenant.admin))
    assert (first.state, first.policy_version, first.tenant_id) == (t.ACTIVE, 1, tenant.tenant_id)
    assert first.card_id.startswith("card_")
    again = api.cards.IssueCard(request, metadata=bearer(tenant.admin))
    assert again == first, "same key and request: the same card"
    api.cards.FreezeCard(action(first.card_id), metadata=bearer(tenant.admin))
    now = api.cards.IssueCard(request, metadata=bearer(tenant.admin))
    assert (now.card_id, now.state, now.policy_version) == (first.card_id, t.FROZEN, 2), (
        "a replay returns the card as it is now"
    )


def test_issue_card_same_key_different_request(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    request = issue_request()
    api.cards.IssueCard(request, metadata=bearer(tenant.admin))
    request.currency = "USD"
    with pytest.raises(grpc.RpcError) as error:
        api.cards.IssueCard(request, metadata=bearer(tenant.admin))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "idempotency_key" in error.value.details()
    count = server.call(
        server.server.pool.fetchval("SELECT count(*) FROM cards WHERE tenant_id = $1", tenant.tenant_id)
    )
    assert count == 1


def test_issue_card_writes_postgres_and_the_projection(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    card = api.cards.IssueCard(issue_request(), metadata=bearer(tenant.admin))
    row = server.call(
        server.server.pool.fetchrow("SELECT state, policy_version FROM cards WHERE card_id = $1", card.card_id)
    )
    assert (row["state"], row["policy_version"]) == (t.ACTIVE, 1)
    keys = server.server.keyspace
    projected = server.call(
        server.server.redis.hgetall(keys.card(keys.shard_of(card.card_id), tenant.tenant_id, card.card_id))
    )
    assert projected[b"v"] == b"1" and projected[b"st"] == str(t.ACTIVE).encode() and projected[b"cur"] == b"EUR"


def test_get_card(api: Api, tenant: TenantKeys) -> None:
    controls = t.SpendControls(
        spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=5000, max_count=3, mccs=["5812"])],
        allowed_channels=[t.ECOMMERCE, t.CARD_PRESENT],
        blocked_countries=["RU"],
        review_threshold_minor=4000,
    )
    card = api.issue_card(tenant, controls)
    got = api.cards.GetCard(card_pb2.GetCardRequest(card_id=card.card_id), metadata=bearer(tenant.operator))
    assert got == card
    assert got.spend_controls.spending_limits[0].mccs == ["5812"]
    assert sorted(got.spend_controls.allowed_channels) == sorted([t.ECOMMERCE, t.CARD_PRESENT])


def test_freeze_is_visible_to_the_very_next_authorize(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant)
    assert api.authorize(tenant.processor, card.card_id).decision == t.APPROVE
    frozen = api.cards.FreezeCard(action(card.card_id, "suspected fraud"), metadata=bearer(tenant.operator))
    assert (frozen.state, frozen.policy_version) == (t.FROZEN, 2)
    response = api.authorize(tenant.processor, card.card_id)
    assert (response.reason, response.policy_version) == (t.CARD_FROZEN, 2)
    again = api.cards.FreezeCard(action(card.card_id), metadata=bearer(tenant.operator))
    assert again.policy_version == 2, "freezing a frozen card changes nothing"
    thawed = api.cards.UnfreezeCard(action(card.card_id), metadata=bearer(tenant.operator))
    assert (thawed.state, thawed.policy_version) == (t.ACTIVE, 3)
    response = api.authorize(tenant.processor, card.card_id)
    assert (response.decision, response.policy_version) == (t.APPROVE, 3)


def test_control_update_is_visible_to_the_very_next_authorize(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant)
    assert api.authorize(tenant.processor, card.card_id, mcc="7995").decision == t.APPROVE
    updated = api.cards.UpdateSpendControls(
        card_pb2.UpdateSpendControlsRequest(
            card_id=card.card_id, spend_controls=t.SpendControls(blocked_mccs=["7995"])
        ),
        metadata=bearer(tenant.admin),
    )
    assert updated.policy_version == 2 and list(updated.spend_controls.blocked_mccs) == ["7995"]
    assert api.authorize(tenant.processor, card.card_id, mcc="7995").reason == t.MCC_NOT_ALLOWED
    # Replacing the controls as a whole: an empty SpendControls lifts the block.
    cleared = api.cards.UpdateSpendControls(
        card_pb2.UpdateSpendControlsRequest(card_id=card.card_id), metadata=bearer(tenant.admin)
    )
    assert cleared.policy_version == 3 and not cleared.spend_controls.blocked_mccs
    assert api.authorize(tenant.processor, card.card_id, mcc="7995").decision == t.APPROVE


def test_closing_is_final(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant)
    api.cards.FreezeCard(action(card.card_id), metadata=bearer(tenant.admin))
    closed = api.cards.CloseCard(action(card.card_id, "customer request"), metadata=bearer(tenant.admin))
    assert (closed.state, closed.policy_version) == (t.CLOSED, 3)
    assert api.cards.CloseCard(action(card.card_id), metadata=bearer(tenant.admin)).policy_version == 3
    for call in (api.cards.UnfreezeCard, api.cards.FreezeCard):
        with pytest.raises(grpc.RpcError) as error:
            call(action(card.card_id), metadata=bearer(tenant.admin))
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as error:
        api.cards.UpdateSpendControls(
            card_pb2.UpdateSpendControlsRequest(card_id=card.card_id), metadata=bearer(tenant.admin)
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = api.cards.GetCard(card_pb2.GetCardRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    assert (got.state, got.policy_version) == (t.CLOSED, 3)
    assert api.authorize(tenant.processor, card.card_id).reason == t.CARD_CLOSED


def test_every_version_is_kept_as_evidence(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    card = api.issue_card(tenant)
    api.cards.FreezeCard(action(card.card_id, "lost"), metadata=bearer(tenant.operator))
    api.cards.UnfreezeCard(action(card.card_id, "found"), metadata=bearer(tenant.operator))
    rows = server.call(
        server.server.pool.fetch(
            "SELECT policy_version, state, action, reason FROM card_versions WHERE card_id = $1 ORDER BY policy_version",
            card.card_id,
        )
    )
    assert [(r["policy_version"], r["state"], r["action"], r["reason"]) for r in rows] == [
        (1, t.ACTIVE, "issue", ""),
        (2, t.FROZEN, "freeze", "lost"),
        (3, t.ACTIVE, "unfreeze", "found"),
    ]


def test_unknown_card(api: Api, tenant: TenantKeys) -> None:
    for call in (api.cards.FreezeCard, api.cards.CloseCard):
        with pytest.raises(grpc.RpcError) as error:
            call(action("card_missing"), metadata=bearer(tenant.admin))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
