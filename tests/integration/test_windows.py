"""Spend windows are UTC calendar periods on the server's (injected) clock: usage approved
earlier in a window counts, a new day / ISO week / month / year starts from zero, LIFETIME
never resets, and limits added later count what was approved before them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import ThreadedServer
from zentra.cards.v1 import card_pb2
from zentra.cards.v1 import types_pb2 as t


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def reason(response) -> str:  # type: ignore[no-untyped-def]
    return t.Reason.Name(response.reason)


WINDOWS = [
    # interval, a time, a later time in the same window, the first moment of the next window
    pytest.param(t.DAILY, "2026-03-18T00:00:00", "2026-03-18T23:59:59", "2026-03-19T00:00:00", id="daily"),
    pytest.param(t.WEEKLY, "2026-03-16T00:00:00", "2026-03-22T23:59:59", "2026-03-23T00:00:00", id="iso-week"),
    pytest.param(t.MONTHLY, "2026-02-01T00:00:00", "2026-02-28T23:59:59", "2026-03-01T00:00:00", id="monthly"),
    pytest.param(t.YEARLY, "2026-01-01T00:00:00", "2026-12-31T23:59:59", "2027-01-01T00:00:00", id="yearly"),
]


@pytest.mark.parametrize(("interval", "start", "same_window", "next_window"), WINDOWS)
def test_amount_and_count_reset_at_the_window_boundary(
    api: Api, tenant: TenantKeys, clock, interval, start, same_window, next_window
) -> None:  # type: ignore[no-untyped-def]
    amount_card = api.issue_card(
        tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=interval, amount_minor=10_000)])
    )
    count_card = api.issue_card(tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=interval, max_count=2)]))
    clock.set_ms(at(start))
    assert reason(api.authorize(tenant.processor, amount_card.card_id, 6000)) == "APPROVED"
    assert reason(api.authorize(tenant.processor, count_card.card_id, 10)) == "APPROVED"
    clock.set_ms(at(same_window))
    assert reason(api.authorize(tenant.processor, amount_card.card_id, 5000)) == "SPEND_LIMIT_EXCEEDED"
    assert reason(api.authorize(tenant.processor, amount_card.card_id, 4000)) == "APPROVED"
    assert reason(api.authorize(tenant.processor, count_card.card_id, 10)) == "APPROVED"
    assert reason(api.authorize(tenant.processor, count_card.card_id, 10)) == "COUNT_LIMIT_EXCEEDED"
    clock.set_ms(at(next_window))
    assert reason(api.authorize(tenant.processor, amount_card.card_id, 10_000)) == "APPROVED", (
        "a new window starts from zero"
    )
    assert reason(api.authorize(tenant.processor, count_card.card_id, 10)) == "APPROVED"
    assert reason(api.authorize(tenant.processor, count_card.card_id, 10)) == "APPROVED"
    assert reason(api.authorize(tenant.processor, count_card.card_id, 10)) == "COUNT_LIMIT_EXCEEDED"


def test_iso_week_spans_new_year(api: Api, tenant: TenantKeys, clock) -> None:  # type: ignore[no-untyped-def]
    """2026-12-28 (Monday) .. 2027-01-03 (Sunday) is one ISO week, across the calendar year."""
    card = api.issue_card(tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.WEEKLY, amount_minor=1000)]))
    clock.set_ms(at("2026-12-31T12:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 800)) == "APPROVED"
    clock.set_ms(at("2027-01-03T12:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 800)) == "SPEND_LIMIT_EXCEEDED"
    clock.set_ms(at("2027-01-04T00:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 800)) == "APPROVED"


def test_lifetime_never_resets(api: Api, tenant: TenantKeys, clock) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(
        tenant,
        t.SpendControls(spending_limits=[t.SpendLimit(interval=t.LIFETIME, amount_minor=5000, max_count=3)]),
    )
    clock.set_ms(at("2026-03-18T12:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 3000)) == "APPROVED"
    clock.set_ms(at("2031-07-01T00:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 2500)) == "SPEND_LIMIT_EXCEEDED"
    assert reason(api.authorize(tenant.processor, card.card_id, 2000)) == "APPROVED"
    clock.set_ms(at("2040-01-01T00:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 1)) == "SPEND_LIMIT_EXCEEDED"


def test_limit_added_later_counts_earlier_approvals(api: Api, tenant: TenantKeys, clock) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant)
    clock.set_ms(at("2026-03-18T09:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 8000)) == "APPROVED"
    updated = api.cards.UpdateSpendControls(
        card_pb2.UpdateSpendControlsRequest(
            card_id=card.card_id,
            spend_controls=t.SpendControls(
                spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=10_000, max_count=2)]
            ),
        ),
        metadata=bearer(tenant.admin),
    )
    assert updated.policy_version == 2
    clock.set_ms(at("2026-03-18T10:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 3000)) == "SPEND_LIMIT_EXCEEDED"
    assert reason(api.authorize(tenant.processor, card.card_id, 2000)) == "APPROVED"
    assert reason(api.authorize(tenant.processor, card.card_id, 1)) == "SPEND_LIMIT_EXCEEDED"


def test_mcc_scoped_limit_counts_from_when_it_is_set(api: Api, tenant: TenantKeys, clock) -> None:  # type: ignore[no-untyped-def]
    card = api.issue_card(tenant)
    clock.set_ms(at("2026-03-18T09:00:00"))
    assert reason(api.authorize(tenant.processor, card.card_id, 8000, mcc="5812")) == "APPROVED"
    scoped = t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=10_000, mccs=["5812"])])
    request = card_pb2.UpdateSpendControlsRequest(card_id=card.card_id, spend_controls=scoped)
    api.cards.UpdateSpendControls(request, metadata=bearer(tenant.admin))
    assert reason(api.authorize(tenant.processor, card.card_id, 9000, mcc="5812")) == "APPROVED"
    # Setting the same scoped limit again keeps its usage (and changes nothing).
    again = api.cards.UpdateSpendControls(request, metadata=bearer(tenant.admin))
    assert again.policy_version == 2, "identical controls do not bump the version"
    assert reason(api.authorize(tenant.processor, card.card_id, 1500, mcc="5812")) == "SPEND_LIMIT_EXCEEDED"
    assert reason(api.authorize(tenant.processor, card.card_id, 1000, mcc="5812")) == "APPROVED"


def test_counters_stay_exact_past_two_to_the_53(api: Api, tenant: TenantKeys, server: ThreadedServer) -> None:
    """Counters below 2^53 are written from the script's arithmetic; a bucket at or past 2^53
    (where a Lua number loses integers) is changed by Redis's own int64 HINCRBY instead."""
    card = api.issue_card(tenant, t.SpendControls())
    keys = server.server.keyspace
    usage_key = keys.usage(keys.shard_of(card.card_id), tenant.tenant_id, card.card_id)
    assert reason(api.authorize(tenant.processor, card.card_id, 7)) == "APPROVED"
    near = 2**53 - 3
    server.call(server.server.redis.hset(usage_key, mapping={"L|a": str(near), "L|c": "1"}))
    assert reason(api.authorize(tenant.processor, card.card_id, 1001)) == "APPROVED"
    usage = server.call(server.server.redis.hgetall(usage_key))
    assert usage[b"L|a"] == str(near + 1001).encode(), "exact past 2^53"
    assert usage[b"L|c"] == b"2"
    assert usage[b"D|a"] == b"1008" and usage[b"D|c"] == b"2", "the other buckets as before"
    assert reason(api.authorize(tenant.processor, card.card_id, 13)) == "APPROVED"
    usage = server.call(server.server.redis.hgetall(usage_key))
    assert usage[b"L|a"] == str(near + 1014).encode() and usage[b"L|c"] == b"3"
