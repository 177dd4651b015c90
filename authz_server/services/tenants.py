"""TenantService: tenants and their API keys, for the bootstrap admin token only."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from authz_server import validation
from authz_server.auth import Principal, new_api_key_secret
from authz_server.services.rpc import RpcContext, rpc
from authz_server.store import tenants as store
from zentra.cards.v1 import tenant_pb2, tenant_pb2_grpc

_SVC = "/zentra.cards.v1.TenantService/"


def _timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


class TenantService(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self, rpc_context: RpcContext, pool: asyncpg.Pool, admin_timeout_s: float) -> None:
        self.rpc_context = rpc_context
        self._pool = pool
        self._timeout_s = admin_timeout_s

    @rpc(_SVC + "CreateTenant")
    async def CreateTenant(
        self, request: tenant_pb2.CreateTenantRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> tenant_pb2.Tenant:
        """Creates the tenant; ALREADY_EXISTS if its id is taken."""
        validation.validate_create_tenant(request)
        async with asyncio.timeout(self._timeout_s):
            row = await store.create_tenant(self._pool, request.tenant_id, request.name)
        return tenant_pb2.Tenant(tenant_id=row.tenant_id, name=row.name, created_at=_timestamp(row.created_at))

    @rpc(_SVC + "CreateApiKey")
    async def CreateApiKey(
        self, request: tenant_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> tenant_pb2.ApiKey:
        """Creates a key; the secret is in this answer only. NOT_FOUND for an unknown tenant."""
        validation.validate_create_api_key(request)
        key_id, secret, secret_hash = new_api_key_secret()
        async with asyncio.timeout(self._timeout_s):
            row = await store.create_api_key(
                self._pool, key_id, request.tenant_id, request.role, request.label, secret_hash
            )
        return tenant_pb2.ApiKey(
            key_id=row.key_id,
            tenant_id=row.tenant_id,
            role=row.role,  # type: ignore[arg-type]  # proto enum int
            secret=secret,
            label=row.label,
            created_at=_timestamp(row.created_at),
        )
