"""Ledger invariants (DESIGN §5.2-§5.4) as reusable checks over Postgres."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from zentra.cards.v1 import types_pb2 as t

Fetch = Callable[..., list]  # (sql, *args) -> rows


def assert_balanced(fetch: Fetch, tenant_ids: Iterable[str]) -> None:
    """§5.2: per tenant and currency, total debits = total credits; and per transaction."""
    tenants = list(tenant_ids)
    rows = fetch(
        """SELECT tenant_id, currency,
                  sum(amount_minor) FILTER (WHERE direction = 1) AS debits,
                  sum(amount_minor) FILTER (WHERE direction = 2) AS credits
           FROM ledger_entries WHERE tenant_id = ANY($1::text[]) GROUP BY tenant_id, currency""",
        tenants,
    )
    for row in rows:
        assert row["debits"] == row["credits"], (
            f"{row['tenant_id']} {row['currency']}: {row['debits']} != {row['credits']}"
        )
    unbalanced = fetch(
        """SELECT tenant_id, transaction_id FROM ledger_entries WHERE tenant_id = ANY($1::text[])
           GROUP BY tenant_id, transaction_id, currency
           HAVING sum(CASE direction WHEN 1 THEN amount_minor ELSE -amount_minor END) <> 0""",
        tenants,
    )
    assert unbalanced == [], f"unbalanced transactions: {unbalanced}"


def assert_reserved_matches_holds(fetch: Fetch, tenant_ids: Iterable[str]) -> None:
    """§5.2: reserved_balance of every account = approved (not voided) - reversed - expired - cleared
    (settled from the hold, and the unused hold a final clearing gave back)."""
    tenants = list(tenant_ids)
    reserved = {
        (r["tenant_id"], r["account_ref"], r["currency"]): r["balance"]
        for r in fetch(
            """SELECT tenant_id, account_ref, currency,
                      sum(CASE direction WHEN 2 THEN amount_minor ELSE -amount_minor END) AS balance
               FROM ledger_entries WHERE tenant_id = ANY($1::text[]) AND account = 'reserved_balance'
               GROUP BY tenant_id, account_ref, currency""",
            tenants,
        )
    }
    approved = {
        (r["tenant_id"], r["account_ref"], r["currency"].strip()): r["total"]
        for r in fetch(
            """SELECT a.tenant_id, a.account_ref, a.currency,
                      sum(a.amount_minor - a.expired_minor
                          - COALESCE((SELECT sum(v.released_minor) FROM reversals v
                                      WHERE v.tenant_id = a.tenant_id AND v.authorization_id = a.authorization_id), 0)
                          - COALESCE((SELECT sum(c.from_hold_minor + c.released_minor) FROM clearings c
                                      WHERE c.tenant_id = a.tenant_id AND c.authorization_id = a.authorization_id
                                        AND c.kind = 1), 0)) AS total
               FROM authorizations a
               WHERE a.tenant_id = ANY($1::text[]) AND a.decision = 1 AND a.voided_at IS NULL
               GROUP BY a.tenant_id, a.account_ref, a.currency""",
            tenants,
        )
    }
    nonzero = {k: v for k, v in reserved.items() if v}
    approved = {k: v for k, v in approved.items() if v}
    assert nonzero == approved, "reserved_balance per account must equal the sum of live approvals"


def assert_one_hold_per_approval(fetch: Fetch, approved: dict[tuple[str, str], int], tenant_ids: Iterable[str]) -> None:
    """§5.3: every APPROVE (tenant, authorization id) -> amount has exactly one hold, nothing else has one."""
    holds = fetch(
        """SELECT x.tenant_id, x.authorization_id, count(DISTINCT x.transaction_id) AS n, max(e.amount_minor) AS amount
           FROM ledger_transactions x JOIN ledger_entries e USING (tenant_id, transaction_id)
           WHERE x.tenant_id = ANY($1::text[]) AND x.kind = 'hold' GROUP BY x.tenant_id, x.authorization_id""",
        list(tenant_ids),
    )
    found = {(r["tenant_id"], r["authorization_id"]): (r["n"], r["amount"]) for r in holds}
    # A call answered fail-closed whose script still ran and approved was voided: its hold
    # exists and must be released exactly once (lua/tombstone.lua, docs/decisions.md).
    voided = fetch(
        """SELECT a.tenant_id, a.authorization_id,
                  (SELECT count(*) FROM ledger_transactions v WHERE v.tenant_id = a.tenant_id
                     AND v.authorization_id = a.authorization_id AND v.kind = 'void_release') AS releases
           FROM authorizations a WHERE a.tenant_id = ANY($1::text[]) AND a.voided_at IS NOT NULL""",
        list(tenant_ids),
    )
    for row in voided:
        key = (row["tenant_id"], row["authorization_id"])
        if key in found:
            assert key not in approved, f"{key} was answered APPROVE but voided"
            assert row["releases"] == 1, f"voided {key} holds {found[key]} but has {row['releases']} releases"
            del found[key]
    assert set(found) == set(approved), (
        f"holds without approval: {len(set(found) - set(approved))}, approvals without hold: {len(set(approved) - set(found))}"
    )
    for key, amount in approved.items():
        assert found[key] == (1, amount), f"{key}: {found[key]} holds, want one of {amount}"


def assert_every_decision_recorded(
    fetch: Fetch, decisions: dict[tuple[str, str], int], tenant_ids: Iterable[str]
) -> None:
    """§5.4: every decision (any outcome) has an authorization record with its rule trace."""
    rows = fetch(
        """SELECT tenant_id, authorization_id, decision, jsonb_array_length(rules) AS rules
           FROM authorizations WHERE tenant_id = ANY($1::text[])""",
        list(tenant_ids),
    )
    recorded = {(r["tenant_id"], r["authorization_id"]): (r["decision"], r["rules"]) for r in rows}
    missing = set(decisions) - set(recorded)
    assert not missing, f"{len(missing)} decisions have no authorization record, e.g. {sorted(missing)[:3]}"
    for key, decision in decisions.items():
        assert recorded[key][0] == decision, f"{key}: recorded {recorded[key][0]}, answered {decision}"
        assert recorded[key][1] >= 1, f"{key} has no rule trace"
    assert t.APPROVE in decisions.values()
