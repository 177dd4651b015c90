"""Only AuthorizationService's methods are registered methods of the gRPC server (every
registered method is one more future grpc.aio waits on for every call; see
authz_server/registration.py), and the services dispatched generically still answer."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc.aio._server import Server as AioServer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from authz_server.clock import SettableClock
from authz_server.registration import GenericOnly
from authz_server.server import SERVICE_NAMES
from tests.support.api import Api, bearer
from tests.support.stack import EPOCH_MS, Backing, ThreadedServer, server_settings
from zentra.cards.v1 import card_pb2
from zentra.cards.v1 import types_pb2 as t


def test_only_the_authorization_service_is_registered(backing: Backing, monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[str] = []
    register = AioServer.add_registered_method_handlers

    def recording(self: AioServer, service_name: str, handlers: dict[str, Any]) -> None:
        registered.append(service_name)
        register(self, service_name, handlers)

    monkeypatch.setattr(AioServer, "add_registered_method_handlers", recording)
    server = ThreadedServer(server_settings(backing), SettableClock(EPOCH_MS)).start()
    api = Api(server.target)
    try:
        assert registered == ["zentra.cards.v1.AuthorizationService"]
        # The generically dispatched services answer: a tenant and a card (TenantService and
        # CardService), a purchase (registered), health and reflection.
        tenant = api.new_tenant()
        card = api.issue_card(tenant)
        got = api.cards.GetCard(card_pb2.GetCardRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
        assert got.card_id == card.card_id
        assert api.authorize(tenant.processor, card.card_id, 100).decision == t.APPROVE
        with grpc.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            listed = {service.name for reply in replies for service in reply.list_services_response.service}
        assert set(SERVICE_NAMES) <= listed
        assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
    finally:
        api.close()
        server.stop()


def test_generic_only_adds_the_generic_handler_and_not_the_registered_methods() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.generic: list[object] = []
            self.registered: list[str] = []

        def add_generic_rpc_handlers(self, handlers: tuple[object, ...]) -> None:
            self.generic.extend(handlers)

        def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
            self.registered.append(name)

    recorder = Recorder()
    health_pb2_grpc.add_HealthServicer_to_server(health_pb2_grpc.HealthServicer(), GenericOnly(recorder))  # type: ignore[arg-type]
    assert len(recorder.generic) == 1
    assert recorder.registered == []
