"""Authorize, end to end below the gRPC layer: plan against the cached card policy, run the
decision script in one Redis round trip, and fail closed when that cannot happen in time.

Steady state is one round trip: the process keeps each card's parsed policy, keyed by
policy_version. The script re-checks the version atomically; if the card changed (or the
process has never seen it) the script answers with the current projection instead of
deciding, and the call re-plans and runs again within the same budget.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError

from authz_server.clock import Clock
from authz_server.config import Settings
from authz_server.errors import AlreadyExists, FailedPrecondition
from authz_server.holds import hold_lifetime_s, holds_member
from authz_server.policy import RESPONSE_CODES, CardPolicy, LimitPlan, Plan, Purchase, plan_decision
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.lane import ScriptCaller, ScriptLane
from authz_server.redis_state.projection import policy_from_projection
from authz_server.redis_state.scripts import Scripts
from authz_server.windows import MS_PER_DAY, period_ids
from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t

log = logging.getLogger(__name__)

DECISION_RECORD_SCHEMA = 1  # version of the decision record payload in the streams
PLAN_ATTEMPTS_MAX = 3  # round trips one call may make when the card changes under it
LIMIT_ARGS_MEMO_MAX = 100_000  # memoized limit ARGV parts per process (cleared when full)
TOMBSTONES_PENDING_MAX = 100_000  # fail-closed answers waiting for Redis, per process
FAIL_CLOSED_LOG_INTERVAL_S = 1.0  # at most one "failed closed" log line per interval
TOMBSTONE_PIPELINE_COUNT_MAX = 200  # fail-closed answers stored per Redis round trip
DEADLINE_MARGIN_S = 0.002  # answer this long before the caller's deadline, to be heard


ScriptArg = bytes | str | int
# A JSON string literal, exactly as json.dumps writes one (ensure_ascii).
_json_string = json.encoder.encode_basestring_ascii


class PolicyChurn(Exception):
    """The card's policy changed on every re-plan; the call fails closed."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An Authorize answer plus what the service layer reports about it."""

    response: authorization_pb2.AuthorizeResponse
    fail_closed_cause: str | None = None  # None unless the answer is a fail-closed decline
    redis_seconds: float = 0.0
    refreshed_policy: bool = False


def limit_label(index: int, limit_interval: int, amount_minor: int, max_count: int, mccs: tuple[str, ...]) -> str:
    """How an exceeded limit travels through Redis: enough to rebuild its SpendLimit."""
    return f"{index}:{limit_interval}:{amount_minor}:{max_count}:{','.join(mccs)}"


def spend_limit_from_label(label: str) -> t.SpendLimit | None:
    if not label:
        return None
    _, interval, amount, count, mccs = label.split(":")
    return t.SpendLimit(
        interval=int(interval),  # type: ignore[arg-type]  # proto enum int
        amount_minor=int(amount),
        max_count=int(count),
        mccs=mccs.split(",") if mccs else [],
    )


