"""Event types of the outbox (the `events` table) and how an event's id is derived.

An event id is a UUIDv5 of what the event is about — tenant, type, subject and the source
that produced it (a policy_version, an authorization id) — so recording the same event
twice (a retried call, a redelivered stream entry) inserts nothing the second time."""

from __future__ import annotations

import uuid

CARD_ISSUED = "card.issued"
CARD_FROZEN = "card.frozen"
CARD_UNFROZEN = "card.unfrozen"
CARD_CLOSED = "card.closed"
CARD_CONTROLS_UPDATED = "card.controls.updated"
AUTHORIZATION_REQUESTED = "card.authorization.requested"
AUTHORIZATION_APPROVED = "card.authorization.approved"
AUTHORIZATION_DECLINED = "card.authorization.declined"
AUTHORIZATION_REVIEW = "card.authorization.review"
AUTHORIZATION_REVERSED = "card.authorization.reversed"
AUTHORIZATION_ADVICE = "card.authorization.advice"
AUTHORIZATION_INCREMENTED = "card.authorization.incremented"
AUTHORIZATION_EXPIRED = "card.authorization.expired"
CLEARING_POSTED = "card.clearing.posted"
CLEARING_MISMATCH = "card.clearing.mismatch"
REFUND_POSTED = "card.refund.posted"
REVIEW_OPENED = "review.opened"
REVIEW_RESOLVED = "review.resolved"
# A fail-closed answer replaced a decision its own timed-out attempt had made (lua/tombstone.lua).
AUTHORIZATION_VOIDED = "card.authorization.voided"

# The event of each card administration action (store/cards.py).
CARD_ACTION_EVENTS: dict[str, str] = {
    "issue": CARD_ISSUED,
    "freeze": CARD_FROZEN,
    "unfreeze": CARD_UNFROZEN,
    "close": CARD_CLOSED,
    "update_controls": CARD_CONTROLS_UPDATED,
}

_NAMESPACE = uuid.UUID("6f1c1d1e-5a0e-4c55-9a58-7a656e747261")


def event_id(tenant_id: str, event_type: str, subject: str, source: str) -> uuid.UUID:
    """The stable id of an event; the same inputs always give the same id."""
    return uuid.uuid5(_NAMESPACE, "\x1f".join((tenant_id, event_type, subject, source)))
