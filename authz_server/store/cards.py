"""Cards in Postgres: issue (idempotent), read, and change under a row lock, with every
policy version kept in card_versions as evidence."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from authz_server.controls import Controls, controls_from_json, controls_to_json
from authz_server.errors import AlreadyExists, NotFound
from authz_server.events import CARD_ACTION_EVENTS, event_id

_CARD_COLUMNS = (
    "tenant_id, card_id, customer_ref, account_ref, currency, state, controls, policy_version, shard, "
    "created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class CardRow:
    tenant_id: str
    card_id: str
    customer_ref: str
    account_ref: str
    currency: str
    state: int  # types_pb2.CardState
    controls: Controls
    policy_version: int
    shard: int
    created_at: datetime
    updated_at: datetime


def _card(row: asyncpg.Record) -> CardRow:
    return CardRow(
        row["tenant_id"],
        row["card_id"],
        row["customer_ref"],
        row["account_ref"],
        row["currency"],
        row["state"],
        controls_from_json(row["controls"]),
        row["policy_version"],
        row["shard"],
        row["created_at"],
        row["updated_at"],
    )


async def _record_version(conn: asyncpg.Connection, card: CardRow, action: str, reason: str, actor: str) -> None:
    """Keeps the card's new policy version as evidence and emits its event (outbox), in the
    caller's transaction."""
    await conn.execute(
        """INSERT INTO card_versions
               (tenant_id, card_id, policy_version, state, controls, action, reason, actor_key_id)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)""",
        card.tenant_id,
        card.card_id,
        card.policy_version,
        card.state,
        controls_to_json(card.controls),
        action,
        reason,
        actor,
    )
    event_type = CARD_ACTION_EVENTS[action]
    payload = {
        "card_id": card.card_id,
        "state": card.state,
        "policy_version": card.policy_version,
        "controls": json.loads(controls_to_json(card.controls)),
        "reason": reason,
        "actor_key_id": actor,
    }
    await conn.execute(
        """INSERT INTO events (event_id, tenant_id, type, subject, payload, occurred_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (event_id) DO NOTHING""",
        event_id(card.tenant_id, event_type, card.card_id, str(card.policy_version)),
        card.tenant_id,
        event_type,
        card.card_id,
        json.dumps(payload),
        card.updated_at,
    )


async def issue_card(
    pool: asyncpg.Pool, card: CardRow, idempotency_key: str, request_hash: bytes, actor: str
) -> tuple[CardRow, bool]:
    """Inserts `card` unless `idempotency_key` was used before by the tenant. Returns the card
    (as it is now) and whether it was created. The same key with another request hash is
    ALREADY_EXISTS."""
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(
            """INSERT INTO card_issue_requests (tenant_id, idempotency_key, request_hash, card_id)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING card_id""",
            card.tenant_id,
            idempotency_key,
            request_hash,
            card.card_id,
        )
        if claimed is None:
            earlier = await conn.fetchrow(
                """SELECT request_hash, card_id FROM card_issue_requests
                   WHERE tenant_id = $1 AND idempotency_key = $2""",
                card.tenant_id,
                idempotency_key,
            )
            if bytes(earlier["request_hash"]) != request_hash:
                raise AlreadyExists(
                    f"idempotency_key {idempotency_key!r} was already used with a different IssueCard request"
                )
            existing = await conn.fetchrow(
                f"SELECT {_CARD_COLUMNS} FROM cards WHERE tenant_id = $1 AND card_id = $2",
                card.tenant_id,
                earlier["card_id"],
            )
            return _card(existing), False
        row = await conn.fetchrow(
            f"""INSERT INTO cards (tenant_id, card_id, customer_ref, account_ref, currency, state, controls,
                                   policy_version, shard)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) RETURNING {_CARD_COLUMNS}""",
            card.tenant_id,
            card.card_id,
            card.customer_ref,
            card.account_ref,
            card.currency,
            card.state,
            controls_to_json(card.controls),
            card.policy_version,
            card.shard,
        )
        created = _card(row)
        await _record_version(conn, created, "issue", "", actor)
        return created, True


async def get_card(pool: asyncpg.Pool, tenant_id: str, card_id: str) -> CardRow:
    row = await pool.fetchrow(
        f"SELECT {_CARD_COLUMNS} FROM cards WHERE tenant_id = $1 AND card_id = $2", tenant_id, card_id
    )
    if row is None:
        raise NotFound(f"card {card_id!r} not found")
    return _card(row)


# Computes the card's next (state, controls) from the current card, or None for "no change";
# raises a DomainError (FailedPrecondition) when the transition is not allowed.
Transition = Callable[[CardRow], tuple[int, Controls] | None]


async def change_card(
    pool: asyncpg.Pool,
    tenant_id: str,
    card_id: str,
    transition: Transition,
    action: str,
    reason: str,
    actor: str,
) -> CardRow:
    """Applies `transition` under the card's row lock. A real change bumps policy_version by
    one and is recorded in card_versions; no change returns the card untouched."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE tenant_id = $1 AND card_id = $2 FOR UPDATE",
            tenant_id,
            card_id,
        )
        if row is None:
            raise NotFound(f"card {card_id!r} not found")
        current = _card(row)
        change = transition(current)
        if change is None:
            return current
        state, controls = change
        updated = await conn.fetchrow(
            f"""UPDATE cards SET state = $3, controls = $4::jsonb, policy_version = policy_version + 1,
                                 updated_at = now()
                WHERE tenant_id = $1 AND card_id = $2 RETURNING {_CARD_COLUMNS}""",
            tenant_id,
            card_id,
            state,
            controls_to_json(controls),
        )
        card = _card(updated)
        assert card.policy_version == current.policy_version + 1, (
            card.policy_version,
            current.policy_version,
        )
        await _record_version(conn, card, action, reason, actor)
        return card


async def iter_cards(pool: asyncpg.Pool, batch_count_max: int = 1000) -> AsyncIterator[CardRow]:
    """Every card, in batches (for rebuilding the Redis projection)."""
    after = ("", "")
    while True:
        rows = await pool.fetch(
            f"""SELECT {_CARD_COLUMNS} FROM cards WHERE (tenant_id, card_id) > ($1, $2)
                ORDER BY tenant_id, card_id LIMIT $3""",
            after[0],
            after[1],
            batch_count_max,
        )
        if not rows:
            return
        for row in rows:
            yield _card(row)
        after = (rows[-1]["tenant_id"], rows[-1]["card_id"])


__all__ = ["CardRow", "change_card", "get_card", "issue_card", "iter_cards"]