class CardPolicyCache:
    """Parsed card policies of this process, least recently used evicted first. Never stale in
    effect: the decision script rejects a plan made against an old policy_version."""

    def __init__(self, entries_max: int) -> None:
        assert entries_max > 0
        self._entries_max = entries_max
        self._policies: OrderedDict[tuple[str, str], CardPolicy] = OrderedDict()

    def get(self, tenant_id: str, card_id: str) -> CardPolicy | None:
        key = (tenant_id, card_id)
        policy = self._policies.get(key)
        if policy is not None:
            self._policies.move_to_end(key)
        return policy

    def put(self, tenant_id: str, policy: CardPolicy) -> None:
        self._policies[(tenant_id, policy.card_id)] = policy
        self._policies.move_to_end((tenant_id, policy.card_id))
        if len(self._policies) > self._entries_max:
            self._policies.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A fail-closed answer that Redis must be told about (see lua/tombstone.lua)."""

    fingerprint: bytes
    attempt: str
    replay_key: str
    usage_key: str
    stream_key: str
    payload: str
    decided_at_ms: int
    response: authorization_pb2.AuthorizeResponse
    holds_key: str
    holds_member: str


class Decider:
    """Makes Authorize decisions. Never raises for a dependency failure: it fails closed."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        scripts: Scripts,
        keyspace: Keyspace,
        clock: Clock,
        authorize_caller: ScriptCaller | None = None,
    ) -> None:
        """`authorize_caller` runs authorize.lua (default: the pipelined ScriptLane); the
        benchmark's Redis-only phase passes one that records what the Decider would send."""
        self._settings = settings
        self._redis = redis
        self._scripts = scripts
        self._keys = keyspace
        self._clock = clock
        self._policies = CardPolicyCache(settings.card_cache_max)
        self._limit_args: dict[tuple[LimitPlan, int], list[ScriptArg]] = {}
        self._card_keys: dict[tuple[str, str], tuple[int, str, str, str, str, str]] = {}
        self._lane: ScriptLane | None = None
        if authorize_caller is None:
            authorize_caller = self._lane = ScriptLane(redis, scripts.authorize)
        self._authorize: ScriptCaller = authorize_caller
        self._budget_s = settings.decision_budget_ms / 1000
        self._attempt_prefix = f"{os.getpid():x}.{secrets.token_hex(4)}."
        self._attempt_ids = itertools.count()
        # Fail-closed answers not yet stored in Redis, by (tenant, authorization id). A retry
        # that reaches this process before Redis has them replays them from here.
        self.tombstones: OrderedDict[tuple[str, str], Tombstone] = OrderedDict()
        self.tombstones_dropped = 0
        # False until the Redis projection is known to be built (server start, rebuild):
        # deciding against a missing projection could approve past a limit, so fail closed.
        self.ready = False
        self._fail_log_next_s = 0.0
        self._fail_log_suppressed = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def _loop_time(self) -> float:
        """The event loop's clock (the lane's deadlines are on it); the loop is looked up once,
        asyncio.get_running_loop() costing a getpid() system call."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    async def aclose(self) -> None:
        """Closes the decision connection (after the drain: calls still waiting fail closed)."""
        if self._lane is not None:
            await self._lane.aclose()

    async def decide(
        self,
        tenant_id: str,
        key_id: str,
        req: authorization_pb2.AuthorizeRequest,
        purchase: Purchase,
        time_remaining_s: float | None,
    ) -> Answer:
        """The answer to a validated AuthorizeRequest of `tenant_id`. Raises AlreadyExists
        when the authorization id was used with a different request."""
        fingerprint = hashlib.blake2b(req.SerializeToString(deterministic=True), digest_size=16).digest()
        pending = self.tombstones.get((tenant_id, req.authorization_id))
        if pending is not None:
            if pending.fingerprint != fingerprint:
                raise AlreadyExists(f"authorization_id {req.authorization_id!r} was used with a different request")
            return Answer(_replayed(pending.response))

        budget_s = self._budget_s
        if time_remaining_s is not None:
            budget_s = min(budget_s, time_remaining_s - DEADLINE_MARGIN_S)
        card_keys = self._card_keys.get((tenant_id, req.card_id))
        if card_keys is None:
            card_keys = self._new_card_keys(tenant_id, req.card_id)
        shard, card_key, usage_key, stream_key, override_key, holds_key = card_keys
        replay_key = self._keys.replay(tenant_id, req.authorization_id)
        keys = [card_key, usage_key, replay_key, stream_key, override_key, holds_key]
        now_ms = self._clock.now_ms()
        attempt = self._attempt_prefix + str(next(self._attempt_ids))
        payload = _decision_payload(tenant_id, key_id, req, shard)

        if budget_s <= 0 or not self.ready:
            return self._fail_closed(
                "deadline" if self.ready else "not_ready",
                tenant_id,
                req,
                fingerprint,
                attempt,
                replay_key,
                usage_key,
                stream_key,
                payload,
                now_ms,
            )
        started = time.perf_counter()
        refreshed = False
        try:
            deadline = self._loop_time() + budget_s
            policy = self._policies.get(tenant_id, req.card_id)
            for _ in range(PLAN_ATTEMPTS_MAX):
                plan = plan_decision(policy, purchase) if policy is not None else None
                args = _script_args(
                    fingerprint, policy, plan, purchase, now_ms, self._settings, payload, attempt, self._limit_args
                )
                args += self._hold_args(tenant_id, req, now_ms)
                result: Any = await self._authorize.call(
                    [*keys, self._keys.replay(tenant_id, req.incremental_of or "-")], args, deadline
                )
                tag = result[0]
                if tag != b"S":
                    break
                policy = policy_from_projection(req.card_id, result[1:6])
                self._policies.put(tenant_id, policy)
                refreshed = True
            else:
                raise PolicyChurn(f"card policy changed {PLAN_ATTEMPTS_MAX} times during one decision")
        except asyncio.CancelledError:
            # The caller went away (its deadline passed) while the script may still run:
            # make the fail-closed answer stick before letting the cancellation through.
            self._fail_closed(
                "cancelled",
                tenant_id,
                req,
                fingerprint,
                attempt,
                replay_key,
                usage_key,
                stream_key,
                payload,
                now_ms,
            )
            raise
        except (TimeoutError, RedisError, OSError, PolicyChurn) as error:
            cause = {TimeoutError: "timeout", PolicyChurn: "policy_churn"}.get(type(error), "redis_error")
            self._log_fail_closed(cause, type(error).__name__, decision_log_fields(tenant_id, req, attempt))
            return self._fail_closed(
                cause,
                tenant_id,
                req,
                fingerprint,
                attempt,
                replay_key,
                usage_key,
                stream_key,
                payload,
                now_ms,
            )
        redis_seconds = time.perf_counter() - started
        if log.isEnabledFor(logging.DEBUG):
            log.debug("decision script answered %s", result[:3], extra=decision_log_fields(tenant_id, req, attempt))

        if tag == b"I":
            raise FailedPrecondition(f"{result[1].decode()} ({req.incremental_of!r})")
        if tag == b"X":
            raise AlreadyExists(f"authorization_id {req.authorization_id!r} was used with a different request")
        if tag in (b"B", b"L"):
            cause = "backlog" if tag == b"B" else "late_script"
            response = _response(req.authorization_id, t.DECLINE, t.SYSTEM_UNAVAILABLE, 0, now_ms, "", False)
            return Answer(response, cause, redis_seconds, refreshed)
        assert tag in (b"D", b"R"), tag
        decision, reason, version, decided_at_ms, label = result[1:6]
        response = _response(
            req.authorization_id,
            int(decision),
            int(reason),
            int(version),
            int(decided_at_ms),
            label.decode(),
            tag == b"R",
        )
        return Answer(response, None, redis_seconds, refreshed)

    def _log_fail_closed(self, cause: str, error: str, fields: dict[str, str]) -> None:
        """At most one line per second: under overload every decision may fail closed, and a
        log line each would only add to the load (the metric counts every one)."""
        now = time.monotonic()
        if now < self._fail_log_next_s:
            self._fail_log_suppressed += 1
            return
        log.warning(
            "decision failed closed (%s): %s (%d more since the last line)",
            cause,
            error,
            self._fail_log_suppressed,
            extra=fields,
        )
        self._fail_log_next_s = now + FAIL_CLOSED_LOG_INTERVAL_S
        self._fail_log_suppressed = 0

    def _new_card_keys(self, tenant_id: str, card_id: str) -> tuple[int, str, str, str, str, str]:
        """A card's shard and its keys among authorize.lua's KEYS: KEYS[1], KEYS[2], KEYS[4]
        to KEYS[6] (the card's review override, the shard's holds). KEYS[3] is the call's
        replay record, KEYS[7] the original authorization's record of an incremental one."""
        keys = self._keys
        shard = keys.shard_of(card_id)
        card_keys = (
            shard,
            keys.card(shard, tenant_id, card_id),
            keys.usage(shard, tenant_id, card_id),
            keys.stream(shard),
            keys.override(shard, tenant_id, card_id),
            keys.holds(shard),
        )
        if len(self._card_keys) >= self._settings.card_cache_max:
            self._card_keys.clear()
        self._card_keys[(tenant_id, card_id)] = card_keys
        return card_keys

    def _hold_args(self, tenant_id: str, req: authorization_pb2.AuthorizeRequest, now_ms: int) -> list[ScriptArg]:
        """The tail of authorize.lua's ARGV: the merchant an override must match, when the hold
        would expire, how long an approval's replay record must live, and its holds member."""
        lifetime_s = hold_lifetime_s(req.merchant.mcc, self._settings.hold_expiry_s)
        m = req.merchant
        return [
            m.id, m.mcc, m.country, now_ms + lifetime_s * 1000,
            lifetime_s + self._settings.replay_retention_s, holds_member(tenant_id, req.authorization_id, req.card_id),
            req.incremental_of, req.card_id,
        ]  # fmt: skip

    def _fail_closed(
        self,
        cause: str,
        tenant_id: str,
        req: authorization_pb2.AuthorizeRequest,
        fingerprint: bytes,
        attempt: str,
        replay_key: str,
        usage_key: str,
        stream_key: str,
        payload: str,
        now_ms: int,
    ) -> Answer:
        response = _response(req.authorization_id, t.DECLINE, t.SYSTEM_UNAVAILABLE, 0, now_ms, "", False)
        key = (tenant_id, req.authorization_id)
        if key not in self.tombstones:
            shard = self._keys.shard_of(req.card_id)
            self.tombstones[key] = Tombstone(
                fingerprint, attempt, replay_key, usage_key, stream_key, payload, now_ms, response,
                self._keys.holds(shard), holds_member(tenant_id, req.authorization_id, req.card_id),
            )  # fmt: skip
            if len(self.tombstones) > TOMBSTONES_PENDING_MAX:
                self.tombstones.popitem(last=False)
                self.tombstones_dropped += 1
        return Answer(response, cause)

    async def flush_tombstones(self) -> int:
        """Stores pending fail-closed answers in Redis, oldest first, many per round trip; stops
        at the first failure (Redis still away). Returns how many were stored."""
        stored = 0
        pending = list(self.tombstones.items())
        for start in range(0, len(pending), TOMBSTONE_PIPELINE_COUNT_MAX):
            chunk = pending[start : start + TOMBSTONE_PIPELINE_COUNT_MAX]
            try:
                async with asyncio.timeout(self._settings.admin_timeout_ms / 1000):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for _, stone in chunk:
                            await self._scripts.tombstone(
                                keys=[stone.replay_key, stone.usage_key, stone.stream_key, stone.holds_key],
                                args=[
                                    stone.fingerprint,
                                    stone.attempt,
                                    stone.decided_at_ms,
                                    self._settings.replay_retention_s,
                                    stone.payload,
                                    stone.holds_member,
                                ],
                                client=pipe,
                            )
                        await pipe.execute()
            except (TimeoutError, RedisError, OSError):
                break
            for key, stone in chunk:
                if self.tombstones.get(key) is stone:
                    del self.tombstones[key]
            stored += len(chunk)
        return stored


