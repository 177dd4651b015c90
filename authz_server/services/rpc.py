"""The one place where errors become gRPC statuses, plus the per-RPC bookkeeping every
handler shares: authentication and role check, in-flight count, metrics."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import grpc
from redis.exceptions import RedisError

from authz_server import metrics
from authz_server.auth import Authenticator, Principal
from authz_server.errors import DomainError, Unavailable

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext, Principal], Awaitable[Resp]]

# Failures of a dependency that mean "try again later", not "you are wrong".
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
    OSError,
    TimeoutError,
)


class InFlight:
    """Counts RPCs being handled, so shutdown can wait for them to drain, and RPCs completed by
    this process; `sync_metrics` hands both to Prometheus (see metrics.SYNC_INTERVAL_S)."""

    def __init__(self) -> None:
        self.count = 0
        self.completed = 0
        self._completed_synced = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._worker_rpcs = metrics.WORKER_RPCS.labels(os.environ.get("AUTHZ_WORKER_INDEX", "0"))

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        self.completed += 1
        if self.count == 0:
            self.idle.set()

    def sync_metrics(self) -> None:
        metrics.TALLY.flush()
        metrics.IN_FLIGHT.set(self.count)
        completed = self.completed
        if completed > self._completed_synced:
            self._worker_rpcs.inc(completed - self._completed_synced)
            self._completed_synced = completed


class RpcContext:
    """What every servicer needs for the shared bookkeeping."""

    def __init__(self, authenticator: Authenticator, in_flight: InFlight) -> None:
        self.authenticator = authenticator
        self.in_flight = in_flight


def rpc(
    method: str,
) -> Callable[[Handler[Req, Resp]], Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]]:
    """Wraps a servicer method: authenticates and checks the role for `method` (full gRPC
    name), then runs the handler; DomainErrors and dependency failures become statuses."""
    short = method.rsplit("/", 1)[-1]
    handled: dict[grpc.StatusCode, Any] = {}  # RPCS' children by status code, made on first use

    def wrap(handler: Handler[Req, Resp]) -> Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
        @functools.wraps(handler)
        async def call(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
            shared: RpcContext = self.rpc_context
            shared.in_flight.enter()
            code = grpc.StatusCode.OK
            message = ""
            try:
                principal = await shared.authenticator.authorize(method, context.invocation_metadata())
                return await handler(self, request, context, principal)
            except DomainError as error:
                code, message = error.code, str(error)
            except DEPENDENCY_ERRORS as error:
                log.warning("%s: dependency failure: %s", short, type(error).__name__)
                code, message = Unavailable.code, "a dependency is unavailable; retry the call"
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                log.exception("%s: unexpected error", short)
                code, message = grpc.StatusCode.INTERNAL, "internal error"
            finally:
                child = handled.get(code)
                if child is None:
                    child = handled[code] = metrics.RPCS.labels(short, code.name)
                metrics.TALLY.inc(child)
                shared.in_flight.leave()
            await context.abort(code, message)
            raise AssertionError("unreachable: context.abort raises")

        return call

    return wrap
