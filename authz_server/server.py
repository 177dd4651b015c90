"""The authz-server process: wiring, start-up, health, and graceful shutdown.

Start-up: migrate Postgres (under an advisory lock), load the Lua scripts, then serve.
Health (grpc.health.v1) is SERVING only while a probe finds Redis answering with our
scripts loaded and Postgres reachable; the probe reloads scripts Redis has lost.
Shutdown on SIGTERM/SIGINT: health NOT_SERVING, keep serving until no call has been in
flight for a moment (bounded), then stop with a grace period so in-flight calls finish.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from authz_server import metrics
from authz_server.auth import Authenticator
from authz_server.clock import Clock, SystemClock
from authz_server.config import Settings
from authz_server.decisions import Decider
from authz_server.lifecycle import Clearing, Lifecycle
from authz_server.metrics import TOMBSTONES_DROPPED, TOMBSTONES_PENDING, WORKER_RSS
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.rebuild import check_marker, ensure_projection
from authz_server.redis_state.scripts import Scripts
from authz_server.registration import add_generic_only, add_reflection
from authz_server.services.authorization import AuthorizationService
from authz_server.services.cards import CardService
from authz_server.services.clearing import ClearingService
from authz_server.services.ledger import LedgerService
from authz_server.services.reviews import ReviewService
from authz_server.services.rpc import InFlight, RpcContext
from authz_server.services.tenants import TenantService
from authz_server.store import tenants as tenant_store
from authz_server.store.db import create_pool
from authz_server.store.migrate import migrate
from zentra.cards.v1 import (
    authorization_pb2,
    authorization_pb2_grpc,
    card_pb2,
    card_pb2_grpc,
    clearing_pb2,
    clearing_pb2_grpc,
    ledger_pb2,
    ledger_pb2_grpc,
    review_pb2,
    review_pb2_grpc,
    tenant_pb2,
    tenant_pb2_grpc,
)

log = logging.getLogger(__name__)

HEALTH_PROBE_INTERVAL_S = 1.0  # how often Redis and Postgres are probed for health
HEALTH_PROBE_TIMEOUT_S = 1.0  # a probe slower than this marks the server NOT_SERVING
DRAIN_QUIET_S = 0.2  # shutdown waits until no call has been in flight for this long...
DRAIN_WAIT_MAX_S = 1.0  # ...but no longer than this, before stopping the server
TOMBSTONE_RETRY_INTERVAL_S = 0.2  # how often fail-closed answers waiting for Redis are retried
PERIODIC_STOP_WAIT_S = 5.0  # how long shutdown waits for the periodic tasks to end
# Allocations between young-generation collections (Python's default: 700). Each collection
# stops the worker for about 1 ms at 3,000 (measured: 0.85 ms on average); 20,000 made them 6-18
# ms, which showed in p99 whenever caches grew, for half the collector's CPU (under 1 % either way).
GC_GEN0_THRESHOLD = 3_000
# Every GC_FREEZE_INTERVAL_S what survived is collected once more (generations 0 and 1: what was
# made since the last freeze, a few milliseconds) and then frozen, out of the collector's reach.
# Without it the card policies and plans a worker caches (tens of thousands of objects per
# 10,000 cards) sat in the old generations, and each full collection stopped the worker for
# 200-360 ms: declines for SYSTEM_UNAVAILABLE and the benchmark's p99. Frozen objects are still
# freed by reference counting (a policy evicted from the cache); only a reference cycle among
# objects that were alive at a freeze and died later is never collected, and the hot path makes
# none but what a failing call's exception may (bounded by the calls in flight at a freeze).
GC_FREEZE_INTERVAL_S = 5.0
REDIS_WARM_CONNECTIONS = 8  # opened at start-up, before the first decision
REDIS_CONNECT_TIMEOUT_S = 1.0  # a connection attempt slower than this fails (and fails closed)

SERVICE_NAMES = (
    authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name,
    card_pb2.DESCRIPTOR.services_by_name["CardService"].full_name,
    clearing_pb2.DESCRIPTOR.services_by_name["ClearingService"].full_name,
    ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name,
    review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name,
    tenant_pb2.DESCRIPTOR.services_by_name["TenantService"].full_name,
)


def resident_memory_bytes() -> int:
    """This process's resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def redis_client(settings: Settings) -> aioredis.Redis:
    """A client on a blocking pool of fixed size: waiting for a connection is bounded by the
    decision budget (the call's own timeout), and nothing retries silently (a retry would
    re-send a write; the caller's retry is replay-safe instead)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_size,
        timeout=settings.admin_timeout_ms / 1000,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis(connection_pool=pool)


class AuthzServer:
    """One server process. `start()` then `wait_stopped()`; `shutdown()` drains it."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.port = 0
        self.health = health.aio.HealthServicer()
        self.in_flight = InFlight()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None
        self._stopped = asyncio.Event()
        self._shutting_down = False
        self._rebuild: asyncio.Task[None] | None = None

    async def start(self, reuse_port: bool = False) -> None:
        s = self.settings
        self.pool = await create_pool(s)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        self.redis = redis_client(s)
        self.keyspace = Keyspace(s.key_prefix, s.shard_count)
        self.scripts = Scripts.register(self.redis)
        self.decider = Decider(s, self.redis, self.scripts, self.keyspace, self.clock)
        self.clearing = Clearing(
            self.redis, self.pool, self.scripts, self.keyspace, self.clock, s.replay_retention_s,
            s.admin_timeout_ms / 1000, s.clearing_tolerance_bps,
        )  # fmt: skip
        self.lifecycle = Lifecycle(
            self.redis, self.scripts, self.keyspace, self.clock, s.replay_retention_s, s.admin_timeout_ms / 1000
        )
        authenticator = Authenticator(
            s.admin_token, lambda key_id: tenant_store.find_api_key(self.pool, key_id), s.api_key_cache_ttl_s
        )
        rpc_context = RpcContext(authenticator, self.in_flight)
        admin_timeout_s = s.admin_timeout_ms / 1000

        options = [
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.max_connection_age_ms", 300_000),
            ("grpc.max_connection_age_grace_ms", 30_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
        server = grpc.aio.server(options=options, maximum_concurrent_rpcs=s.max_concurrent_rpcs)
        authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(
            AuthorizationService(
                rpc_context, self.decider, self.pool, self.redis, self.keyspace, admin_timeout_s, self.lifecycle
            ),
            server,
        )
        # Only AuthorizationService's methods are registered methods; see registration.py.
        add_generic_only(
            clearing_pb2_grpc.add_ClearingServiceServicer_to_server, ClearingService(rpc_context, self.clearing), server
        )
        add_generic_only(
            ledger_pb2_grpc.add_LedgerServiceServicer_to_server,
            LedgerService(rpc_context, self.pool, admin_timeout_s),
            server,
        )
        add_generic_only(
            review_pb2_grpc.add_ReviewServiceServicer_to_server,
            ReviewService(
                rpc_context, self.pool, self.redis, self.keyspace, self.clock, admin_timeout_s, s.max_message_bytes // 2
            ),
            server,
        )
        add_generic_only(
            card_pb2_grpc.add_CardServiceServicer_to_server,
            CardService(rpc_context, self.pool, self.scripts, self.keyspace, admin_timeout_s),
            server,
        )
        add_generic_only(
            tenant_pb2_grpc.add_TenantServiceServicer_to_server,
            TenantService(rpc_context, self.pool, admin_timeout_s),
            server,
        )
        add_generic_only(health_pb2_grpc.add_HealthServicer_to_server, self.health, server)
        add_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        self.port = server.add_insecure_port(s.listen_addr)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {s.listen_addr}")
        await server.start()
        self._server = server
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._ensure_projection()
        await self._warm_redis_pool()
        await self._probe_health()
        self._tasks = [
            asyncio.create_task(self._run_health_probe(), name="health-probe"),
            asyncio.create_task(self._run_tombstones(), name="tombstones"),
            asyncio.create_task(self._run_metrics_sync(), name="metrics-sync"),
        ]
        log.info("authz-server listening on port %d", self.port)

    async def _warm_redis_pool(self) -> None:
        """Opens a few Redis connections before serving, so that the first decisions do not
        spend their budget connecting."""
        await asyncio.gather(
            *(self.redis.ping() for _ in range(min(REDIS_WARM_CONNECTIONS, self.settings.redis_pool_size)))
        )

    async def _ensure_projection(self) -> None:
        """Rebuilds the Redis projection from Postgres if its marker is missing (or waits for
        the process that is doing so); until then Authorize fails closed."""
        self.decider.ready = False
        await ensure_projection(
            self.pool, self.redis, self.keyspace, self.scripts, self.clock.now_ms(), self.settings.replay_retention_s
        )
        self.decider.ready = True

    async def _probe_health(self) -> None:
        status = health_pb2.HealthCheckResponse.SERVING
        try:
            async with asyncio.timeout(HEALTH_PROBE_TIMEOUT_S):
                shas = [script.sha for script in self.scripts.all()]
                if not all(await self.redis.script_exists(*shas)):
                    await self.scripts.load_all(self.redis)
                if not await check_marker(self.redis, self.keyspace):
                    # Redis lost the projection (restarted empty, flushed): stop deciding until rebuilt.
                    self.decider.ready = False
                    if self._rebuild is None or self._rebuild.done():
                        self._rebuild = asyncio.create_task(self._ensure_projection(), name="rebuild-projection")
                await self.pool.fetchval("SELECT 1")
        except Exception as error:
            log.warning("health probe failed: %s", type(error).__name__)
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        if not self.decider.ready:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        if self._shutting_down:
            return
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def _run_health_probe(self) -> None:
        while not self._shutting_down:  # see shutdown(): not stopped by cancellation alone
            await asyncio.sleep(HEALTH_PROBE_INTERVAL_S)
            await self._probe_health()
            WORKER_RSS.set(resident_memory_bytes())

    async def _run_metrics_sync(self) -> None:
        while not self._shutting_down:  # see shutdown(): not stopped by cancellation alone
            await asyncio.sleep(metrics.SYNC_INTERVAL_S)
            self.in_flight.sync_metrics()

    async def _run_tombstones(self) -> None:
        while not self._shutting_down:  # see shutdown(): not stopped by cancellation alone
            await asyncio.sleep(TOMBSTONE_RETRY_INTERVAL_S)
            TOMBSTONES_PENDING.set(len(self.decider.tombstones))
            if self.decider.tombstones:
                dropped_before = self.decider.tombstones_dropped
                await self.decider.flush_tombstones()
                TOMBSTONES_DROPPED.inc(self.decider.tombstones_dropped - dropped_before)

    async def shutdown(self) -> None:
        """Drains and stops: NOT_SERVING, wait for in-flight calls to settle, stop with grace."""
        if self._shutting_down:
            return
        self._shutting_down = True
        log.info("shutting down: draining %d in-flight calls", self.in_flight.count)
        await self.health.enter_graceful_shutdown()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + DRAIN_WAIT_MAX_S
        while loop.time() < give_up:
            await asyncio.sleep(DRAIN_QUIET_S)
            if self.in_flight.count == 0:
                break
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace_s)
        # The periodic tasks are cancelled, and also end at their next round on _shutting_down:
        # a cancellation can be lost in library code under Python 3.11 (asyncio.wait_for) or turn
        # into an error a task's loop catches, and a task that missed it must not keep this
        # process from stopping. Waited for at most PERIODIC_STOP_WAIT_S.
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=PERIODIC_STOP_WAIT_S)
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("%s ended with %r", task.get_name(), task.exception())
        if self.decider.tombstones:
            await self.decider.flush_tombstones()
        await self.decider.aclose()
        self.in_flight.sync_metrics()
        await self.redis.aclose()
        await self.pool.close()
        self._stopped.set()
        log.info("authz-server stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def serve(settings: Settings, reuse_port: bool = False) -> None:
    """Runs one server until SIGTERM or SIGINT, then drains it."""
    server = AuthzServer(settings)
    await server.start(reuse_port=reuse_port)
    # Everything allocated so far lives as long as the process: keep the collector off it; what
    # the worker keeps later is frozen as it goes.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    freezer = asyncio.create_task(freeze_periodically(), name="gc-freeze")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.shutdown()))
    await server.wait_stopped()
    freezer.cancel()


async def freeze_periodically() -> None:
    """A server process's garbage-collector routine (see GC_FREEZE_INTERVAL_S)."""
    while True:
        await asyncio.sleep(GC_FREEZE_INTERVAL_S)
        gc.collect(1)
        gc.freeze()