def decision_log_fields(tenant_id: str, req: authorization_pb2.AuthorizeRequest, attempt: str) -> dict[str, str]:
    """The ids every log line about a decision carries (authz_server/logs.py puts them in JSON
    lines): the decision id is the attempt id, also stored in the stream entry and in Postgres.
    Card ids are tokens, never card numbers; no secret is ever among them."""
    return {
        "decision_id": attempt,
        "authorization_id": req.authorization_id,
        "tenant_id": tenant_id,
        "card_id": req.card_id,
    }


def _decision_payload(tenant_id: str, key_id: str, req: authorization_pb2.AuthorizeRequest, shard: int) -> str:
    m = req.merchant
    return decision_payload(
        tenant_id, req.authorization_id, req.card_id, req.amount_minor, req.currency,
        (m.id, m.name, m.mcc, m.country, m.city), req.channel, key_id, shard, req.advice,
    )  # fmt: skip


def decision_payload(
    tenant_id: str,
    authorization_id: str,
    card_id: str,
    amount_minor: int,
    currency: str,
    merchant: tuple[str, str, str, str, str],
    channel: int,
    actor_key_id: str,
    shard: int,
    advice: bool = False,
) -> str:
    """The versioned decision record the ledger writer reads (the static facts of a request),
    serialized canonically: the rebuild reproduces it byte for byte from Postgres."""
    merchant_id, name, mcc, country, city = merchant
    q = _json_string
    return (
        f'{{"schema":{DECISION_RECORD_SCHEMA},"tenant_id":{q(tenant_id)},"authorization_id":{q(authorization_id)},'
        f'"card_id":{q(card_id)},"amount_minor":{int(amount_minor)},"currency":{q(currency)},'
        f'"merchant":{{"id":{q(merchant_id)},"name":{q(name)},"mcc":{q(mcc)},"country":{q(country)},'
        f'"city":{q(city)}}},"channel":{int(channel)},"actor_key_id":{q(actor_key_id)},"shard":{int(shard)}'
        + (',"advice":true}' if advice else "}")
    )


