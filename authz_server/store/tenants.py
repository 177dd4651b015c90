"""Tenants and their API keys in Postgres."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from authz_server.errors import AlreadyExists, NotFound


@dataclass(frozen=True, slots=True)
class TenantRow:
    tenant_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    key_id: str
    tenant_id: str
    role: int
    label: str
    secret_hash: bytes
    created_at: datetime
    revoked: bool


async def create_tenant(pool: asyncpg.Pool, tenant_id: str, name: str) -> TenantRow:
    row = await pool.fetchrow(
        """INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)
           ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id, name, created_at""",
        tenant_id,
        name,
    )
    if row is None:
        raise AlreadyExists(f"tenant {tenant_id!r} already exists")
    return TenantRow(row["tenant_id"], row["name"], row["created_at"])


async def create_api_key(
    pool: asyncpg.Pool, key_id: str, tenant_id: str, role: int, label: str, secret_hash: bytes
) -> ApiKeyRow:
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM tenants WHERE tenant_id = $1", tenant_id) is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        row = await conn.fetchrow(
            """INSERT INTO api_keys (key_id, tenant_id, role, label, secret_hash)
               VALUES ($1, $2, $3, $4, $5) RETURNING created_at""",
            key_id,
            tenant_id,
            role,
            label,
            secret_hash,
        )
    return ApiKeyRow(key_id, tenant_id, role, label, secret_hash, row["created_at"], False)


async def find_api_key(pool: asyncpg.Pool, key_id: str) -> ApiKeyRow | None:
    row = await pool.fetchrow(
        """SELECT key_id, tenant_id, role, label, secret_hash, created_at, revoked_at IS NOT NULL AS revoked
           FROM api_keys WHERE key_id = $1""",
        key_id,
    )
    if row is None:
        return None
    return ApiKeyRow(
        row["key_id"],
        row["tenant_id"],
        row["role"],
        row["label"],
        bytes(row["secret_hash"]),
        row["created_at"],
        row["revoked"],
    )
