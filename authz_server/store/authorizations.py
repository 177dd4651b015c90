"""Authorizations and balances as the ledger writer posted them in Postgres: read-only.

The authz-server never writes these tables; the ledger writer does (ledger_writer/store.py).
Every query is scoped to the caller's tenant, so another tenant's rows are simply not there."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_ACCOUNTS = ("customer_balance", "reserved_balance", "settlement_account")
_DEBIT, _CREDIT = 1, 2


@dataclass(frozen=True, slots=True)
class RuleRow:
    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class EntryRow:
    transaction_id: str
    account: str  # one of _ACCOUNTS
    account_ref: str
    direction: int  # 1 DEBIT, 2 CREDIT (ledger_pb2.Direction)
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class AuthorizationRow:
    """One decision as recorded, with every ledger entry posted for it."""

    tenant_id: str
    authorization_id: str
    card_id: str
    account_ref: str | None  # None when the card was not found
    amount_minor: int
    currency: str
    merchant: dict[str, str]  # id, name, mcc, country, city
    channel: int
    decision: int
    reason: int
    response_code: str
    policy_version: int
    exceeded_limit: str  # label, see authz_server.decisions.limit_label; "" if none
    rules: tuple[RuleRow, ...]
    status: str
    actor_key_id: str
    decided_at: datetime
    recorded_at: datetime
    entries: tuple[EntryRow, ...]
    remaining_hold_minor: int
    incremental_of: str


@dataclass(frozen=True, slots=True)
class CurrencyBalanceRow:
    """Credit-normal balances (credits minus debits) of one account in one currency."""

    currency: str
    customer_balance_minor: int
    reserved_balance_minor: int
    settlement_minor: int  # the tenant's settlement_account, all account_refs


def _json(value: str | list[object] | dict[str, object]) -> object:
    # The pool has no jsonb codec, so jsonb arrives as text; accept decoded values as well.
    return json.loads(value) if isinstance(value, str) else value


def _entry(row: asyncpg.Record) -> EntryRow:
    assert row["account"] in _ACCOUNTS, row["account"]
    assert row["direction"] in (_DEBIT, _CREDIT), row["direction"]
    assert row["amount_minor"] > 0, row["amount_minor"]
    return EntryRow(
        row["transaction_id"],
        row["account"],
        row["account_ref"],
        row["direction"],
        row["amount_minor"],
        row["currency"].strip(),
    )


async def find_authorization(pool: asyncpg.Pool, tenant_id: str, authorization_id: str) -> AuthorizationRow | None:
    """The tenant's recorded authorization with its ledger entries (by transaction, then line),
    or None if the ledger writer has not recorded it. One snapshot: the row and its entries are
    read in one repeatable-read transaction, so a posting landing in between is seen whole or
    not at all."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            """SELECT tenant_id, authorization_id, card_id, account_ref, amount_minor, currency, merchant, channel,
                      decision, reason, response_code, policy_version, exceeded_limit, rules, status, actor_key_id,
                      decided_at, recorded_at, remaining_hold_minor, incremental_of
               FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2""",
            tenant_id,
            authorization_id,
        )
        if row is None:
            return None
        # Transactions in the order they were posted; ids break ties within one batch.
        entries = await conn.fetch(
            """SELECT e.transaction_id, e.account, e.account_ref, e.direction, e.amount_minor, e.currency
               FROM ledger_transactions x
               JOIN ledger_entries e USING (tenant_id, transaction_id)
               WHERE x.tenant_id = $1 AND x.authorization_id = $2
               ORDER BY x.created_at, x.transaction_id, e.line""",
            tenant_id,
            authorization_id,
        )
    merchant = _json(row["merchant"])
    rules = _json(row["rules"])
    assert isinstance(merchant, dict) and isinstance(rules, list), (type(merchant), type(rules))
    return AuthorizationRow(
        tenant_id=row["tenant_id"],
        authorization_id=row["authorization_id"],
        card_id=row["card_id"],
        account_ref=row["account_ref"],
        amount_minor=row["amount_minor"],
        currency=row["currency"].strip(),
        merchant={k: str(v) for k, v in merchant.items()},
        channel=row["channel"],
        decision=row["decision"],
        reason=row["reason"],
        response_code=row["response_code"],
        policy_version=row["policy_version"],
        exceeded_limit=row["exceeded_limit"],
        rules=tuple(RuleRow(str(r["rule"]), bool(r["passed"]), str(r["detail"])) for r in rules),
        status=row["status"],
        actor_key_id=row["actor_key_id"],
        decided_at=row["decided_at"],
        recorded_at=row["recorded_at"],
        entries=tuple(_entry(e) for e in entries),
        remaining_hold_minor=row["remaining_hold_minor"],
        incremental_of=row["incremental_of"] or "",
    )


async def account_balances(pool: asyncpg.Pool, tenant_id: str, account_ref: str) -> list[CurrencyBalanceRow]:
    """Credit-normal balances of the tenant's `account_ref`, one row per currency the account
    has entries in, ordered by currency; an account without entries has no rows. The
    settlement figure is the tenant's settlement_account total in that currency."""
    rows = await pool.fetch(
        """WITH own AS (
               SELECT currency,
                      sum(CASE WHEN account = 'customer_balance' THEN signed ELSE 0 END)::bigint AS customer,
                      sum(CASE WHEN account = 'reserved_balance' THEN signed ELSE 0 END)::bigint AS reserved
               FROM (SELECT currency, account,
                            CASE direction WHEN 2 THEN amount_minor ELSE -amount_minor END AS signed
                     FROM ledger_entries WHERE tenant_id = $1 AND account_ref = $2) e
               GROUP BY currency
           )
           SELECT own.currency, own.customer, own.reserved,
                  COALESCE((SELECT sum(CASE s.direction WHEN 2 THEN s.amount_minor ELSE -s.amount_minor END)
                            FROM ledger_entries s
                            WHERE s.tenant_id = $1 AND s.account = 'settlement_account'
                              AND s.currency = own.currency), 0)::bigint AS settlement
           FROM own ORDER BY own.currency""",
        tenant_id,
        account_ref,
    )
    return [CurrencyBalanceRow(r["currency"].strip(), r["customer"], r["reserved"], r["settlement"]) for r in rows]