def decision_payload_reference(
    tenant_id: str,
    authorization_id: str,
    card_id: str,
    amount_minor: int,
    currency: str,
    merchant: tuple[str, str, str, str, str],
    channel: int,
    actor_key_id: str,
    shard: int,
    advice: bool = False,
) -> str:
    """decision_payload by the json module: the definition it must match byte for byte
    (tests/unit/test_decision_payload.py). The hot path writes the text directly, a few
    microseconds less per call than building and encoding a dict."""
    merchant_id, name, mcc, country, city = merchant
    extra: dict[str, object] = {"advice": True} if advice else {}
    return json.dumps(
        {
            "schema": DECISION_RECORD_SCHEMA,
            "tenant_id": tenant_id,
            "authorization_id": authorization_id,
            "card_id": card_id,
            "amount_minor": amount_minor,
            "currency": currency,
            "merchant": {"id": merchant_id, "name": name, "mcc": mcc, "country": country, "city": city},
            "channel": channel,
            "actor_key_id": actor_key_id,
            "shard": shard,
            **extra,
        },
        separators=(",", ":"),
    )


def _script_args(
    fingerprint: bytes,
    policy: CardPolicy | None,
    plan: Plan | None,
    purchase: Purchase,
    now_ms: int,
    settings: Settings,
    payload: str,
    attempt: str,
    memo: dict[tuple[LimitPlan, int], list[ScriptArg]] | None = None,
) -> list[ScriptArg]:
    """ARGV of authorize.lua (see its header). Without a policy the script can only find the
    card missing or hand back its projection. `memo` keeps the limit part per limit plan and
    day (it changes only with the card's policy, the purchase's MCC and the period ids)."""
    sent_at_ms = time.time_ns() // 1_000_000
    if policy is None or plan is None:
        static_reason, static_label, review = 0, "", 0
        limit_args: list[ScriptArg] = [0, 0]
    else:
        static_reason = plan.decline_reason
        static_label = ""
        if plan.exceeded_limit_index >= 0:
            limit = policy.controls.limits[plan.exceeded_limit_index]
            static_label = limit_label(
                plan.exceeded_limit_index, limit.interval, limit.amount_minor, limit.max_count, limit.mccs
            )
        review = 1 if plan.review else 0
        if plan.limits is not None and memo is not None:
            memo_key = (plan.limits, now_ms // MS_PER_DAY)
            found = memo.get(memo_key)
            if found is None:
                if len(memo) >= LIMIT_ARGS_MEMO_MAX:
                    memo.clear()
                found = memo[memo_key] = _limit_args(policy, plan, now_ms)
            limit_args = found
        else:
            limit_args = _limit_args(policy, plan, now_ms)
    return [
        fingerprint,
        policy.policy_version if policy is not None else 0,
        sent_at_ms,
        settings.script_stale_ms,
        static_reason,
        static_label,
        review,
        purchase.amount_minor,
        now_ms,
        settings.replay_retention_s,
        settings.stream_backlog_max,
        payload,
        attempt,
        *limit_args,
    ]


def _limit_args(policy: CardPolicy, plan: Plan, now_ms: int) -> list[ScriptArg]:
    """The limit part of authorize.lua's ARGV: B, B (bucket, period id) pairs, C, C checks."""
    periods = period_ids(now_ms)
    index = {bucket: i + 1 for i, (bucket, _) in enumerate(plan.buckets)}
    buckets: list[ScriptArg] = [x for bucket, interval in plan.buckets for x in (bucket, periods[interval])]
    checks: list[ScriptArg] = []
    for check in plan.checks:
        limit = policy.controls.limits[check.limit_index]
        checks += [
            index[check.bucket],
            check.kind,
            check.cap,
            limit_label(check.limit_index, limit.interval, limit.amount_minor, limit.max_count, limit.mccs),
        ]
    return [len(plan.buckets), *buckets, len(plan.checks), *checks]


def _response(
    authorization_id: str,
    decision: int,
    reason: int,
    version: int,
    decided_at_ms: int,
    label: str,
    replayed: bool,
) -> authorization_pb2.AuthorizeResponse:
    decided_at = Timestamp()
    decided_at.FromMilliseconds(decided_at_ms)
    response = authorization_pb2.AuthorizeResponse(
        authorization_id=authorization_id,
        decision=decision,  # type: ignore[arg-type]  # proto enum int
        reason=reason,  # type: ignore[arg-type]  # proto enum int
        response_code=RESPONSE_CODES[reason],
        replayed=replayed,
        policy_version=version,
        decided_at=decided_at,
    )
    exceeded = spend_limit_from_label(label)
    if exceeded is not None:
        response.exceeded_limit.CopyFrom(exceeded)
    return response


def _replayed(response: authorization_pb2.AuthorizeResponse) -> authorization_pb2.AuthorizeResponse:
    again = authorization_pb2.AuthorizeResponse()
    again.CopyFrom(response)
    again.replayed = True
    return again


script_args = _script_args
