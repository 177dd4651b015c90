"""Plain SQL migrations, applied in file-name order under a Postgres advisory lock.

Each file runs in its own transaction and is recorded in `schema_migrations` with its
checksum; a file that changed after it was applied stops start-up (migrations are append
only). Several processes starting at once serialize on the advisory lock, and all but the
first find nothing left to do."""

from __future__ import annotations

import hashlib
import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Arbitrary but fixed: the advisory lock key all Zentra processes agree on for migrations.
MIGRATION_LOCK_KEY = 0x5A454E54  # "ZENT"


class MigrationError(RuntimeError):
    pass


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration shipped with the package, in order."""
    folder = resources.files("authz_server.store") / "migrations"
    files = sorted((entry.name, entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".sql"))
    assert files, "no migrations shipped"
    return files


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Applies every pending migration; returns the names applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
        for name, sql in migration_files():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise MigrationError(f"migration {name} changed after it was applied; add a new file instead")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum)
            log.info("applied migration %s", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def migrate_url(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
