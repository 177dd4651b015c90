"""The asyncpg pool of a process: bounded, with timeouts, and one place that turns a
database failure into `Unavailable`."""

from __future__ import annotations

import asyncpg

from authz_server.config import Settings

# Longest a new connection may take to establish before the call fails.
CONNECT_TIMEOUT_S = 5.0


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """A pool of at most settings.pg_pool_size_max connections. Statement caching stays on:
    we connect to Postgres directly (see PITFALLS: pgbouncer needs it off)."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=settings.pg_pool_size_max,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=settings.admin_timeout_ms / 1000,
    )
    assert pool is not None
    return pool


# What a failing Postgres raises; callers map it to UNAVAILABLE.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)
