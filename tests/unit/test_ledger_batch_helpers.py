"""Protects the shortcuts the ledger writer takes when it builds a batch: a rule trace shared
through the batch's memo is exactly the trace built for that decision alone, and an event id
computed as text is exactly `authz_server.events.event_id`. Either one drifting would change
what the ledger records (or, for event ids, post an event twice)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authz_server.controls import Controls, Limit
from authz_server.events import event_id
from ledger_writer.evidence import CardAtVersion, TraceMemo, rule_trace, rule_trace_json
from ledger_writer.outbox import event_uuid
from ledger_writer.records import KIND_DECISION, DecisionRecord, Merchant
from zentra.cards.v1 import types_pb2 as t

DECIDED_AT = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
LABELS = ["", "0:2:5000:0:", "1:3:0:4:", "0:1:2500:0:5812,5411"]

cards = st.builds(
    CardAtVersion,
    account_ref=st.sampled_from(["acct-1", "acct-2"]),
    currency=st.sampled_from(["USD", "EUR"]),
    state=st.sampled_from([t.ACTIVE, t.FROZEN, t.CLOSED]),
    controls=st.builds(
        Controls,
        limits=st.just((Limit(t.DAILY, 5000, 0, ()),)),
        allowed_mccs=st.frozensets(st.sampled_from(["5812", "5411"])),
        blocked_mccs=st.frozensets(st.sampled_from(["7995"])),
        allowed_channels=st.frozensets(st.sampled_from([t.CARD_PRESENT, t.ECOMMERCE])),
        allowed_countries=st.frozensets(st.sampled_from(["US", "DE"])),
        blocked_countries=st.frozensets(st.sampled_from(["RU"])),
        review_threshold_minor=st.sampled_from([0, 0, 9000]),
    ),
)


@st.composite
def decisions(draw: st.DrawFn) -> DecisionRecord:
    return DecisionRecord(
        kind=KIND_DECISION,
        tenant_id=draw(st.sampled_from(["tenant-a", "tenant-b"])),
        authorization_id=draw(st.text("abc123", min_size=1, max_size=6)),
        card_id=draw(st.sampled_from(["card-1", "card-2", "card-3"])),
        amount_minor=draw(st.sampled_from([100, 9000, 9500, 12_345])),
        currency=draw(st.sampled_from(["USD", "EUR"])),
        merchant=Merchant(
            "m-1",
            "Cafe",
            draw(st.sampled_from(["5812", "5411", "7995"])),
            draw(st.sampled_from(["US", "DE", "RU"])),
            "Boston",
        ),
        channel=draw(st.sampled_from([t.CARD_PRESENT, t.ECOMMERCE, 99])),
        actor_key_id="key-1",
        shard=0,
        decision=draw(st.sampled_from([t.APPROVE, t.DECLINE, t.REVIEW])),
        reason=draw(st.sampled_from(list(t.Reason.values())[1:])),
        policy_version=draw(st.sampled_from([0, 1, 2])),
        decided_at=DECIDED_AT,
        exceeded_limit=draw(st.sampled_from(LABELS)),
        attempt="n-1",
        reserved_buckets="",
        fingerprint=b"",
        advice=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(records=st.lists(decisions(), min_size=1, max_size=40), versions=st.dictionaries(
    st.tuples(st.sampled_from(["tenant-a", "tenant-b"]), st.sampled_from(["card-1", "card-2", "card-3"]),
              st.sampled_from([1, 2])),
    cards,
))  # fmt: skip
def test_a_memoized_trace_is_the_trace_of_that_decision(
    records: list[DecisionRecord], versions: dict[tuple[str, str, int], CardAtVersion]
) -> None:
    memo: TraceMemo = {}  # one batch: one card per (tenant, card, version)
    for record in records:
        card = versions.get((record.tenant_id, record.card_id, record.policy_version))
        expected = json.dumps(rule_trace(record, card))
        assert rule_trace_json(record, card, memo) == expected, f"memoized trace differs for {record}"


def test_the_memo_is_shared_by_decisions_that_cannot_differ() -> None:
    card = CardAtVersion("acct-1", "USD", t.ACTIVE, Controls(review_threshold_minor=9000))
    plain = CardAtVersion("acct-1", "USD", t.ACTIVE, Controls())
    memo: TraceMemo = {}
    base = dict(
        kind=KIND_DECISION, tenant_id="t", card_id="c", currency="USD", merchant=Merchant("m", "n", "5812", "US", "x"),
        channel=t.CARD_PRESENT, actor_key_id="k", shard=0, decision=t.APPROVE, reason=t.APPROVED, policy_version=1,
        decided_at=DECIDED_AT, exceeded_limit="", attempt="n", reserved_buckets="", fingerprint=b"",
    )  # fmt: skip
    a = DecisionRecord(authorization_id="a", amount_minor=100, **base)  # type: ignore[arg-type]
    b = DecisionRecord(authorization_id="b", amount_minor=200, **base)  # type: ignore[arg-type]
    assert rule_trace_json(a, card, memo) != rule_trace_json(b, card, memo), "the review detail shows the amount"
    memo = {}
    rule_trace_json(a, plain, memo)
    rule_trace_json(b, plain, memo)
    assert len(memo) == 1, "without a review threshold the amount does not matter"


@settings(max_examples=500, deadline=None)
@given(parts=st.tuples(st.text(), st.text(), st.text(), st.text()))
def test_event_uuid_is_event_id(parts: tuple[str, str, str, str]) -> None:
    try:
        expected = str(event_id(*parts))
    except UnicodeEncodeError:  # a lone surrogate: neither can encode it
        with pytest.raises(UnicodeEncodeError):
            event_uuid(*parts)
        return
    assert event_uuid(*parts) == expected


def test_event_uuid_of_a_known_event() -> None:
    parts = ("bench-ecae048e", "card.authorization.requested", "bench-ecae048e-88", "decision")
    assert event_uuid(*parts) == str(event_id(*parts)) == "e25fda3c-3873-55e7-9744-4838292d30c5"
