"""AuthorizationService: the hot path (Authorize) and the read of one authorization
(GetAuthorization), answered from Postgres once posted and from the Redis replay record before."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import grpc
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from authz_server import metrics, validation
from authz_server.auth import PROCESSOR, Principal
from authz_server.decisions import Decider, spend_limit_from_label
from authz_server.errors import NotFound
from authz_server.lifecycle import Lifecycle
from authz_server.policy import RESPONSE_CODES
from authz_server.redis_state.keys import Keyspace
from authz_server.services.rpc import RpcContext, rpc
from authz_server.store import authorizations as store
from authz_server.store.authorizations import AuthorizationRow
from zentra.cards.v1 import authorization_pb2, authorization_pb2_grpc, ledger_pb2
from zentra.cards.v1 import types_pb2 as t

_SVC = "/zentra.cards.v1.AuthorizationService/"

# Status of an authorization the ledger writer has not recorded yet: what its decision
# makes it (the same mapping the ledger writer records); later lifecycle states are posted ones.
STATUS_OF_DECISION: dict[int, str] = {t.APPROVE: "PENDING", t.DECLINE: "DECLINED", t.REVIEW: "REVIEW"}


def _timestamp_from_datetime(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _timestamp_from_ms(value_ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(value_ms)
    return ts


def _merchant(fields: dict[str, str]) -> t.Merchant:
    return t.Merchant(
        id=fields.get("id", ""),
        name=fields.get("name", ""),
        mcc=fields.get("mcc", ""),
        country=fields.get("country", ""),
        city=fields.get("city", ""),
    )


def posted_authorization(row: AuthorizationRow) -> authorization_pb2.Authorization:
    """The Authorization as the ledger writer recorded it (posted = true)."""
    answer = authorization_pb2.Authorization(
        authorization_id=row.authorization_id,
        card_id=row.card_id,
        tenant_id=row.tenant_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        merchant=_merchant(row.merchant),
        channel=row.channel,  # type: ignore[arg-type]  # proto enum int
        decision=row.decision,  # type: ignore[arg-type]  # proto enum int
        reason=row.reason,  # type: ignore[arg-type]  # proto enum int
        response_code=row.response_code,
        policy_version=row.policy_version,
        decided_at=_timestamp_from_datetime(row.decided_at),
        rules=[authorization_pb2.RuleResult(rule=r.rule, passed=r.passed, detail=r.detail) for r in row.rules],
        ledger_entries=[
            ledger_pb2.LedgerEntry(
                transaction_id=e.transaction_id,
                account=e.account,
                account_ref=e.account_ref,
                direction=e.direction,  # type: ignore[arg-type]  # proto enum int
                amount_minor=e.amount_minor,
                currency=e.currency,
            )
            for e in row.entries
        ],
        posted=True,
        status=row.status,
        recorded_at=_timestamp_from_datetime(row.recorded_at),
        actor_key_id=row.actor_key_id,
        account_ref=row.account_ref or "",
        remaining_hold_minor=row.remaining_hold_minor,
        incremental_of=row.incremental_of,
    )
    exceeded = spend_limit_from_label(row.exceeded_limit)
    if exceeded is not None:
        answer.exceeded_limit.CopyFrom(exceeded)
    return answer


# The replay record fields GetAuthorization reads (see the lua/authorize.lua header); the
# fingerprint (binary) and what the approval reserved are the hot path's business.
REPLAY_FIELDS = ("d", "r", "v", "t", "x", "p", "a", "h")
REQUIRED_REPLAY_FIELDS = 7  # all but "h" (remaining hold), which appears with the first release


def unposted_authorization(values: Sequence[bytes | str | None]) -> tuple[authorization_pb2.Authorization, str]:
    """The Authorization from its Redis replay record fields REPLAY_FIELDS, with posted = false,
    no rules and no ledger entries; and the key id that made it."""
    # The decision scripts write every field of a replay record in one HSET.
    assert len(values) == len(REPLAY_FIELDS) and None not in values[:REQUIRED_REPLAY_FIELDS], values
    fields = {
        name: v.decode() if isinstance(v, bytes) else str(v)
        for name, v in zip(REPLAY_FIELDS, values, strict=True)
        if v is not None
    }
    payload = json.loads(fields["p"])
    decision, reason = int(fields["d"]), int(fields["r"])
    remaining = int(fields.get("h", fields["a"]))
    status = STATUS_OF_DECISION[decision]
    if decision == t.APPROVE and remaining < int(payload["amount_minor"]):
        status = "REVERSED" if remaining == 0 else "PARTIALLY_REVERSED"
    answer = authorization_pb2.Authorization(
        authorization_id=payload["authorization_id"],
        card_id=payload["card_id"],
        tenant_id=payload["tenant_id"],
        amount_minor=int(payload["amount_minor"]),
        currency=payload["currency"],
        merchant=_merchant({k: str(v) for k, v in payload["merchant"].items()}),
        channel=int(payload["channel"]),  # type: ignore[arg-type]  # proto enum int
        decision=decision,  # type: ignore[arg-type]  # proto enum int
        reason=reason,  # type: ignore[arg-type]  # proto enum int
        response_code=RESPONSE_CODES[reason],
        policy_version=int(fields["v"]),
        decided_at=_timestamp_from_ms(int(fields["t"])),
        posted=False,
        status=status,
        remaining_hold_minor=remaining,
        actor_key_id=payload["actor_key_id"],
    )
    exceeded = spend_limit_from_label(fields.get("x", ""))
    if exceeded is not None:
        answer.exceeded_limit.CopyFrom(exceeded)
    return answer, payload["actor_key_id"]


class AuthorizationService(authorization_pb2_grpc.AuthorizationServiceServicer):
    def __init__(
        self,
        rpc_context: RpcContext,
        decider: Decider,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        keyspace: Keyspace,
        admin_timeout_s: float,
        lifecycle: Lifecycle,
    ) -> None:
        assert admin_timeout_s > 0, f"admin_timeout_s must be > 0, got {admin_timeout_s}"
        self.rpc_context = rpc_context
        self._decider = decider
        self._lifecycle = lifecycle
        self._pool = pool
        self._redis = redis
        self._keys = keyspace
        self._timeout_s = admin_timeout_s

    @rpc(_SVC + "Reverse")
    async def Reverse(
        self,
        request: authorization_pb2.ReverseRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> authorization_pb2.ReverseResponse:
        """Releases all or part of an approval's hold; see the proto for every outcome. Safe to
        retry with the same reversal_id (the answer is replayed, nothing is released twice)."""
        validation.validate_reverse(request)
        return await self._lifecycle.reverse(principal.tenant_id, principal.key_id, request)

    @rpc(_SVC + "Authorize")
    async def Authorize(
        self,
        request: authorization_pb2.AuthorizeRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> authorization_pb2.AuthorizeResponse:
        """APPROVE, DECLINE or REVIEW for one purchase attempt (see the proto for the contract).
        Malformed requests are INVALID_ARGUMENT and change nothing; a reused authorization_id
        with a different request is ALREADY_EXISTS; a dependency failure is a decline."""
        started = time.perf_counter()
        purchase = validation.validate_authorize(request)
        answer = await self._decider.decide(
            principal.tenant_id, principal.key_id, request, purchase, context.time_remaining()
        )
        response = answer.response
        tally = metrics.TALLY
        tally.inc(metrics.decision_counter(response.decision, response.reason))
        if response.replayed:
            metrics.REPLAYS.inc()
        elif request.advice:
            metrics.ADVICES.labels(t.Decision.Name(response.decision)).inc()
        if answer.fail_closed_cause is not None:
            metrics.FAIL_CLOSED.labels(answer.fail_closed_cause).inc()
        if answer.redis_seconds:
            tally.observe(metrics.REDIS_STEP_SECONDS, answer.redis_seconds)
        if answer.refreshed_policy:
            metrics.POLICY_REFRESHES.inc()
        tally.observe(metrics.DECISION_SECONDS, time.perf_counter() - started)
        return response

    @rpc(_SVC + "GetAuthorization")
    async def GetAuthorization(
        self,
        request: authorization_pb2.GetAuthorizationRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> authorization_pb2.Authorization:
        """One authorization of the caller's tenant. Once the ledger writer has recorded it:
        posted = true, with the rule trace and every ledger entry of it (by transaction, then
        line). Before that, while its replay record lives in Redis: posted = false, the decision
        and request facts only. A PROCESSOR key sees only the authorizations it made. Unknown,
        another tenant's, or another key's (for a PROCESSOR) are the same NOT_FOUND; a malformed
        id is INVALID_ARGUMENT; Postgres or Redis not answering is UNAVAILABLE."""
        authorization_id = validation.require_id("authorization_id", request.authorization_id)
        not_found = NotFound(f"authorization_id {authorization_id!r}: no such authorization")
        async with asyncio.timeout(self._timeout_s):
            row = await store.find_authorization(self._pool, principal.tenant_id, authorization_id)
            if row is not None:
                if principal.role == PROCESSOR and row.actor_key_id != principal.key_id:
                    raise not_found
                return posted_authorization(row)
            # Not recorded yet: the replay record is keyed by tenant, so another tenant's id is absent.
            record = await self._redis.hmget(self._keys.replay(principal.tenant_id, authorization_id), REPLAY_FIELDS)
        if record[0] is None:
            raise not_found
        answer, actor_key_id = unposted_authorization(record)
        assert (answer.tenant_id, answer.authorization_id) == (principal.tenant_id, authorization_id), (
            "a replay record under this tenant's key describes another authorization"
        )
        if principal.role == PROCESSOR and actor_key_id != principal.key_id:
            raise not_found
        return answer
