"""The decision rules, top to bottom, pure (no I/O, no metrics, no logging).

A decision has two halves:

1. `plan_decision` — everything that depends only on the card's policy (state, currency,
   controls at one policy_version) and the purchase: the static rules, in DESIGN §3 order,
   and, if they pass, the ordered list of window-limit checks and the counters to reserve.
   This runs in the server process against the card's cached policy.
2. The stateful half — re-check that the card is still at that policy_version, check the
   window counters in order, reserve, record — runs atomically in Redis
   (redis_state/lua/authorize.lua). `settle_limits` below is its executable specification:
   the same arithmetic in Python, used by the reference-model tests, which check the Lua
   script against it through a real Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from authz_server.controls import Controls, Limit
from authz_server.windows import WINDOW_LETTERS, WINDOW_ORDER
from zentra.cards.v1 import types_pb2 as t

# ISO 8583 DE39 response code of every reason (DESIGN §3 "Response codes").
RESPONSE_CODES: dict[int, str] = {
    t.APPROVED: "00",
    t.CARD_NOT_FOUND: "14",
    t.CARD_CLOSED: "46",
    t.CARD_FROZEN: "62",
    t.CURRENCY_MISMATCH: "57",
    t.CHANNEL_NOT_ALLOWED: "57",
    t.MCC_NOT_ALLOWED: "57",
    t.COUNTRY_NOT_ALLOWED: "57",
    t.SPEND_LIMIT_EXCEEDED: "61",
    t.COUNT_LIMIT_EXCEEDED: "65",
    t.REVIEW_REQUIRED: "01",
    t.SYSTEM_UNAVAILABLE: "96",
}

# The static rules in the order they run; a rule's position is how the trace is recorded.
STATIC_RULES: tuple[str, ...] = (
    "card_exists",
    "card_not_closed",
    "card_not_frozen",
    "currency",
    "channel",
    "mcc",
    "country",
    "per_authorization_limit",
)
RULE_OF_REASON: dict[int, str] = {
    t.CARD_NOT_FOUND: "card_exists",
    t.CARD_CLOSED: "card_not_closed",
    t.CARD_FROZEN: "card_not_frozen",
    t.CURRENCY_MISMATCH: "currency",
    t.CHANNEL_NOT_ALLOWED: "channel",
    t.MCC_NOT_ALLOWED: "mcc",
    t.COUNTRY_NOT_ALLOWED: "country",
}

AMOUNT = "a"
COUNT = "c"


@dataclass(frozen=True, slots=True)
class CardPolicy:
    """What the decision needs to know about a card, at one policy_version."""

    card_id: str
    state: int  # types_pb2.CardState
    currency: str
    account_ref: str
    policy_version: int
    controls: Controls
    # Memo of limit_plan by (indexes of the MCC-scoped limits that apply, incremental).
    limit_plans: dict[tuple[tuple[int, ...], bool], LimitPlan] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Purchase:
    """The facts of a validated purchase attempt that the rules read."""

    amount_minor: int
    currency: str
    mcc: str
    country: str
    channel: int  # types_pb2.Channel
    advice: bool = False  # approved by the network in stand-in: record and reserve, never decline
    incremental: bool = False  # adds to an earlier approval's hold: amount, not another purchase


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One window-limit comparison, to be made against the live counters in order."""

    bucket: str  # counter bucket: "D", "W", ... or an MCC-scoped bucket
    kind: str  # AMOUNT or COUNT
    cap: int
    limit_index: int  # index in the card's spending_limits (exceeded_limit)


@dataclass(frozen=True, slots=True, eq=False)
class LimitPlan:
    """What a card's spending limits ask of a purchase in one MCC, whatever its amount.
    Compared by identity: the decision layer keys its own per-plan caches on it."""

    per_authorization: tuple[tuple[int, int], ...]  # (limit index, amount cap), in order
    checks: tuple[LimitCheck, ...]
    buckets: tuple[tuple[str, int], ...]


