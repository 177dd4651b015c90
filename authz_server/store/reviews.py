"""The review queue in Postgres: list a tenant's reviews page by page, and resolve one under
its row lock with its review.resolved event in the same transaction.

The ledger writer opens reviews (ledger_writer/store.py); the authz-server only reads them and
writes their resolution. Every query is scoped to the caller's tenant, so another tenant's
reviews are simply not there."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from authz_server.errors import NotFound
from authz_server.events import REVIEW_RESOLVED, event_id

# Ledger transactions listed per review: an authorization has a hold, perhaps a few reversals
# and clearings; a bound keeps one review (and so a page of them) small whatever happened.
# They are listed hold first, then in the order they were posted (a batch of the ledger writer
# shares one created_at: then by transaction id).
LEDGER_TRANSACTIONS_LISTED_MAX = 20

_REVIEW_COLUMNS = f"""r.review_id, r.kind, r.status, r.authorization_id, r.clearing_id, r.card_id,
    r.amount_minor, r.currency, r.delta_minor, r.detail, r.owner, r.opened_at, r.resolution, r.note, r.resolved_by,
    r.resolved_at,
    ARRAY(
        SELECT lt.transaction_id FROM ledger_transactions lt
        WHERE lt.tenant_id = r.tenant_id
          AND ((r.authorization_id IS NOT NULL AND lt.authorization_id = r.authorization_id)
               OR (r.clearing_id IS NOT NULL AND lt.kind IN ('clearing', 'refund') AND lt.source_id = r.clearing_id))
        ORDER BY lt.kind <> 'hold', lt.created_at, lt.transaction_id
        LIMIT {LEDGER_TRANSACTIONS_LISTED_MAX}
    ) AS ledger_transaction_ids"""
_ONE_REVIEW = f"SELECT {_REVIEW_COLUMNS} FROM reviews r WHERE r.tenant_id = $1 AND r.review_id = $2"


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One review as recorded, with the ledger transactions of its authorization and clearing."""

    review_id: str
    kind: str  # AUTHORIZATION | CLEARING_MISMATCH | FORCE_POST | LATE_CAPTURE
    status: str  # OPEN | RESOLVED
    authorization_id: str | None
    clearing_id: str | None
    card_id: str
    amount_minor: int
    currency: str
    delta_minor: int
    detail: str
    owner: str
    opened_at: datetime
    resolution: str | None  # APPROVED | REJECTED | ACKNOWLEDGED once resolved
    note: str | None
    resolved_by: str | None  # API key id
    resolved_at: datetime | None
    ledger_transaction_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a listing stands: the last review listed, in (opened_at, review_id) order."""

    opened_at: datetime
    review_id: str


@dataclass(frozen=True, slots=True)
class ReviewedPurchase:
    """What an approved authorization review lets through once: its card, merchant and amount."""

    card_id: str
    merchant_id: str
    mcc: str
    country: str
    amount_minor: int
    currency: str


def _review(row: asyncpg.Record) -> ReviewRow:
    return ReviewRow(
        row["review_id"],
        row["kind"],
        row["status"],
        row["authorization_id"],
        row["clearing_id"],
        row["card_id"],
        row["amount_minor"],
        row["currency"],
        row["delta_minor"],
        row["detail"],
        row["owner"],
        row["opened_at"],
        row["resolution"],
        row["note"],
        row["resolved_by"],
        row["resolved_at"],
        tuple(row["ledger_transaction_ids"]),
    )


async def list_reviews(
    pool: asyncpg.Pool,
    tenant_id: str,
    status: str | None,
    kind: str | None,
    after: Position | None,
    count_max: int,
) -> list[ReviewRow]:
    """At most `count_max` of the tenant's reviews after `after` (None: from the start), in
    (opened_at, review_id) order, with the given status and kind (None: any)."""
    assert 0 < count_max <= 1000, f"count_max must be in 1..1000, got {count_max}"
    rows = await pool.fetch(
        f"""SELECT {_REVIEW_COLUMNS} FROM reviews r
            WHERE r.tenant_id = $1
              AND ($2::text IS NULL OR r.status = $2)
              AND ($3::text IS NULL OR r.kind = $3)
              AND ($4::timestamptz IS NULL OR (r.opened_at, r.review_id) > ($4, $5))
            ORDER BY r.opened_at, r.review_id
            LIMIT $6""",
        tenant_id,
        status,
        kind,
        after.opened_at if after else None,
        after.review_id if after else "",
        count_max,
    )
    return [_review(row) for row in rows]


# Looks at the locked review and says whether to resolve it now (True) or answer it as it is
# (False); raises a DomainError (FailedPrecondition) when the resolution is not allowed.
ResolutionCheck = Callable[[ReviewRow], bool]


async def resolve_review(
    pool: asyncpg.Pool,
    tenant_id: str,
    review_id: str,
    resolution: str,
    note: str,
    actor_key_id: str,
    resolved_at: datetime,
    check: ResolutionCheck,
) -> ReviewRow:
    """Resolves the review under its row lock if `check` says so, recording the resolution,
    note, actor and time and emitting review.resolved in the same transaction. Returns the
    review as it is now (resolved by this call, or as `check` found it). Unknown is NOT_FOUND."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_ONE_REVIEW + " FOR UPDATE OF r", tenant_id, review_id)
        if row is None:
            raise NotFound(f"review {review_id!r} not found")
        current = _review(row)
        if not check(current):
            return current
        assert current.status == "OPEN", f"review {review_id} resolved twice"
        await conn.execute(
            """UPDATE reviews SET status = 'RESOLVED', resolution = $3, note = $4, resolved_by = $5, resolved_at = $6
               WHERE tenant_id = $1 AND review_id = $2 AND status = 'OPEN'""",
            tenant_id,
            review_id,
            resolution,
            note,
            actor_key_id,
            resolved_at,
        )
        resolved = _review(await conn.fetchrow(_ONE_REVIEW, tenant_id, review_id))
        assert (resolved.status, resolved.resolution, resolved.resolved_by) == ("RESOLVED", resolution, actor_key_id)
        await _record_resolution(conn, tenant_id, resolved)
        return resolved


