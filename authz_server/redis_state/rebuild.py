"""Rebuilding the Redis projection from Postgres (DESIGN §2, §5.7).

Postgres is the source of truth; Redis holds a projection of it: card state and controls,
window counters, and the replay records of the retention period. A process that starts and
finds no projection marker rebuilds it before it decides (one process at a time, under a
Redis lock; the others wait for the marker). `authz-server rebuild-projection` does the same
on demand.

What a rebuild knows is what the ledger writer has posted: decisions still in a stream when
Redis lost its data are lost with it (see docs/decisions.md, "Redis durability"). Run the
writer until the streams are empty before rebuilding a live Redis on purpose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from authz_server.decisions import decision_payload
from authz_server.holds import holds_member
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.projection import project_card
from authz_server.redis_state.scripts import Scripts
from authz_server.store.cards import iter_cards
from authz_server.windows import WINDOW_LETTERS, period_ids
from zentra.cards.v1 import types_pb2 as t

log = logging.getLogger(__name__)

LOCK_TTL_MS = 300_000  # a rebuild holding the lock longer than this is presumed dead
WAIT_FOR_MARKER_S = 300.0  # how long a process waits for another one's rebuild
PIPELINE_COUNT_MAX = 500  # Redis commands sent per round trip while rebuilding
INTERVAL_OF_LETTER = {letter: interval for interval, letter in WINDOW_LETTERS.items()}


class ProjectionMismatch(RuntimeError):
    """The projection was built for another shard count: refusing to serve against it."""


@dataclass
class RebuildReport:
    cards: int = 0
    counters: int = 0
    replay_records: int = 0
    holds: int = 0
    seconds: float = 0.0


async def _rebuild_cards(pool: asyncpg.Pool, scripts: Scripts, keyspace: Keyspace) -> int:
    count = 0
    pending: list[asyncio.Future[bool]] = []
    async for card in iter_cards(pool):
        pending.append(asyncio.ensure_future(project_card(scripts, keyspace, card)))
        count += 1
        if len(pending) >= PIPELINE_COUNT_MAX:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    return count


async def _rebuild_counters(pool: asyncpg.Pool, redis: aioredis.Redis, keyspace: Keyspace, now_ms: int) -> int:
    """Window usage from live approvals: every bucket=period an approval reserved, summed, for
    the periods that are current now: what each approval counts is its amount less what
    reversals released, or, once finally cleared, what was cleared (counters follow the money);
    an approval counting nothing no longer counts as one."""
    periods = period_ids(now_ms)
    rows = await pool.fetch(
        """SELECT tenant_id, card_id, shard, split_part(bucket, '=', 1) AS bucket, split_part(bucket, '=', 2) AS period,
                  sum(counted)::bigint AS amount, count(*) FILTER (WHERE counted > 0) AS approvals
           FROM (SELECT *, CASE WHEN incremental_of IS NOT NULL THEN 0
                                WHEN status = 'CLEARED' THEN cleared_minor
                                ELSE amount_minor + incremented_minor - reversed_minor - expired_minor END AS counted
                 FROM authorizations
                 WHERE decision = $1 AND voided_at IS NULL AND reserved_buckets <> '') AS a,
                unnest(string_to_array(reserved_buckets, ';')) AS bucket
           GROUP BY 1, 2, 3, 4, 5""",
        t.APPROVE,
    )
    usage: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        interval = INTERVAL_OF_LETTER.get(row["bucket"][:1])
        if interval is None or row["period"] != periods[interval]:
            continue  # an earlier window: it counts as zero anyway
        fields = usage[keyspace.usage(row["shard"], row["tenant_id"], row["card_id"])]
        fields[f"{row['bucket']}|p"] = row["period"]
        fields[f"{row['bucket']}|a"] = str(row["amount"])
        fields[f"{row['bucket']}|c"] = str(row["approvals"])
    items = list(usage.items())
    for start in range(0, len(items), PIPELINE_COUNT_MAX):
        async with redis.pipeline(transaction=False) as pipe:
            for key, fields in items[start : start + PIPELINE_COUNT_MAX]:
                pipe.delete(key)
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            await pipe.execute()
    return len(items)


def remaining_hold_field(row: asyncpg.Record) -> dict[str, str]:
    """The hold fields as the scripts leave them: `h` absent until a release or clearing
    (reverse.lua, clear.lua write it), "0" after a fail-closed void (tombstone.lua); `u` and
    `cl` once a clearing matched the hold."""
    if row["voided_at"] is not None:
        return {"h": "0"}
    if row["incremental_of"] is not None and row["decision"] == t.APPROVE:
        return {"h": "0", "inc": row["incremental_of"]}  # its hold lives on the original
    fields = {}
    released = row["reversed_minor"] + row["cleared_minor"] + row["expired_minor"] + row["incremented_minor"]
    if row["decision"] == t.APPROVE and released > 0:
        fields["h"] = str(row["remaining_hold_minor"])
    if row["decision"] == t.APPROVE and row["cleared_minor"] > 0:
        # clear.lua keeps what the windows count (u) and what was cleared so far (cl).
        if row["status"] == "CLEARED":
            counted = row["cleared_minor"]
        else:
            counted = row["amount_minor"] + row["incremented_minor"] - row["reversed_minor"] - row["expired_minor"]
        fields["u"] = str(counted)
        fields["cl"] = str(row["cleared_minor"])
    return fields


async def _rebuild_reversal_records(
    pool: asyncpg.Pool, redis: aioredis.Redis, keyspace: Keyspace, now_ms: int, retention_s: int
) -> int:
    rows = await pool.fetch(
        """SELECT *, (extract(epoch FROM reversed_at) * 1000)::bigint AS reversed_at_ms FROM reversals
           WHERE reversed_at > to_timestamp($1::double precision / 1000) - make_interval(secs => $2)""",
        now_ms,
        retention_s,
    )
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            key = keyspace.reversal(row["tenant_id"], row["reversal_id"])
            pipe.hset(
                key,
                mapping={
                    "auth": row["authorization_id"],
                    "amt": str(row["requested_minor"]),
                    "rel": str(row["released_minor"]),
                    "rem": str(row["remaining_hold_minor"]),
                },
            )
            pipe.expire(key, max(1, retention_s - max(0, (now_ms - row["reversed_at_ms"]) // 1000)))
        await pipe.execute()
    return len(rows)


async def _rebuild_holds(pool: asyncpg.Pool, redis: aioredis.Redis, keyspace: Keyspace) -> int:
    """Every live hold in its shard's holds set, scored by when it expires (for the sweeper)."""
    rows = await pool.fetch(
        """SELECT tenant_id, authorization_id, card_id, shard,
                  (extract(epoch FROM hold_expires_at) * 1000)::bigint AS expires_at_ms
           FROM authorizations
           WHERE decision = $1 AND voided_at IS NULL AND remaining_hold_minor > 0 AND hold_expires_at IS NOT NULL""",
        t.APPROVE,
    )
    for start in range(0, len(rows), PIPELINE_COUNT_MAX):
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows[start : start + PIPELINE_COUNT_MAX]:
                member = holds_member(row["tenant_id"], row["authorization_id"], row["card_id"])
                pipe.zadd(keyspace.holds(row["shard"]), {member: row["expires_at_ms"]})
            await pipe.execute()
    return len(rows)


