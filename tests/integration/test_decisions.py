"""Every decision reason and its ISO 8583 response code, reached through the public API, and
the order in which the checks run when several fail at once."""

from __future__ import annotations

import pytest

from tests.support.api import Api, TenantKeys, bearer
from zentra.cards.v1 import card_pb2
from zentra.cards.v1 import types_pb2 as t


def controls(**kw) -> t.SpendControls:  # type: ignore[no-untyped-def]
    return t.SpendControls(**kw)


def limit(interval: int, amount: int = 0, count: int = 0, mccs: tuple[str, ...] = ()) -> t.SpendLimit:
    return t.SpendLimit(interval=interval, amount_minor=amount, max_count=count, mccs=mccs)


def decided(response) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    return t.Decision.Name(response.decision), t.Reason.Name(response.reason), response.response_code


CASES = [
    pytest.param(controls(), {}, ("APPROVE", "APPROVED", "00"), id="approved"),
    pytest.param(controls(), {"currency": "EUR"}, ("DECLINE", "CURRENCY_MISMATCH", "57"), id="currency"),
    pytest.param(
        controls(allowed_channels=[t.ECOMMERCE]), {"channel": t.CARD_PRESENT},
        ("DECLINE", "CHANNEL_NOT_ALLOWED", "57"), id="channel",
    ),
    pytest.param(controls(allowed_mccs=["5411"]), {"mcc": "5812"}, ("DECLINE", "MCC_NOT_ALLOWED", "57"), id="mcc-allowed"),
    pytest.param(controls(blocked_mccs=["7995"]), {"mcc": "7995"}, ("DECLINE", "MCC_NOT_ALLOWED", "57"), id="mcc-blocked"),
    pytest.param(
        controls(allowed_countries=["US"]), {"country": "GB"}, ("DECLINE", "COUNTRY_NOT_ALLOWED", "57"), id="country-allowed"
    ),
    pytest.param(
        controls(blocked_countries=["RU"]), {"country": "RU"}, ("DECLINE", "COUNTRY_NOT_ALLOWED", "57"), id="country-blocked"
    ),
    pytest.param(
        controls(spending_limits=[limit(t.PER_AUTHORIZATION, 999)]), {},
        ("DECLINE", "SPEND_LIMIT_EXCEEDED", "61"), id="per-authorization",
    ),
    pytest.param(
        controls(spending_limits=[limit(t.DAILY, 999)]), {}, ("DECLINE", "SPEND_LIMIT_EXCEEDED", "61"), id="daily-amount"
    ),
    pytest.param(controls(review_threshold_minor=1000), {}, ("REVIEW", "REVIEW_REQUIRED", "01"), id="review"),
    pytest.param(controls(review_threshold_minor=1001), {}, ("APPROVE", "APPROVED", "00"), id="under-review-threshold"),
]  # fmt: skip


@pytest.mark.parametrize(("card_controls", "request_fields", "expected"), CASES)
def test_reason_and_code(api: Api, tenant: TenantKeys, card_controls, request_fields, expected) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant, card_controls)
    assert decided(api.authorize(tenant.processor, card.card_id, 1000, **request_fields)) == expected


def test_count_limit(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant, controls(spending_limits=[limit(t.DAILY, count=1)]))
    assert decided(api.authorize(tenant.processor, card.card_id)) == ("APPROVE", "APPROVED", "00")
    response = api.authorize(tenant.processor, card.card_id)
    assert decided(response) == ("DECLINE", "COUNT_LIMIT_EXCEEDED", "65")
    assert response.exceeded_limit == limit(t.DAILY, count=1)


def test_card_not_found(api: Api, tenant: TenantKeys) -> None:
    response = api.authorize(tenant.processor, "card_does_not_exist")
    assert decided(response) == ("DECLINE", "CARD_NOT_FOUND", "14")
    assert response.policy_version == 0


def test_frozen_and_closed(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant)
    action = card_pb2.CardActionRequest(card_id=card.card_id, reason="test")
    api.cards.FreezeCard(action, metadata=bearer(tenant.admin))
    assert decided(api.authorize(tenant.processor, card.card_id)) == ("DECLINE", "CARD_FROZEN", "62")
    api.cards.CloseCard(action, metadata=bearer(tenant.admin))
    assert decided(api.authorize(tenant.processor, card.card_id)) == ("DECLINE", "CARD_CLOSED", "46")


def test_review_reserves_nothing(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant, controls(spending_limits=[limit(t.DAILY, 5000, 1)], review_threshold_minor=4000))
    assert decided(api.authorize(tenant.processor, card.card_id, 4500)) == ("REVIEW", "REVIEW_REQUIRED", "01")
    # Neither the amount nor the count of the REVIEW counted: a 3999 still fits both caps.
    assert decided(api.authorize(tenant.processor, card.card_id, 3999)) == ("APPROVE", "APPROVED", "00")


