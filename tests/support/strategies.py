"""Hypothesis strategies for cards and purchases, shared by the policy and Lua model tests."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.support.reference_model import ModelCard, ModelLimit
from zentra.cards.v1 import types_pb2 as t

MCCS = ["5812", "5411", "7995", "4111"]
COUNTRIES = ["US", "GB", "DE"]
CHANNELS = [t.CARD_PRESENT, t.CONTACTLESS, t.ECOMMERCE, t.ATM, t.MAIL_PHONE]
WINDOWED = [t.DAILY, t.WEEKLY, t.MONTHLY, t.YEARLY, t.LIFETIME]


@st.composite
def limits(draw: st.DrawFn) -> ModelLimit:
    interval = draw(st.sampled_from([t.PER_AUTHORIZATION, *WINDOWED]))
    amount = draw(st.sampled_from([0, 500, 1000, 2500, 5000, 10_000]))
    count = 0 if interval == t.PER_AUTHORIZATION else draw(st.sampled_from([0, 1, 2, 3, 5]))
    if amount == 0 and count == 0:
        amount = 3000
    mccs = tuple(sorted(draw(st.sets(st.sampled_from(MCCS), max_size=2))))
    return ModelLimit(interval, amount, count, mccs)


@st.composite
def cards(draw: st.DrawFn) -> ModelCard:
    return ModelCard(
        limits=draw(st.lists(limits(), max_size=5)),
        allowed_mccs=draw(st.sets(st.sampled_from(MCCS), max_size=3)),
        blocked_mccs=draw(st.sets(st.sampled_from(MCCS), max_size=1)),
        allowed_channels=draw(st.sets(st.sampled_from(CHANNELS), max_size=3)),
        allowed_countries=draw(st.sets(st.sampled_from(COUNTRIES), max_size=2)),
        blocked_countries=draw(st.sets(st.sampled_from(COUNTRIES), max_size=1)),
        review_threshold_minor=draw(st.sampled_from([0, 0, 2000, 4000])),
    )


# A purchase: amount, currency, mcc, country, channel, and how far the clock moves before it.
purchases = st.tuples(
    st.sampled_from([100, 400, 999, 1000, 1500, 2400, 3000, 6000]),
    st.sampled_from(["USD", "USD", "USD", "EUR"]),
    st.sampled_from(MCCS),
    st.sampled_from(COUNTRIES),
    st.sampled_from(CHANNELS),
    st.sampled_from([0, 0, 60_000, 3_600_000, 86_400_000, 7 * 86_400_000, 31 * 86_400_000, 366 * 86_400_000]),
)