async def _rebuild_clearing_records(
    pool: asyncpg.Pool, redis: aioredis.Redis, keyspace: Keyspace, now_ms: int, retention_s: int
) -> int:
    rows = await pool.fetch(
        """SELECT *, (extract(epoch FROM cleared_at) * 1000)::bigint AS cleared_at_ms FROM clearings
           WHERE cleared_at > to_timestamp($1::double precision / 1000) - make_interval(secs => $2)""",
        now_ms,
        retention_s,
    )
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            key = keyspace.clearing(row["tenant_id"], row["clearing_id"])
            fields: dict[str | bytes, bytes | str] = {
                "f": bytes(row["fingerprint"]),
                "o": str(row["outcome"]),
                "fh": str(row["from_hold_minor"]),
                "fb": str(row["from_balance_minor"]),
                "rl": str(row["released_minor"]),
                "dt": str(row["delta_minor"]),
                "rv": "1" if row["review_id"] else "0",
            }
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, max(1, retention_s - max(0, (now_ms - row["cleared_at_ms"]) // 1000)))
        await pipe.execute()
    return len(rows)


async def _rebuild_replay_records(
    pool: asyncpg.Pool, redis: aioredis.Redis, keyspace: Keyspace, now_ms: int, retention_s: int
) -> int:
    """The stored answer of every authorization decided within the retention period, as the
    decision script (or a fail-closed tombstone) left it."""
    rows = await pool.fetch(
        """SELECT *, (extract(epoch FROM decided_at) * 1000)::bigint AS decided_at_ms FROM authorizations
           WHERE decided_at > to_timestamp($1::double precision / 1000) - make_interval(secs => $2)""",
        now_ms,
        retention_s,
    )
    for start in range(0, len(rows), PIPELINE_COUNT_MAX):
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows[start : start + PIPELINE_COUNT_MAX]:
                live_approval = row["decision"] == t.APPROVE and row["voided_at"] is None
                m = row["merchant"]
                merchant = json.loads(m) if isinstance(m, str) else m
                key = keyspace.replay(row["tenant_id"], row["authorization_id"])
                fields: dict[str | bytes, bytes | str] = {
                    "f": bytes(row["fingerprint"]),
                    "d": str(row["decision"]),
                    "r": str(row["reason"]),
                    "v": str(row["policy_version"]),
                    "t": str(row["decided_at_ms"]),
                    "x": "" if row["voided_at"] is not None else row["exceeded_limit"],
                    "n": row["attempt"],
                    "a": str(row["amount_minor"]) if live_approval else "0",
                    "b": row["reserved_buckets"] if live_approval else "",
                    "p": decision_payload(
                        row["tenant_id"],
                        row["authorization_id"],
                        row["card_id"],
                        row["amount_minor"],
                        row["currency"].strip(),
                        (merchant["id"], merchant["name"], merchant["mcc"], merchant["country"], merchant["city"]),
                        row["channel"],
                        row["actor_key_id"],
                        row["shard"],
                        row["advice"],
                    ),
                }
                fields.update(remaining_hold_field(row))
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                age_s = max(0, (now_ms - row["decided_at_ms"]) // 1000)
                lifetime_s = retention_s
                if row["hold_expires_at"] is not None:
                    # An approval's record outlives its hold by the retention (authorize.lua).
                    lifetime_s += int((row["hold_expires_at"].timestamp() * 1000 - row["decided_at_ms"]) // 1000)
                pipe.expire(key, max(1, lifetime_s - age_s))
            await pipe.execute()
    return len(rows)


async def rebuild_projection(
    pool: asyncpg.Pool, redis: aioredis.Redis, keyspace: Keyspace, scripts: Scripts, now_ms: int, retention_s: int
) -> RebuildReport:
    """Writes the whole projection from Postgres, then the marker. Idempotent."""
    started = time.perf_counter()
    report = RebuildReport()
    report.cards = await _rebuild_cards(pool, scripts, keyspace)
    report.counters = await _rebuild_counters(pool, redis, keyspace, now_ms)
    report.replay_records = await _rebuild_replay_records(pool, redis, keyspace, now_ms, retention_s)
    report.replay_records += await _rebuild_reversal_records(pool, redis, keyspace, now_ms, retention_s)
    report.replay_records += await _rebuild_clearing_records(pool, redis, keyspace, now_ms, retention_s)
    report.holds = await _rebuild_holds(pool, redis, keyspace)
    await redis.set(keyspace.projection_marker(), str(keyspace.shard_count))
    report.seconds = time.perf_counter() - started
    log.info(
        "projection rebuilt: %d cards, %d counter sets, %d replay records in %.2fs",
        report.cards, report.counters, report.replay_records, report.seconds,
    )  # fmt: skip
    return report


async def check_marker(redis: aioredis.Redis, keyspace: Keyspace) -> bool:
    """True if the projection is built (for this shard count); raises ProjectionMismatch if it
    was built for another shard count."""
    marker = await redis.get(keyspace.projection_marker())
    if marker is None:
        return False
    if int(marker) != keyspace.shard_count:
        raise ProjectionMismatch(
            f"the Redis projection was built for {int(marker)} shards, this process has AUTHZ_SHARDS="
            f"{keyspace.shard_count}"
        )
    return True


async def ensure_projection(
    pool: asyncpg.Pool, redis: aioredis.Redis, keyspace: Keyspace, scripts: Scripts, now_ms: int, retention_s: int
) -> RebuildReport | None:
    """Rebuilds the projection if its marker is missing, one process at a time: the process
    that takes the lock rebuilds, the others wait for the marker. Returns the report if this
    process rebuilt."""
    lock_key = keyspace.projection_marker() + ":lock"
    deadline = time.monotonic() + WAIT_FOR_MARKER_S
    while not await check_marker(redis, keyspace):
        token = secrets.token_hex(8)
        if await redis.set(lock_key, token, nx=True, px=LOCK_TTL_MS):
            try:
                if await check_marker(redis, keyspace):
                    return None
                return await rebuild_projection(pool, redis, keyspace, scripts, now_ms, retention_s)
            finally:
                if await redis.get(lock_key) == token.encode():
                    await redis.delete(lock_key)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no projection marker after waiting {WAIT_FOR_MARKER_S}s for another rebuild")
        await asyncio.sleep(0.1)
    return None
