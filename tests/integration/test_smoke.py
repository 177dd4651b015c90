"""The happy path end to end: a tenant issues a card and a purchase on it is approved."""

from zentra.cards.v1 import types_pb2 as t


def test_issue_then_authorize_approves(api, tenant):
    card = api.issue_card(tenant)
    response = api.authorize(tenant.processor, card.card_id, 1250)
    assert (response.decision, response.reason, response.response_code) == (t.APPROVE, t.APPROVED, "00")
    assert response.policy_version == 1
    assert not response.replayed
