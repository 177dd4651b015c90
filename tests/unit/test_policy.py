"""The pure decision rules (policy.plan_decision + settle_limits) agree with the reference
model for any card and sequence of purchases, and the response-code table is complete."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from authz_server.controls import assign_scopes, controls_from_proto
from authz_server.policy import RESPONSE_CODES, CardPolicy, Purchase, Usage, plan_decision, settle_limits
from authz_server.windows import period_ids
from tests.support import reference_model
from tests.support.reference_model import ModelCard, ModelLimit
from tests.support.strategies import cards, purchases
from zentra.cards.v1 import types_pb2 as t

START_MS = 1_773_835_200_000  # 2026-03-18T12:00:00Z


class CounterModel:
    """The production counter layout in Python: per bucket, the period id and its usage."""

    def __init__(self) -> None:
        self.buckets: dict[str, tuple[str, Usage]] = {}

    def usage_now(self, periods: dict[int, str], plan_buckets: tuple[tuple[str, int], ...]) -> dict[str, Usage]:
        now = {}
        for bucket, interval in plan_buckets:
            period, usage = self.buckets.get(bucket, ("", Usage()))
            now[bucket] = usage if period == periods[interval] else Usage()
        return now

    def reserve(self, periods: dict[int, str], plan_buckets: tuple[tuple[str, int], ...], amount: int) -> None:
        current = self.usage_now(periods, plan_buckets)
        for bucket, interval in plan_buckets:
            used = current[bucket]
            self.buckets[bucket] = (periods[interval], Usage(used.amount_minor + amount, used.count + 1))


@settings(max_examples=300, deadline=None)
@given(card=cards(), steps=st.lists(purchases, min_size=1, max_size=25))
def test_policy_matches_reference_model(card: ModelCard, steps: list) -> None:
    controls = assign_scopes(controls_from_proto(card.to_proto()), None, 1)
    policy = CardPolicy("card-1", t.ACTIVE, "USD", "acct-1", 1, controls)
    counters = CounterModel()
    now_ms = START_MS
    for amount, currency, mcc, country, channel, advance_ms in steps:
        now_ms += advance_ms
        expected = reference_model.decide(card, amount, currency, mcc, country, channel, now_ms)
        plan = plan_decision(policy, Purchase(amount, currency, mcc, country, channel))
        periods = period_ids(now_ms)
        outcome = settle_limits(plan, amount, counters.usage_now(periods, plan.buckets))
        assert (outcome.decision, outcome.reason, outcome.exceeded_limit_index) == expected, (
            f"policy disagrees with the reference model for {amount} {currency} mcc={mcc} {country} at {now_ms}"
        )
        if outcome.decision == t.APPROVE:
            counters.reserve(periods, plan.buckets, amount)


def test_state_rules_come_first() -> None:
    card = ModelCard(blocked_mccs={"7995"}, limits=[ModelLimit(t.PER_AUTHORIZATION, 10, 0)])
    controls = controls_from_proto(card.to_proto())
    purchase = Purchase(5000, "EUR", "7995", "US", t.ATM)
    for state, reason in ((t.CLOSED, t.CARD_CLOSED), (t.FROZEN, t.CARD_FROZEN)):
        plan = plan_decision(CardPolicy("c", state, "USD", "a", 3, controls), purchase)
        assert plan.decline_reason == reason, f"state {t.CardState.Name(state)} must decide first"


def test_every_reason_has_its_response_code() -> None:
    expected = {
        "APPROVED": "00", "CARD_NOT_FOUND": "14", "CARD_CLOSED": "46", "CARD_FROZEN": "62",
        "SPEND_LIMIT_EXCEEDED": "61", "COUNT_LIMIT_EXCEEDED": "65", "CHANNEL_NOT_ALLOWED": "57",
        "MCC_NOT_ALLOWED": "57", "COUNTRY_NOT_ALLOWED": "57", "CURRENCY_MISMATCH": "57",
        "REVIEW_REQUIRED": "01", "SYSTEM_UNAVAILABLE": "96",
    }  # fmt: skip
    assert {t.Reason.Name(r): code for r, code in RESPONSE_CODES.items()} == expected


def test_windows_are_utc_calendar_periods() -> None:
    # 2026-12-31T23:59:59Z is a Thursday in ISO week 53 of 2026; a second later is 2027-01-01, same ISO week.
    before = period_ids(1_798_761_599_000)
    after = period_ids(1_798_761_600_000)
    assert before[t.DAILY] == "20261231" and after[t.DAILY] == "20270101"
    assert before[t.WEEKLY] == after[t.WEEKLY] == "2026W53"
    assert before[t.MONTHLY] == "202612" and after[t.MONTHLY] == "202701"
    assert before[t.YEARLY] == "2026" and after[t.YEARLY] == "2027"
    assert before[t.LIFETIME] == after[t.LIFETIME]
