"""A deliberately simple reference model of the decision rules (DESIGN §3), written apart
from the production code: it keeps every approval and recomputes window usage from that
list, instead of keeping counters. Both the pure policy (unit tests) and the real server's
Lua script (integration tests) are checked against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from zentra.cards.v1 import types_pb2 as t

INTERVAL_ORDER = [t.PER_AUTHORIZATION, t.DAILY, t.WEEKLY, t.MONTHLY, t.YEARLY, t.LIFETIME]


@dataclass(frozen=True)
class ModelLimit:
    interval: int
    amount_minor: int
    max_count: int
    mccs: tuple[str, ...] = ()


@dataclass
class ModelCard:
    currency: str = "USD"
    state: int = t.ACTIVE
    limits: list[ModelLimit] = field(default_factory=list)
    allowed_mccs: set[str] = field(default_factory=set)
    blocked_mccs: set[str] = field(default_factory=set)
    allowed_channels: set[int] = field(default_factory=set)
    allowed_countries: set[str] = field(default_factory=set)
    blocked_countries: set[str] = field(default_factory=set)
    review_threshold_minor: int = 0
    approvals: list[tuple[int, int, str]] = field(default_factory=list)  # (at_ms, amount, mcc)

    def to_proto(self) -> t.SpendControls:
        return t.SpendControls(
            spending_limits=[
                t.SpendLimit(
                    interval=lim.interval,
                    amount_minor=lim.amount_minor,
                    max_count=lim.max_count,
                    mccs=lim.mccs,
                )
                for lim in self.limits
            ],
            allowed_mccs=sorted(self.allowed_mccs),
            blocked_mccs=sorted(self.blocked_mccs),
            allowed_channels=sorted(self.allowed_channels),
            allowed_countries=sorted(self.allowed_countries),
            blocked_countries=sorted(self.blocked_countries),
            review_threshold_minor=self.review_threshold_minor,
        )


def same_window(interval: int, a_ms: int, b_ms: int) -> bool:
    a = datetime.fromtimestamp(a_ms // 1000, tz=UTC)
    b = datetime.fromtimestamp(b_ms // 1000, tz=UTC)
    if interval == t.DAILY:
        return a.date() == b.date()
    if interval == t.WEEKLY:
        return a.isocalendar()[:2] == b.isocalendar()[:2]
    if interval == t.MONTHLY:
        return (a.year, a.month) == (b.year, b.month)
    if interval == t.YEARLY:
        return a.year == b.year
    assert interval == t.LIFETIME
    return True


def decide(
    card: ModelCard, amount: int, currency: str, mcc: str, country: str, channel: int, now_ms: int
) -> tuple[int, int, int]:
    """(decision, reason, exceeded limit index or -1); records the approval in `card`."""
    if card.state == t.CLOSED:
        return t.DECLINE, t.CARD_CLOSED, -1
    if card.state == t.FROZEN:
        return t.DECLINE, t.CARD_FROZEN, -1
    if currency != card.currency:
        return t.DECLINE, t.CURRENCY_MISMATCH, -1
    if card.allowed_channels and channel not in card.allowed_channels:
        return t.DECLINE, t.CHANNEL_NOT_ALLOWED, -1
    if (card.allowed_mccs and mcc not in card.allowed_mccs) or mcc in card.blocked_mccs:
        return t.DECLINE, t.MCC_NOT_ALLOWED, -1
    if (card.allowed_countries and country not in card.allowed_countries) or country in card.blocked_countries:
        return t.DECLINE, t.COUNTRY_NOT_ALLOWED, -1
    checks = []
    for index, lim in enumerate(card.limits):
        if lim.mccs and mcc not in lim.mccs:
            continue
        rank = INTERVAL_ORDER.index(lim.interval)
        if lim.amount_minor:
            checks.append((rank, 0, index))
        if lim.max_count:
            checks.append((rank, 1, index))
    for _, kind, index in sorted(checks):
        lim = card.limits[index]
        if lim.interval == t.PER_AUTHORIZATION:
            used_amount, used_count = 0, 0
        else:
            counted = [
                a
                for a in card.approvals
                if same_window(lim.interval, a[0], now_ms) and (not lim.mccs or a[2] in lim.mccs)
            ]
            used_amount, used_count = sum(a[1] for a in counted), len(counted)
        if kind == 0 and used_amount + amount > lim.amount_minor:
            return t.DECLINE, t.SPEND_LIMIT_EXCEEDED, index
        if kind == 1 and used_count + 1 > lim.max_count:
            return t.DECLINE, t.COUNT_LIMIT_EXCEEDED, index
    if card.review_threshold_minor and amount >= card.review_threshold_minor:
        return t.REVIEW, t.REVIEW_REQUIRED, -1
    card.approvals.append((now_ms, amount, mcc))
    return t.APPROVE, t.APPROVED, -1
