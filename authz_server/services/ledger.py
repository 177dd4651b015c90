"""LedgerService: balances of an account as the ledger writer has posted them (Postgres)."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc

from authz_server import validation
from authz_server.auth import Principal
from authz_server.services.rpc import RpcContext, rpc
from authz_server.store import authorizations as store
from zentra.cards.v1 import ledger_pb2, ledger_pb2_grpc

_SVC = "/zentra.cards.v1.LedgerService/"


class LedgerService(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, rpc_context: RpcContext, pool: asyncpg.Pool, admin_timeout_s: float) -> None:
        assert admin_timeout_s > 0, f"admin_timeout_s must be > 0, got {admin_timeout_s}"
        self.rpc_context = rpc_context
        self._pool = pool
        self._timeout_s = admin_timeout_s

    @rpc(_SVC + "GetAccountBalances")
    async def GetAccountBalances(
        self,
        request: ledger_pb2.GetAccountBalancesRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> ledger_pb2.AccountBalances:
        """Credit-normal balances (credits minus debits) of one account_ref of the caller's
        tenant, one entry per currency it has postings in, ordered by currency; an account
        without postings (or another tenant's) answers an empty list. Holds not yet posted by
        the ledger writer are not included. A malformed account_ref is INVALID_ARGUMENT;
        Postgres not answering is UNAVAILABLE."""
        account_ref = validation.require_id("account_ref", request.account_ref)
        async with asyncio.timeout(self._timeout_s):
            rows = await store.account_balances(self._pool, principal.tenant_id, account_ref)
        return ledger_pb2.AccountBalances(
            account_ref=account_ref,
            balances=[
                ledger_pb2.CurrencyBalances(
                    currency=r.currency,
                    customer_balance_minor=r.customer_balance_minor,
                    reserved_balance_minor=r.reserved_balance_minor,
                    settlement_minor=r.settlement_minor,
                )
                for r in rows
            ],
        )
