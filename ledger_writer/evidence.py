"""The rule trace of a decision: which checks ran, in DESIGN §3 order, which passed, and why.

Built by the ledger writer from the decision record and the card's policy at the version the
decision was made against (card_versions), so the trace shows what the rules saw. Checks after
the first failing one did not run and are not listed."""

from __future__ import annotations

import json
from dataclasses import dataclass

from authz_server.controls import Controls
from authz_server.policy import RULE_OF_REASON
from ledger_writer.records import DecisionRecord
from zentra.cards.v1 import types_pb2 as t


@dataclass(frozen=True, slots=True)
class CardAtVersion:
    """The card as it was at one policy_version."""

    account_ref: str
    currency: str
    state: int
    controls: Controls


# The rule that failed for each decline or referral reason; APPROVED fails none.
FAILED_RULE: dict[int, str] = {
    **RULE_OF_REASON,
    t.SPEND_LIMIT_EXCEEDED: "spending_limits",
    t.COUNT_LIMIT_EXCEEDED: "spending_limits",
    t.REVIEW_REQUIRED: "review_threshold",
}


def _listed(values: frozenset[str] | frozenset[int], names: bool = False) -> str:
    items = sorted(t.Channel.Name(v) for v in values) if names else sorted(str(v) for v in values)
    return "[" + ", ".join(items) + "]"


def _allow_block(value: str, allowed: frozenset[str], blocked: frozenset[str], what: str) -> str:
    if value in blocked:
        return f"{what} {value} is in blocked_{what}s {_listed(blocked)}"
    if allowed and value not in allowed:
        return f"{what} {value} is not in allowed_{what}s {_listed(allowed)}"
    return f"{what} {value} allowed"


def _limit_detail(label: str) -> str:
    """'index:interval:amount:count:mccs' (see authz_server/decisions.py) in words."""
    index, interval, amount, count, mccs = label.split(":")
    caps = [f"amount <= {amount}" if amount != "0" else "", f"count <= {count}" if count != "0" else ""]
    scope = f" for MCCs {mccs}" if mccs else ""
    return f"spending_limits[{index}] {t.Interval.Name(int(interval))} {' and '.join(c for c in caps if c)}{scope}"


def rule_trace(record: DecisionRecord, card: CardAtVersion | None) -> list[dict[str, object]]:
    """[{rule, passed, detail}, ...] for the decision in `record`."""
    if getattr(record, "advice", False) and record.decision == t.APPROVE:
        return [{"rule": "advice", "passed": True, "detail": "approved by the network in stand-in; checks not applied"}]
    if record.reason == t.SYSTEM_UNAVAILABLE:
        return [
            {
                "rule": "decision_budget",
                "passed": False,
                "detail": "no decision within the budget: failed closed",
            }
        ]
    if card is None:
        found = record.reason != t.CARD_NOT_FOUND
        return [
            {
                "rule": "card_exists",
                "passed": found,
                "detail": "card found" if found else "no such card in tenant",
            }
        ]
    c = card.controls
    channel = t.Channel.Name(record.channel) if record.channel in t.Channel.values() else str(record.channel)
    review = (
        f"amount {record.amount_minor} vs threshold {c.review_threshold_minor}" if c.review_threshold_minor else "off"
    )
    rules = [
        ("card_exists", "card found"),
        ("card_not_closed", f"state {t.CardState.Name(card.state)}"),
        ("card_not_frozen", f"state {t.CardState.Name(card.state)}"),
        ("currency", f"{record.currency} vs card {card.currency}"),
        (
            "channel",
            f"{channel} not in allowed_channels {_listed(c.allowed_channels, names=True)}"
            if c.allowed_channels and record.channel not in c.allowed_channels
            else f"{channel} allowed",
        ),
        ("mcc", _allow_block(record.merchant.mcc, c.allowed_mccs, c.blocked_mccs, "mcc")),
        (
            "country",
            _allow_block(record.merchant.country, c.allowed_countries, c.blocked_countries, "country"),
        ),
        (
            "spending_limits",
            _limit_detail(record.exceeded_limit) + " exceeded" if record.exceeded_limit else "within every limit",
        ),
        ("review_threshold", review),
    ]
    failed = FAILED_RULE.get(record.reason)
    trace: list[dict[str, object]] = []
    for rule, detail in rules:
        passed = rule != failed
        trace.append({"rule": rule, "passed": passed, "detail": detail})
        if not passed:
            break
    return trace


TraceMemo = dict[tuple[object, ...], str]


def rule_trace_json(record: DecisionRecord, card: CardAtVersion | None, memo: TraceMemo) -> str:
    """`json.dumps(rule_trace(record, card))`, shared through `memo` between decisions whose
    traces cannot differ. The key holds every input rule_trace reads; the card is named by its
    (tenant, card, policy_version), so one memo must only be used with one card per version
    (one batch's cards), and the amount counts only when the card has a review threshold,
    the one rule whose detail shows it. Most decisions of a batch share a card version, a
    merchant category and an outcome, so this builds and serializes a trace a fraction of
    the times."""
    threshold = card is not None and card.controls.review_threshold_minor != 0
    merchant = record.merchant
    key = (
        record.tenant_id, record.card_id, record.policy_version, card is None, record.advice, record.decision,
        record.reason, record.channel, record.currency, merchant.mcc, merchant.country, record.exceeded_limit,
        record.amount_minor if threshold else 0,
    )  # fmt: skip
    trace = memo.get(key)
    if trace is None:
        trace = memo[key] = json.dumps(rule_trace(record, card))
    return trace