async def _record_resolution(conn: asyncpg.Connection, tenant_id: str, review: ReviewRow) -> None:
    """The review.resolved event (outbox), in the caller's transaction; a review is resolved
    once, so its event id is derived from the review id alone."""
    payload = {
        "review_id": review.review_id,
        "kind": review.kind,
        "authorization_id": review.authorization_id,
        "clearing_id": review.clearing_id,
        "card_id": review.card_id,
        "amount_minor": review.amount_minor,
        "currency": review.currency,
        "delta_minor": review.delta_minor,
        "resolution": review.resolution,
        "note": review.note,
        "resolved_by": review.resolved_by,
        "ledger_transaction_ids": list(review.ledger_transaction_ids),
    }
    await conn.execute(
        """INSERT INTO events (event_id, tenant_id, type, subject, payload, occurred_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (event_id) DO NOTHING""",
        event_id(tenant_id, REVIEW_RESOLVED, review.review_id, "resolved"),
        tenant_id,
        REVIEW_RESOLVED,
        review.review_id,
        json.dumps(payload),
        review.resolved_at,
    )


async def reviewed_purchase(pool: asyncpg.Pool, tenant_id: str, review: ReviewRow) -> ReviewedPurchase:
    """The purchase an AUTHORIZATION review is about: its card, merchant (from the authorization
    record) and the reviewed amount."""
    assert review.kind == "AUTHORIZATION" and review.authorization_id, review
    merchant = await pool.fetchval(
        "SELECT merchant FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant_id,
        review.authorization_id,
    )
    # The ledger writer records the authorization and opens its review in one transaction.
    assert merchant is not None, f"review {review.review_id} has no authorization record"
    fields = json.loads(merchant)  # asyncpg hands jsonb over as text
    assert isinstance(fields, dict), type(fields)
    return ReviewedPurchase(
        review.card_id,
        fields.get("id", ""),
        fields["mcc"],
        fields["country"],
        review.amount_minor,
        review.currency,
    )


__all__ = [
    "LEDGER_TRANSACTIONS_LISTED_MAX",
    "Position",
    "ResolutionCheck",
    "ReviewRow",
    "ReviewedPurchase",
    "list_reviews",
    "resolve_review",
    "reviewed_purchase",
]