LIMIT_PLANS_PER_CARD_MAX = 64  # memo entries kept per cached card policy (2 per scoped-limit combination)


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of the static rules: either a decline now, or limit checks to make."""

    decline_reason: int  # REASON_UNSPECIFIED when the static rules passed
    exceeded_limit_index: int  # -1 unless a PER_AUTHORIZATION limit failed
    checks: tuple[LimitCheck, ...]
    buckets: tuple[tuple[str, int], ...]  # (bucket, interval) to reserve on approval
    review: bool  # after the limits pass: REVIEW (reserve nothing) instead of APPROVE
    limits: LimitPlan | None = None  # where checks and buckets came from (None: a decline or an advice)


def bucket_of(limit: Limit) -> str:
    """The counter bucket a windowed limit reads: shared per interval, or its own if MCC-scoped."""
    letter = WINDOW_LETTERS[limit.interval]
    if not limit.mccs:
        return letter
    return f"{letter}/{','.join(limit.mccs)}@{limit.scope}"


def _decline(reason: int, limit_index: int = -1) -> Plan:
    return Plan(reason, limit_index, (), (), False)


def plan_decision(card: CardPolicy, purchase: Purchase) -> Plan:
    """Applies the static rules in DESIGN §3 order; the first that fails names the reason."""
    controls = card.controls
    if purchase.advice:
        return _advice_plan(card, purchase)
    if card.state == t.CLOSED:
        return _decline(t.CARD_CLOSED)
    if card.state == t.FROZEN:
        return _decline(t.CARD_FROZEN)
    if purchase.currency != card.currency:
        return _decline(t.CURRENCY_MISMATCH)
    if controls.allowed_channels and purchase.channel not in controls.allowed_channels:
        return _decline(t.CHANNEL_NOT_ALLOWED)
    if (controls.allowed_mccs and purchase.mcc not in controls.allowed_mccs) or purchase.mcc in controls.blocked_mccs:
        return _decline(t.MCC_NOT_ALLOWED)
    if (
        controls.allowed_countries and purchase.country not in controls.allowed_countries
    ) or purchase.country in controls.blocked_countries:
        return _decline(t.COUNTRY_NOT_ALLOWED)

    limits = limit_plan(card, purchase.mcc, purchase.incremental)
    # PER_AUTHORIZATION limits come first in interval order and need no counter.
    for index, cap in limits.per_authorization:
        if purchase.amount_minor > cap:
            return _decline(t.SPEND_LIMIT_EXCEEDED, index)
    review = 0 < controls.review_threshold_minor <= purchase.amount_minor
    return Plan(t.REASON_UNSPECIFIED, -1, limits.checks, limits.buckets, review, limits)


def limit_plan(card: CardPolicy, mcc: str, incremental: bool) -> LimitPlan:
    """The limits that apply to a purchase in `mcc` on `card`, memoized on the card policy by
    which MCC-scoped limits the MCC falls under (usually none): a handful of entries per card,
    whatever the number of MCCs it sees (long-lived objects made per call would keep the
    garbage collector busy, and its pauses show in the latency tail)."""
    limits = card.controls.limits
    scoped = tuple(index for index, limit in enumerate(limits) if limit.mccs and mcc in limit.mccs)
    memo_key = (scoped, incremental)
    found = card.limit_plans.get(memo_key)
    if found is not None:
        return found
    applicable = [(index, limit) for index, limit in enumerate(limits) if not limit.mccs or index in scoped]
    per_authorization = tuple(
        (index, limit.amount_minor)
        for index, limit in applicable
        if limit.interval == t.PER_AUTHORIZATION and limit.amount_minor
    )
    checks: list[LimitCheck] = []
    for interval in WINDOW_ORDER:
        in_interval = [(i, limit) for i, limit in applicable if limit.interval == interval]
        checks += [
            LimitCheck(bucket_of(lim), AMOUNT, lim.amount_minor, i) for i, lim in in_interval if lim.amount_minor
        ]
        if not incremental:  # an increment is no new purchase: count caps do not apply
            checks += [LimitCheck(bucket_of(lim), COUNT, lim.max_count, i) for i, lim in in_interval if lim.max_count]

    # Every unscoped window is counted whether or not a limit exists (a limit added later
    # counts earlier approvals); MCC-scoped buckets only for purchases in their MCCs.
    buckets: dict[str, int] = {letter: interval for interval, letter in WINDOW_LETTERS.items()}
    for _, limit in applicable:
        if limit.mccs and limit.interval in WINDOW_LETTERS:
            buckets[bucket_of(limit)] = limit.interval
    plan = LimitPlan(per_authorization, tuple(checks), tuple(buckets.items()))
    if len(card.limit_plans) >= LIMIT_PLANS_PER_CARD_MAX:
        card.limit_plans.clear()
    card.limit_plans[memo_key] = plan
    return plan


def _advice_plan(card: CardPolicy, purchase: Purchase) -> Plan:
    """An advice skips every check (state, controls, limits, review) but reserves in the same
    windows an approval of it would, so the counters stay true to the money."""
    buckets: dict[str, int] = {letter: interval for interval, letter in WINDOW_LETTERS.items()}
    for limit in card.controls.limits:
        if limit.mccs and purchase.mcc in limit.mccs and limit.interval in WINDOW_LETTERS:
            buckets[bucket_of(limit)] = limit.interval
    return Plan(t.REASON_UNSPECIFIED, -1, (), tuple(buckets.items()), False)


@dataclass(frozen=True, slots=True)
class Usage:
    """A counter bucket's current-window usage: approved-and-unreleased amount and approvals."""

    amount_minor: int = 0
    count: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: int  # types_pb2.Decision
    reason: int  # types_pb2.Reason
    exceeded_limit_index: int  # -1 when no limit failed


def settle_limits(plan: Plan, purchase_amount_minor: int, usage: Mapping[str, Usage]) -> Outcome:
    """The limit step of authorize.lua in Python: the first failing check names the reason;
    otherwise REVIEW or APPROVE. `usage` holds current-window usage per bucket (absent = 0)."""
    if plan.decline_reason != t.REASON_UNSPECIFIED:
        return Outcome(t.DECLINE, plan.decline_reason, plan.exceeded_limit_index)
    for check in plan.checks:
        used = usage.get(check.bucket, Usage())
        if check.kind == AMOUNT and used.amount_minor + purchase_amount_minor > check.cap:
            return Outcome(t.DECLINE, t.SPEND_LIMIT_EXCEEDED, check.limit_index)
        if check.kind == COUNT and used.count + 1 > check.cap:
            return Outcome(t.DECLINE, t.COUNT_LIMIT_EXCEEDED, check.limit_index)
    if plan.review:
        return Outcome(t.REVIEW, t.REVIEW_REQUIRED, -1)
    return Outcome(t.APPROVE, t.APPROVED, -1)
