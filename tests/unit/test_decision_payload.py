"""The decision record payload written on the hot path is, byte for byte, what the json module
writes for it (the rebuild and the ledger writer rely on one canonical text)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from authz_server.decisions import decision_payload, decision_payload_reference

TEXT = st.text(max_size=40)  # any code point: quotes, backslashes, controls, non-ASCII, surrogates
INT = st.integers(min_value=0, max_value=2**63 - 1)


@given(
    ids=st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT),
    merchant=st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT),
    numbers=st.tuples(INT, INT, INT),
    advice=st.booleans(),
)
def test_payload_is_the_canonical_json(
    ids: tuple[str, str, str, str, str],
    merchant: tuple[str, str, str, str, str],
    numbers: tuple[int, int, int],
    advice: bool,
) -> None:
    tenant_id, authorization_id, card_id, currency, actor_key_id = ids
    amount_minor, channel, shard = numbers
    args = (
        tenant_id,
        authorization_id,
        card_id,
        amount_minor,
        currency,
        merchant,
        channel,
        actor_key_id,
        shard,
        advice,
    )
    text = decision_payload(*args)
    assert text == decision_payload_reference(*args)
    assert json.loads(text)["merchant"]["name"] == merchant[1]
