"""CardService: issue cards and change their state and controls. Every change is written to
Postgres first, then to the Redis projection, before the call answers, so the very next
Authorize (in any process) decides against it. If the projection write fails after the
Postgres commit the call answers UNAVAILABLE; retrying it (any card call re-projects) heals
the projection."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from authz_server import metrics, validation
from authz_server.auth import Principal
from authz_server.controls import Controls, assign_scopes, controls_from_proto, controls_to_proto
from authz_server.errors import FailedPrecondition
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.projection import project_card
from authz_server.redis_state.scripts import Scripts
from authz_server.services.rpc import RpcContext, rpc
from authz_server.store import cards as store
from authz_server.store.cards import CardRow
from zentra.cards.v1 import card_pb2, card_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

_SVC = "/zentra.cards.v1.CardService/"
INITIAL_POLICY_VERSION = 1


def _timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def card_to_proto(card: CardRow) -> card_pb2.Card:
    return card_pb2.Card(
        card_id=card.card_id,
        tenant_id=card.tenant_id,
        customer_ref=card.customer_ref,
        account_ref=card.account_ref,
        currency=card.currency,
        state=card.state,  # type: ignore[arg-type]  # proto enum int
        spend_controls=controls_to_proto(card.controls),
        policy_version=card.policy_version,
        created_at=_timestamp(card.created_at),
        updated_at=_timestamp(card.updated_at),
    )


def _new_card_id() -> str:
    return "card_" + secrets.token_hex(10)


def _to_state(target: int, allowed_from: frozenset[int]) -> store.Transition:
    """A transition to `target`: no change if already there, FAILED_PRECONDITION out of CLOSED."""

    def transition(card: CardRow) -> tuple[int, Controls] | None:
        if card.state == target:
            return None
        if card.state == t.CLOSED:
            raise FailedPrecondition(f"card {card.card_id!r} is CLOSED; closing is final")
        assert card.state in allowed_from, (card.state, target)
        return target, card.controls

    return transition


class CardService(card_pb2_grpc.CardServiceServicer):
    def __init__(
        self,
        rpc_context: RpcContext,
        pool: asyncpg.Pool,
        scripts: Scripts,
        keyspace: Keyspace,
        admin_timeout_s: float,
    ) -> None:
        self.rpc_context = rpc_context
        self._pool = pool
        self._scripts = scripts
        self._keys = keyspace
        self._timeout_s = admin_timeout_s

    async def _project(self, card: CardRow) -> card_pb2.Card:
        written = await project_card(self._scripts, self._keys, card)
        metrics.PROJECTION_WRITES.labels("written" if written else "current").inc()
        return card_to_proto(card)

    @rpc(_SVC + "IssueCard")
    async def IssueCard(
        self, request: card_pb2.IssueCardRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> card_pb2.Card:
        """Issues an ACTIVE card at policy_version 1; idempotent on idempotency_key."""
        validation.validate_issue_card(request)
        request_hash = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        card_id = _new_card_id()
        now = datetime.now(UTC)
        controls = assign_scopes(controls_from_proto(request.spend_controls), None, INITIAL_POLICY_VERSION)
        new_card = CardRow(
            principal.tenant_id, card_id, request.customer_ref, request.account_ref, request.currency,
            t.ACTIVE,
            controls, INITIAL_POLICY_VERSION, self._keys.shard_of(card_id), now, now,
        )  # fmt: skip
        async with asyncio.timeout(self._timeout_s):
            card, _ = await store.issue_card(
                self._pool, new_card, request.idempotency_key, request_hash, principal.key_id
            )
            return await self._project(card)

    @rpc(_SVC + "GetCard")
    async def GetCard(
        self, request: card_pb2.GetCardRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> card_pb2.Card:
        """The card as Postgres has it; NOT_FOUND for a missing card or another tenant's."""
        validation.require_id("card_id", request.card_id)
        async with asyncio.timeout(self._timeout_s):
            return card_to_proto(await store.get_card(self._pool, principal.tenant_id, request.card_id))

    @rpc(_SVC + "UpdateSpendControls")
    async def UpdateSpendControls(
        self,
        request: card_pb2.UpdateSpendControlsRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> card_pb2.Card:
        """Replaces the controls as a whole. Same controls again: no version bump."""
        validation.validate_update_controls(request)
        wanted = controls_from_proto(request.spend_controls)

        def transition(card: CardRow) -> tuple[int, Controls] | None:
            if card.state == t.CLOSED:
                raise FailedPrecondition(f"card {card.card_id!r} is CLOSED; its controls cannot change")
            controls = assign_scopes(wanted, card.controls, card.policy_version + 1)
            if assign_scopes(wanted, card.controls, card.policy_version) == card.controls:
                return None
            return card.state, controls

        return await self._change(request.card_id, transition, "update_controls", "", principal)

    @rpc(_SVC + "FreezeCard")
    async def FreezeCard(
        self, request: card_pb2.CardActionRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> card_pb2.Card:
        """ACTIVE → FROZEN; the next Authorize declines CARD_FROZEN."""
        validation.validate_card_action(request)
        transition = _to_state(t.FROZEN, frozenset({t.ACTIVE}))
        return await self._change(request.card_id, transition, "freeze", request.reason, principal)

    @rpc(_SVC + "UnfreezeCard")
    async def UnfreezeCard(
        self, request: card_pb2.CardActionRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> card_pb2.Card:
        """FROZEN → ACTIVE."""
        validation.validate_card_action(request)
        transition = _to_state(t.ACTIVE, frozenset({t.FROZEN}))
        return await self._change(request.card_id, transition, "unfreeze", request.reason, principal)

    @rpc(_SVC + "CloseCard")
    async def CloseCard(
        self, request: card_pb2.CardActionRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> card_pb2.Card:
        """ACTIVE or FROZEN → CLOSED, for good."""
        validation.validate_card_action(request)
        transition = _to_state(t.CLOSED, frozenset({t.ACTIVE, t.FROZEN}))
        return await self._change(request.card_id, transition, "close", request.reason, principal)

    async def _change(
        self, card_id: str, transition: store.Transition, action: str, reason: str, principal: Principal
    ) -> card_pb2.Card:
        async with asyncio.timeout(self._timeout_s):
            card = await store.change_card(
                self._pool, principal.tenant_id, card_id, transition, action, reason, principal.key_id
            )
            return await self._project(card)
