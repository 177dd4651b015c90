"""What happens to an approval after the decision: reversals (this module), later expiry and
clearing. Like Authorize, each is one atomic Redis step (a Lua script) that also hands the
event to the ledger through the card shard's stream."""

from __future__ import annotations

import asyncio
import hashlib
import json

import asyncpg
import redis.asyncio as aioredis

from authz_server.clock import Clock
from authz_server.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from authz_server.holds import holds_member
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.scripts import Scripts
from authz_server.windows import WINDOW_LETTERS, period_ids
from zentra.cards.v1 import authorization_pb2, clearing_pb2

REVERSAL_RECORD_SCHEMA = 1


def current_periods(now_ms: int) -> str:
    """The current period of every window as the scripts read it: "D=20261124;W=2026W48;..."."""
    periods = period_ids(now_ms)
    return ";".join(f"{letter}={periods[interval]}" for interval, letter in WINDOW_LETTERS.items())


class Lifecycle:
    def __init__(
        self,
        redis: aioredis.Redis,
        scripts: Scripts,
        keyspace: Keyspace,
        clock: Clock,
        retention_s: int,
        timeout_s: float,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keyspace
        self._clock = clock
        self._retention_s = retention_s
        self._timeout_s = timeout_s

    async def reverse(
        self, tenant_id: str, key_id: str, req: authorization_pb2.ReverseRequest
    ) -> authorization_pb2.ReverseResponse:
        """Releases a validated reversal's amount from the approval's hold (see the proto)."""
        replay_key = self._keys.replay(tenant_id, req.authorization_id)
        async with asyncio.timeout(self._timeout_s):
            # The authorization's record names its card, and so the shard whose keys to touch.
            payload = await self._redis.hget(replay_key, "p")
            if payload is None:
                raise NotFound(f"authorization_id {req.authorization_id!r}: no such authorization")
            decision = json.loads(payload)
            card_id, shard = decision["card_id"], int(decision["shard"])
            now_ms = self._clock.now_ms()
            record = json.dumps(
                {
                    "schema": REVERSAL_RECORD_SCHEMA,
                    "tenant_id": tenant_id,
                    "authorization_id": req.authorization_id,
                    "reversal_id": req.reversal_id,
                    "requested_minor": req.amount_minor,
                    "card_id": card_id,
                    "currency": decision["currency"],
                    "actor_key_id": key_id,
                },
                separators=(",", ":"),
            )
            result = await self._scripts.reverse(
                keys=[
                    replay_key,
                    self._keys.usage(shard, tenant_id, card_id),
                    self._keys.stream(shard),
                    self._keys.reversal(tenant_id, req.reversal_id),
                    self._keys.holds(shard),
                ],
                args=[
                    req.reversal_id, req.authorization_id, req.amount_minor, current_periods(now_ms), now_ms,
                    self._retention_s, record, holds_member(tenant_id, req.authorization_id, card_id),
                ],
            )  # fmt: skip
        tag = result[0]
        if tag == b"N":
            raise NotFound(f"authorization_id {req.authorization_id!r}: no such authorization")
        if tag == b"X":
            raise AlreadyExists(f"reversal_id {req.reversal_id!r} was used with a different authorization or amount")
        if tag == b"P":
            raise FailedPrecondition(f"authorization_id {req.authorization_id!r}: {result[1].decode()}")
        assert tag in (b"D", b"R"), tag
        return authorization_pb2.ReverseResponse(
            reversal_id=req.reversal_id,
            authorization_id=req.authorization_id,
            released_minor=int(result[1]),
            remaining_hold_minor=int(result[2]),
            replayed=tag == b"R",
        )


CLEARING_RECORD_SCHEMA = 1


class Clearing:
    """Matches clearing records to authorizations (lua/clear.lua) and hands them to the ledger."""

    def __init__(
        self,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        scripts: Scripts,
        keyspace: Keyspace,
        clock: Clock,
        retention_s: int,
        timeout_s: float,
        tolerance_bps: int,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._scripts = scripts
        self._keys = keyspace
        self._clock = clock
        self._retention_s = retention_s
        self._timeout_s = timeout_s
        self._tolerance_bps = tolerance_bps

    async def _mode(self, tenant_id: str, record: clearing_pb2.ClearingRecord) -> str:
        """How to post: against the authorization's live hold, as a late capture (the
        authorization is only in Postgres any more), as a force post, or as a refund."""
        if not record.authorization_id:
            return "refund" if record.kind == clearing_pb2.REFUND else "force"
        payload = await self._redis.hget(self._keys.replay(tenant_id, record.authorization_id), "p")
        if payload is not None:
            decision = json.loads(payload)
            if decision["card_id"] != record.card_id:
                raise FailedPrecondition(
                    f"card_id {record.card_id!r} is not the card of authorization {record.authorization_id!r}"
                )
            if decision["currency"] != record.currency:
                raise FailedPrecondition(
                    f"currency {record.currency} is not the authorization's currency {decision['currency']}"
                )
            return "refund" if record.kind == clearing_pb2.REFUND else "auth"
        known = await self._pool.fetchrow(
            "SELECT card_id, currency FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
            tenant_id,
            record.authorization_id,
        )
        if known is not None and known["card_id"] != record.card_id:
            raise FailedPrecondition(
                f"card_id {record.card_id!r} is not the card of authorization {record.authorization_id!r}"
            )
        if record.kind == clearing_pb2.REFUND:
            return "refund"
        return "late" if known is not None else "force"

    async def post(
        self, tenant_id: str, key_id: str, record: clearing_pb2.ClearingRecord
    ) -> clearing_pb2.ClearingResult:
        """Posts one validated clearing record (see the proto for the contract)."""
        identity = clearing_pb2.ClearingRecord()
        identity.CopyFrom(record)
        identity.line = 0  # where a record sits in a file is not part of what it is
        fingerprint = hashlib.blake2b(identity.SerializeToString(deterministic=True), digest_size=16).digest()
        shard = self._keys.shard_of(record.card_id)
        async with asyncio.timeout(self._timeout_s):
            raw_currency = await self._redis.hget(self._keys.card(shard, tenant_id, record.card_id), "cur")
            if raw_currency is None:
                raise NotFound(f"card_id {record.card_id!r}: no such card")
            card_currency = raw_currency.decode() if isinstance(raw_currency, bytes) else str(raw_currency)
            if card_currency != record.currency:
                raise FailedPrecondition(f"currency {record.currency} is not the card's currency {card_currency}")
            mode = await self._mode(tenant_id, record)
            now_ms = self._clock.now_ms()
            m = record.merchant
            payload = json.dumps(
                {
                    "schema": CLEARING_RECORD_SCHEMA,
                    "tenant_id": tenant_id,
                    "clearing_id": record.clearing_id,
                    "authorization_id": record.authorization_id,
                    "card_id": record.card_id,
                    "amount_minor": record.amount_minor,
                    "currency": record.currency,
                    "merchant": {"id": m.id, "name": m.name, "mcc": m.mcc, "country": m.country, "city": m.city},
                    "kind": record.kind,
                    "is_final": record.is_final,
                    "mode": mode,
                    "actor_key_id": key_id,
                },
                separators=(",", ":"),
            )
            auth_key = self._keys.replay(tenant_id, record.authorization_id or "-")
            result = await self._scripts.clear(
                keys=[
                    auth_key,
                    self._keys.usage(shard, tenant_id, record.card_id),
                    self._keys.stream(shard),
                    self._keys.clearing(tenant_id, record.clearing_id),
                    self._keys.holds(shard),
                ],
                args=[
                    record.clearing_id, fingerprint, mode, record.amount_minor, 1 if record.is_final else 0,
                    current_periods(now_ms), now_ms, self._retention_s, payload, self._tolerance_bps,
                    holds_member(tenant_id, record.authorization_id, record.card_id),
                ],
            )  # fmt: skip
        tag = result[0]
        if tag == b"X":
            raise AlreadyExists(f"clearing_id {record.clearing_id!r} was used with a different clearing record")
        if tag == b"N":
            raise Unavailable("the authorization changed while clearing; retry")
        assert tag in (b"D", b"R"), tag
        outcome, from_hold, from_balance, released, delta, review = (int(x) for x in result[1:7])
        return clearing_pb2.ClearingResult(
            clearing_id=record.clearing_id,
            authorization_id=record.authorization_id,
            outcome=outcome,  # type: ignore[arg-type]  # proto enum int
            from_hold_minor=from_hold,
            from_balance_minor=from_balance,
            released_minor=released,
            delta_minor=delta,
            review_id=f"clearing:{record.clearing_id}" if review else "",
            replayed=tag == b"R",
        )


EXPIRY_RECORD_SCHEMA = 1
SWEEP_BATCH_COUNT_MAX = 500  # due holds one sweep takes from one shard


async def sweep_expired_holds(redis: aioredis.Redis, scripts: Scripts, keyspace: Keyspace, now_ms: int) -> int:
    """Releases every hold due by `now_ms` (lua/expire.lua, one hold at a time); returns how
    many it released. Safe to run in several processes at once: a hold is released once."""
    released = 0
    periods = current_periods(now_ms)
    for shard in range(keyspace.shard_count):
        holds_key = keyspace.holds(shard)
        while True:
            due = await redis.zrangebyscore(holds_key, "-inf", now_ms, start=0, num=SWEEP_BATCH_COUNT_MAX)
            if not due:
                break
            for raw in due:
                member = raw.decode() if isinstance(raw, bytes) else str(raw)
                tenant_id, authorization_id, card_id = member.split("|")
                payload = json.dumps(
                    {
                        "schema": EXPIRY_RECORD_SCHEMA,
                        "tenant_id": tenant_id,
                        "authorization_id": authorization_id,
                        "card_id": card_id,
                    },
                    separators=(",", ":"),
                )
                result = await scripts.expire(
                    keys=[
                        keyspace.replay(tenant_id, authorization_id),
                        keyspace.usage(shard, tenant_id, card_id),
                        keyspace.stream(shard),
                        holds_key,
                    ],
                    args=[member, now_ms, periods, payload],
                )
                if result[0] == b"E":
                    released += 1
            if len(due) < SWEEP_BATCH_COUNT_MAX:
                break
    return released
