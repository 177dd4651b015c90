"""The real decision script in Redis, driven through gRPC, agrees with the reference model
for random cards and purchase sequences across window boundaries (the Lua limit step and
the Python static rules together)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import reference_model
from tests.support.api import Api
from tests.support.reference_model import ModelCard
from tests.support.stack import EPOCH_MS, ThreadedServer
from tests.support.strategies import cards, purchases
from zentra.cards.v1 import types_pb2 as t


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(card=cards(), steps=st.lists(purchases, min_size=1, max_size=12))
def test_server_matches_reference_model(server: ThreadedServer, api: Api, card: ModelCard, steps: list) -> None:
    tenant = api.new_tenant()
    issued = api.issue_card(tenant, card.to_proto())
    now_ms = EPOCH_MS
    try:
        for amount, currency, mcc, country, channel, advance_ms in steps:
            now_ms += advance_ms
            server.clock.set_ms(now_ms)
            expected = reference_model.decide(card, amount, currency, mcc, country, channel, now_ms)
            response = api.authorize(
                tenant.processor,
                issued.card_id,
                amount,
                currency=currency,
                mcc=mcc,
                country=country,
                channel=channel,
            )
            exceeded = -1
            if response.HasField("exceeded_limit"):
                exceeded = list(card.to_proto().spending_limits).index(response.exceeded_limit)
            got = (response.decision, response.reason, exceeded)
            assert got == expected, (
                f"server {t.Decision.Name(got[0])}/{t.Reason.Name(got[1])}/{got[2]} but the model says "
                f"{t.Decision.Name(expected[0])}/{t.Reason.Name(expected[1])}/{expected[2]} "
                f"for {amount} {currency} mcc={mcc} {country} at {now_ms}"
            )
    finally:
        server.clock.set_ms(EPOCH_MS)
