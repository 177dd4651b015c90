"""AuthorizationService: the hot path."""

from __future__ import annotations

import time

import grpc

from authz_server import metrics, validation
from authz_server.auth import Principal
from authz_server.decisions import Decider
from authz_server.services.rpc import RpcContext, rpc
from zentra.cards.v1 import authorization_pb2, authorization_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

_SVC = "/zentra.cards.v1.AuthorizationService/"


class AuthorizationService(authorization_pb2_grpc.AuthorizationServiceServicer):
    def __init__(self, rpc_context: RpcContext, decider: Decider) -> None:
        self.rpc_context = rpc_context
        self._decider = decider

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
        metrics.DECISIONS.labels(t.Decision.Name(response.decision), t.Reason.Name(response.reason)).inc()
        if response.replayed:
            metrics.REPLAYS.inc()
        if answer.fail_closed_cause is not None:
            metrics.FAIL_CLOSED.labels(answer.fail_closed_cause).inc()
        if answer.redis_seconds:
            metrics.REDIS_STEP_SECONDS.observe(answer.redis_seconds)
        if answer.refreshed_policy:
            metrics.POLICY_REFRESHES.inc()
        metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
        return response
