"""Postings: which balanced ledger transaction each event produces (DESIGN §3 "Ledger
semantics"). A plain, declarative mapping — one small function per kind — that later issues
extend (reversal, expiry, clearing, refund). Every transaction id is derived from its source,
which is what makes posting idempotent."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

DEBIT, CREDIT = 1, 2
CUSTOMER = "customer_balance"
RESERVED = "reserved_balance"
SETTLEMENT = "settlement_account"

KIND_HOLD = "hold"
KIND_VOID_RELEASE = "void_release"
KIND_REVERSAL = "reversal"
KIND_CLEARING = "clearing"
KIND_EXPIRY = "expiry"
KIND_REFUND = "refund"


@dataclass(frozen=True, slots=True)
class Entry:
    account: str
    account_ref: str
    direction: int
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Transaction:
    tenant_id: str
    transaction_id: str
    kind: str
    source_id: str
    authorization_id: str
    entries: tuple[Entry, ...]


def transaction_id(kind: str, source_id: str) -> str:
    return f"{kind}:{source_id}"


def assert_balanced(transaction: Transaction) -> None:
    """Debits equal credits per currency, amounts positive: checked before anything is written
    (the database checks again at commit)."""
    totals: dict[str, int] = defaultdict(int)
    for entry in transaction.entries:
        assert entry.amount_minor > 0, (transaction.transaction_id, entry)
        totals[entry.currency] += entry.amount_minor if entry.direction == DEBIT else -entry.amount_minor
    assert len(transaction.entries) >= 2 and not any(totals.values()), (
        transaction.transaction_id,
        dict(totals),
    )


def _move(
    tenant_id: str,
    kind: str,
    source_id: str,
    authorization_id: str,
    account_ref: str,
    amount_minor: int,
    currency: str,
    debit: str,
    credit: str,
) -> Transaction:
    transaction = Transaction(
        tenant_id, transaction_id(kind, source_id), kind, source_id, authorization_id,
        (
            Entry(debit, account_ref, DEBIT, amount_minor, currency),
            Entry(credit, account_ref, CREDIT, amount_minor, currency),
        ),
    )  # fmt: skip
    assert_balanced(transaction)
    return transaction


def posting_for_approval(
    tenant_id: str,
    authorization_id: str,
    account_ref: str,
    amount_minor: int,
    currency: str,
    holding_authorization_id: str = "",
) -> Transaction:
    """approve X: debit customer_balance X, credit reserved_balance X (the hold). An increment's
    hold is posted under the authorization whose hold it joined (`holding_authorization_id`)."""
    return _move(tenant_id, KIND_HOLD, authorization_id, holding_authorization_id or authorization_id, account_ref,
                 amount_minor, currency, CUSTOMER, RESERVED)  # fmt: skip


def posting_for_void(
    tenant_id: str, authorization_id: str, account_ref: str, amount_minor: int, currency: str
) -> Transaction:
    """A voided approval releases its whole hold: debit reserved_balance, credit customer_balance."""
    return _move(tenant_id, KIND_VOID_RELEASE, authorization_id, authorization_id, account_ref, amount_minor,
                 currency, RESERVED, CUSTOMER)  # fmt: skip


def posting_for_reversal(
    tenant_id: str, reversal_id: str, authorization_id: str, account_ref: str, amount_minor: int, currency: str
) -> Transaction:
    """reverse Y: debit reserved_balance Y, credit customer_balance Y."""
    return _move(tenant_id, KIND_REVERSAL, reversal_id, authorization_id, account_ref, amount_minor, currency,
                 RESERVED, CUSTOMER)  # fmt: skip


def posting_for_clearing(
    tenant_id: str,
    clearing_id: str,
    authorization_id: str,
    account_ref: str,
    currency: str,
    from_hold_minor: int,
    from_balance_minor: int,
    released_minor: int,
) -> Transaction:
    """clear C against a hold H: debit reserved min(C,H), credit settlement min(C,H); beyond
    the hold debit customer C-H, credit settlement C-H; on the final clearing the unused hold
    goes back: debit reserved, credit customer. A force post or late capture is a clear against
    H = 0 (all from_balance)."""
    legs = [
        (from_hold_minor, RESERVED, SETTLEMENT),
        (from_balance_minor, CUSTOMER, SETTLEMENT),
        (released_minor, RESERVED, CUSTOMER),
    ]
    entries = tuple(
        entry
        for amount, debit, credit in legs
        if amount > 0
        for entry in (
            Entry(debit, account_ref, DEBIT, amount, currency),
            Entry(credit, account_ref, CREDIT, amount, currency),
        )
    )
    transaction = Transaction(
        tenant_id, transaction_id(KIND_CLEARING, clearing_id), KIND_CLEARING, clearing_id, authorization_id, entries
    )
    assert_balanced(transaction)
    return transaction


def posting_for_refund(
    tenant_id: str, clearing_id: str, authorization_id: str, account_ref: str, amount_minor: int, currency: str
) -> Transaction:
    """refund R: debit settlement_account R, credit customer_balance R."""
    return _move(tenant_id, KIND_REFUND, clearing_id, authorization_id, account_ref, amount_minor, currency,
                 SETTLEMENT, CUSTOMER)  # fmt: skip


def posting_for_expiry(
    tenant_id: str, authorization_id: str, account_ref: str, amount_minor: int, currency: str
) -> Transaction:
    """expire Y: debit reserved_balance Y, credit customer_balance Y."""
    return _move(tenant_id, KIND_EXPIRY, authorization_id, authorization_id, account_ref, amount_minor, currency,
                 RESERVED, CUSTOMER)  # fmt: skip
