"""How services are added to a grpc.aio server: only the hot path's methods as registered methods.

grpc.aio's server keeps one pending "request call" per registered method (plus one for every
method it dispatches generically), and each incoming call is taken by an `asyncio.wait` over all
of them: every call pays a done-callback added and removed, and a coroutine check, per
registered method of the server (grpc/_cython/_cygrpc/aio/server.pyx.pxi, _server_main_loop).
With every service registered that was 21 futures per call, for AuthorizationService's three
methods that carry nearly all of the traffic.

So AuthorizationService keeps its registered methods, and every other service (cards, tenants,
reviews, clearing, ledger, health, reflection) is dispatched generically, by method name from
one shared pending call: a few tenths of a microsecond more for those calls, about 17 futures
fewer to wait on for every Authorize. The null server of `make bench` adds its services the same
way, so that the two stay comparable (loadtest/null_server.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

S = TypeVar("S")


class GenericOnly:
    """A server as the generated `add_*Servicer_to_server` functions see it: their generic
    handler is added, their registered-method handlers are not."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(handlers))

    def add_registered_method_handlers(self, service_name: str, handlers: Mapping[str, Any]) -> None:
        """Not registered: the generic handler added alongside serves these methods."""


def add_generic_only(add: Callable[[S, Any], None], servicer: S, server: grpc.aio.Server) -> None:
    """`add(servicer, server)` (a generated add_*Servicer_to_server), dispatched generically."""
    add(servicer, GenericOnly(server))


def add_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Server reflection (v1alpha, what grpcurl 1.8 and ghz speak), dispatched generically;
    what reflection.enable_server_reflection does for a grpc.aio server."""
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(tuple(service_names)), GenericOnly(server)
    )
