"""Backing services and an in-process authz-server for the tests.

The server runs in a background thread on its own uvloop event loop, listening on a free
port; the tests talk to it over real gRPC with blocking stubs. Redis and Postgres are the
private embedded servers unless REDIS_URL / DATABASE_URL are set, in which case a fresh
database is created on that Postgres and every Redis key gets a run-unique prefix."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
import uvloop

from authz_server.clock import SettableClock
from authz_server.config import Settings
from authz_server.server import AuthzServer
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis
from ledger_writer.config import LedgerSettings
from ledger_writer.consumer import LedgerWriter

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)
# 2026-03-18T12:00:00Z, a Wednesday: tests move the clock from here.
EPOCH_MS = 1_773_835_200_000


@dataclass
class Backing:
    redis_url: str
    database_url: str
    key_prefix: str
    redis: EmbeddedRedis | None  # None when REDIS_URL was given


@contextmanager
def backing_services(data_dir: Path) -> Iterator[Backing]:
    """Redis and Postgres for a test session (embedded unless the env names them)."""
    embedded_redis = embedded_pg = None
    created_db: tuple[str, str] | None = None
    try:
        if os.environ.get("REDIS_URL"):
            redis_url = os.environ["REDIS_URL"]
        else:
            embedded_redis = EmbeddedRedis(data_dir / "redis")
            embedded_redis.start()
            redis_url = embedded_redis.url
        if os.environ.get("DATABASE_URL"):
            admin_url = os.environ["DATABASE_URL"]
            name = "zentra_test_" + secrets.token_hex(4)
            asyncio.run(_admin_sql(admin_url, f'CREATE DATABASE "{name}"'))
            created_db = (admin_url, name)
            database_url = _with_database(admin_url, name)
        else:
            embedded_pg = EmbeddedPostgres(data_dir / "pg")
            embedded_pg.start()
            database_url = embedded_pg.url
        yield Backing(redis_url, database_url, "zt" + secrets.token_hex(3), embedded_redis)
    finally:
        if created_db is not None:
            asyncio.run(_admin_sql(created_db[0], f'DROP DATABASE IF EXISTS "{created_db[1]}" WITH (FORCE)'))
        if embedded_redis is not None:
            embedded_redis.stop()
        if embedded_pg is not None:
            embedded_pg.stop()


async def _admin_sql(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def server_settings(backing: Backing, **overrides: object) -> Settings:
    settings = Settings(
        redis_url=backing.redis_url,
        database_url=backing.database_url,
        listen_addr="127.0.0.1:0",
        admin_token=ADMIN_TOKEN,
        metrics_port=0,
        key_prefix=backing.key_prefix,
        api_key_cache_ttl_s=30,
    )
    settings = replace(settings, **overrides)  # type: ignore[arg-type]
    settings.validate()
    return settings


class ThreadedServer:
    """An AuthzServer on its own event loop thread. `target` is its host:port."""

    def __init__(self, settings: Settings, clock: SettableClock) -> None:
        self.settings = settings
        self.clock = clock
        self.loop = uvloop.new_event_loop()
        self.server = AuthzServer(settings, clock)
        self._thread = threading.Thread(target=self.loop.run_forever, name="authz-server", daemon=True)
        self.loop_errors: list[dict[str, object]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))

    def start(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(60)
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def call(self, coro, timeout_s: float = 30):  # type: ignore[no-untyped-def]
        """Runs a coroutine on the server's loop (e.g. to inspect its Redis) and returns its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        try:
            self.call(self.server.shutdown(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def ledger_settings(backing: Backing, **overrides: object) -> LedgerSettings:
    settings = LedgerSettings(
        redis_url=backing.redis_url,
        database_url=backing.database_url,
        key_prefix=backing.key_prefix,
        metrics_port=0,
        claim_idle_ms=1000,
    )
    return replace(settings, **overrides)  # type: ignore[arg-type]


class Ledger:
    """A LedgerWriter driven by the test on the server's event loop: `drain()` posts
    everything the streams hold now."""

    def __init__(self, server: ThreadedServer, settings: LedgerSettings) -> None:
        self.server = server
        self.settings = settings
        self.writer = server.call(self._create())

    async def _create(self) -> LedgerWriter:
        pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=4)
        redis = aioredis.Redis.from_url(self.settings.redis_url)
        writer = LedgerWriter(self.settings, redis, pool)
        await writer.ensure_groups()
        return writer

    def drain(self) -> int:
        return int(self.server.call(self.writer.drain(), 120))

    def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return list(self.server.call(self.writer.pool.fetch(sql, *args)))

    def close(self) -> None:
        self.server.call(self.writer.redis.aclose())
        self.server.call(self.writer.pool.close())