def test_limits_run_before_review(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant, controls(spending_limits=[limit(t.DAILY, 5000)], review_threshold_minor=1000))
    assert decided(api.authorize(tenant.processor, card.card_id, 6000)) == (
        "DECLINE",
        "SPEND_LIMIT_EXCEEDED",
        "61",
    )


def test_checks_run_in_design_order(api: Api, tenant: TenantKeys) -> None:
    """Peel the failing checks off one at a time: each time the next one in DESIGN order names the reason."""
    everything_wrong = dict(currency="EUR", channel=t.ATM, mcc="7995", country="RU")
    strict = controls(
        allowed_channels=[t.ECOMMERCE],
        blocked_mccs=["7995"],
        blocked_countries=["RU"],
        spending_limits=[limit(t.DAILY, 500), limit(t.PER_AUTHORIZATION, 800)],
        review_threshold_minor=100,
    )
    card = api.issue_card(tenant, strict)
    steps = [
        ({}, "CURRENCY_MISMATCH"),
        ({"currency": "USD"}, "CHANNEL_NOT_ALLOWED"),
        ({"channel": t.ECOMMERCE}, "MCC_NOT_ALLOWED"),
        ({"mcc": "5812"}, "COUNTRY_NOT_ALLOWED"),
        ({"country": "US"}, "SPEND_LIMIT_EXCEEDED"),
    ]
    fields = dict(everything_wrong)
    for change, reason in steps:
        fields.update(change)
        assert decided(api.authorize(tenant.processor, card.card_id, 1000, **fields))[1] == reason, (
            f"with {fields} the first failing check is {reason}"
        )
    # PER_AUTHORIZATION (listed second) fails before DAILY (listed first): interval order wins.
    response = api.authorize(tenant.processor, card.card_id, 1000, **fields)
    assert response.exceeded_limit == limit(t.PER_AUTHORIZATION, 800)
    # Under the per-authorization cap, the daily one fails; under both, the review threshold refers.
    response = api.authorize(tenant.processor, card.card_id, 700, **fields)
    assert response.exceeded_limit == limit(t.DAILY, 500)
    assert decided(api.authorize(tenant.processor, card.card_id, 400, **fields))[1] == "REVIEW_REQUIRED"

    api.cards.FreezeCard(card_pb2.CardActionRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    assert decided(api.authorize(tenant.processor, card.card_id, 1000, **everything_wrong))[1] == "CARD_FROZEN"
    api.cards.CloseCard(card_pb2.CardActionRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    assert decided(api.authorize(tenant.processor, card.card_id, 1000, **everything_wrong))[1] == "CARD_CLOSED"


def test_limit_order_within_an_interval(api: Api, tenant: TenantKeys) -> None:
    """Within an interval: every amount cap (in listed order) before any count cap."""
    card = api.issue_card(
        tenant,
        controls(spending_limits=[limit(t.WEEKLY, count=1), limit(t.WEEKLY, 1500), limit(t.WEEKLY, 1200)]),
    )
    assert decided(api.authorize(tenant.processor, card.card_id, 1000))[1] == "APPROVED"
    response = api.authorize(tenant.processor, card.card_id, 1000)
    assert decided(response)[1] == "SPEND_LIMIT_EXCEEDED"
    assert response.exceeded_limit == limit(t.WEEKLY, 1500), "the first listed amount cap that fails is named"
    response = api.authorize(tenant.processor, card.card_id, 100)
    assert decided(response)[1] == "COUNT_LIMIT_EXCEEDED", "amount caps pass, then the count cap fails"
    assert response.exceeded_limit == limit(t.WEEKLY, count=1)


def test_mcc_scoped_limit_ignores_other_mccs(api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant, controls(spending_limits=[limit(t.DAILY, 5000, mccs=("5812", "5814"))]))
    assert decided(api.authorize(tenant.processor, card.card_id, 9000, mcc="5411"))[1] == "APPROVED"
    assert decided(api.authorize(tenant.processor, card.card_id, 4000, mcc="5812"))[1] == "APPROVED"
    response = api.authorize(tenant.processor, card.card_id, 1500, mcc="5814")
    assert decided(response)[1] == "SPEND_LIMIT_EXCEEDED"
    assert response.exceeded_limit == limit(t.DAILY, 5000, mccs=("5812", "5814"))
    assert decided(api.authorize(tenant.processor, card.card_id, 1000, mcc="5814"))[1] == "APPROVED"
