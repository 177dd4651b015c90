"""What happens to an approval after the decision: reversals (this module), later expiry and
clearing. Like Authorize, each is one atomic Redis step (a Lua script) that also hands the
event to the ledger through the card shard's stream."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from authz_server.clock import Clock
from authz_server.errors import AlreadyExists, FailedPrecondition, NotFound
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.scripts import Scripts
from authz_server.windows import WINDOW_LETTERS, period_ids
from zentra.cards.v1 import authorization_pb2

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
                ],
                args=[
                    req.reversal_id, req.authorization_id, req.amount_minor, current_periods(now_ms), now_ms,
                    self._retention_s, record,
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
