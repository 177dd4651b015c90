"""Writes a batch of decision records to Postgres in one transaction: authorization records
with their rule trace, ledger transactions and entries, and events. Every insert is
`ON CONFLICT DO NOTHING` on a key derived from the record's source, so writing the same
batch any number of times leaves the same ledger.

Two steps: `prepare_batch` turns the batch's decisions into rows (pure Python, given what is
known about the cards), and `write_prepared` writes them, then posts the records whose
effect depends on what Postgres holds (voids, reversals, clearings, expiries). The writer
prepares the next batch while the previous one is being written; `write_batch` does both."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from authz_server.events import (
    AUTHORIZATION_ADVICE,
    AUTHORIZATION_APPROVED,
    AUTHORIZATION_DECLINED,
    AUTHORIZATION_EXPIRED,
    AUTHORIZATION_INCREMENTED,
    AUTHORIZATION_REQUESTED,
    AUTHORIZATION_REVERSED,
    AUTHORIZATION_REVIEW,
    AUTHORIZATION_VOIDED,
    CLEARING_MISMATCH,
    CLEARING_POSTED,
    REFUND_POSTED,
    REVIEW_OPENED,
)
from authz_server.policy import RESPONSE_CODES
from ledger_writer.cards import CardFacts
from ledger_writer.evidence import CardAtVersion, TraceMemo, rule_trace_json
from ledger_writer.outbox import EventRow, event_row
from ledger_writer.postings import (
    Transaction,
    posting_for_approval,
    posting_for_clearing,
    posting_for_expiry,
    posting_for_refund,
    posting_for_reversal,
    posting_for_void,
)
from ledger_writer.records import (
    KIND_DECISION,
    KIND_VOID,
    ClearingEntry,
    DecisionRecord,
    ExpiryRecord,
    Merchant,
    Record,
    ReversalRecord,
)
from zentra.cards.v1 import types_pb2 as t

REFUND = 2  # clearing_pb2.REFUND
STATUS_OF_DECISION: dict[int, str] = {t.APPROVE: "PENDING", t.DECLINE: "DECLINED", t.REVIEW: "REVIEW"}
EVENT_OF_DECISION: dict[int, str] = {
    t.APPROVE: AUTHORIZATION_APPROVED,
    t.DECLINE: AUTHORIZATION_DECLINED,
    t.REVIEW: AUTHORIZATION_REVIEW,
}
DECISION_NAMES: dict[int, str] = {value: t.Decision.Name(value) for value in t.Decision.values()}
REASON_NAMES: dict[int, str] = {value: t.Reason.Name(value) for value in t.Reason.values()}
# Distinct merchants whose JSON is kept: a batch mostly repeats a few merchants.
MERCHANTS_CACHED_MAX = 4096
# Cards kept by a writer that has no CardFacts of its own (tools and tests calling write_batch).
CARD_FACTS_ONE_BATCH_MAX = 100_000


@dataclass
class BatchResult:
    """What one batch wrote (for metrics); a redelivered record counts zero."""

    authorizations: int = 0
    postings: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)


@functools.lru_cache(maxsize=MERCHANTS_CACHED_MAX)
def _merchant_fields(m: Merchant) -> dict[str, str]:
    """The merchant as a JSON object; shared by every payload that shows it, never modified."""
    return {"id": m.id, "name": m.name, "mcc": m.mcc, "country": m.country, "city": m.city}


@functools.lru_cache(maxsize=MERCHANTS_CACHED_MAX)
def _merchant_json(m: Merchant) -> str:
    return json.dumps(_merchant_fields(m))


def _authorization_rows(
    records: Sequence[DecisionRecord],
    accounts: dict[tuple[str, str], str],
    cards: dict[tuple[str, str, int], CardAtVersion],
) -> list[tuple[object, ...]]:
    """One row per record, in the column order of `_insert_authorizations`."""
    rows: list[tuple[object, ...]] = []
    traces: TraceMemo = {}
    for r in records:
        voided = r.kind == KIND_VOID
        decision, reason = (t.DECLINE, t.SYSTEM_UNAVAILABLE) if voided else (r.decision, r.reason)
        trace = rule_trace_json(r, cards.get((r.tenant_id, r.card_id, r.policy_version)), traces)
        rows.append((
            r.tenant_id, r.authorization_id, r.card_id, accounts.get((r.tenant_id, r.card_id)), r.amount_minor,
            r.currency, _merchant_json(r.merchant), r.channel, decision, reason, RESPONSE_CODES[reason],
            r.policy_version, r.exceeded_limit, trace,
            "INCREMENTED" if r.incremental_of and decision == t.APPROVE else STATUS_OF_DECISION[decision],
            r.reserved_buckets, r.fingerprint,
            r.attempt, r.actor_key_id, r.shard, r.amount_minor if decision == t.APPROVE and not r.incremental_of else 0,
            r.hold_expires_at if decision == t.APPROVE and not r.incremental_of else None,
            r.override_review_id or None, r.advice, r.incremental_of or None, r.decided_at,
            r.decided_at if voided else None,
        ))  # fmt: skip
    return rows


def _positions(values: Sequence[object]) -> tuple[list[int], list[object]]:
    """Each value's 1-based position in the list of distinct values, and that list."""
    first: dict[object, int] = {}
    positions = [first.setdefault(value, len(first) + 1) for value in values]
    return positions, list(first)


async def _insert_authorizations(conn: asyncpg.Connection, rows: Sequence[tuple[object, ...]]) -> int:
    """Inserts the rows (from `_authorization_rows`) not yet recorded; returns how many.

    A batch repeats a few merchants and rule traces: each distinct JSON text is sent and
    parsed into jsonb once, and the rows name it by position (parsing them for every row was
    a quarter of what Postgres spent on inserting authorizations)."""
    if not rows:
        return 0
    columns: list[Sequence[object]] = list(zip(*rows, strict=True))
    columns[6], merchants = _positions(columns[6])
    columns[13], traces = _positions(columns[13])
    inserted = await conn.fetchval(
        """WITH merchant AS MATERIALIZED (
               SELECT ordinal, doc::jsonb AS value FROM unnest($28::text[]) WITH ORDINALITY AS m(doc, ordinal)),
           rules AS MATERIALIZED (
               SELECT ordinal, doc::jsonb AS value FROM unnest($29::text[]) WITH ORDINALITY AS t(doc, ordinal)),
           inserted AS (
               INSERT INTO authorizations (tenant_id, authorization_id, card_id, account_ref, amount_minor,
                   currency, merchant, channel, decision, reason, response_code, policy_version, exceeded_limit,
                   rules, status, reserved_buckets, fingerprint, attempt, actor_key_id, shard, remaining_hold_minor,
                   hold_expires_at, override_review_id, advice, incremental_of, decided_at, voided_at)
               SELECT x.a, x.b, x.c, x.d, x.e, x.f, merchant.value, x.h, x.i, x.j, x.k, x.l, x.m, rules.value, x.o,
                      x.p, x.q, x.r, x.s, x.u, x.y, x.z, x.zz, x.ad, x.inc, x.v, x.w
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
                           $8::smallint[], $9::smallint[], $10::smallint[], $11::text[], $12::bigint[], $13::text[],
                           $14::bigint[], $15::text[], $16::text[], $17::bytea[], $18::text[], $19::text[],
                           $20::integer[], $21::bigint[], $22::timestamptz[], $23::text[], $24::boolean[],
                           $25::text[], $26::timestamptz[], $27::timestamptz[])
                    AS x(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, u, y, z, zz, ad, inc, v, w)
               JOIN merchant ON merchant.ordinal = x.g
               JOIN rules ON rules.ordinal = x.n
               ON CONFLICT (tenant_id, authorization_id) DO NOTHING
               RETURNING 1)
           SELECT count(*) FROM inserted""",
        *columns,
        merchants,
        traces,
    )
    return int(inserted)


async def _insert_transactions(
    conn: asyncpg.Connection, transactions: Sequence[Transaction], fresh_ids: set[tuple[str, str]] | None = None
) -> dict[str, int]:
    """Inserts the transactions not yet posted (and their entries); returns counts by kind and
    adds the (tenant, transaction id) of those inserted now to `fresh_ids`. One statement: the
    entries of exactly the transactions inserted now (RETURNING) go in with them."""
    if not transactions:
        return {}
    entries = [
        (x.tenant_id, x.transaction_id, line, e.account, e.account_ref, e.direction, e.amount_minor, e.currency)
        for x in transactions
        for line, e in enumerate(x.entries, start=1)
    ]
    inserted = await conn.fetch(
        """WITH fresh AS (
               INSERT INTO ledger_transactions (tenant_id, transaction_id, kind, source_id, authorization_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
               ON CONFLICT DO NOTHING RETURNING tenant_id, transaction_id, kind),
           entries AS (
               INSERT INTO ledger_entries (tenant_id, transaction_id, line, account, account_ref, direction,
                   amount_minor, currency)
               SELECT e.tenant_id, e.transaction_id, e.line, e.account, e.account_ref, e.direction, e.amount_minor,
                      e.currency
               FROM unnest($6::text[], $7::text[], $8::smallint[], $9::text[], $10::text[], $11::smallint[],
                           $12::bigint[], $13::text[])
                    AS e(tenant_id, transaction_id, line, account, account_ref, direction, amount_minor, currency)
               JOIN fresh USING (tenant_id, transaction_id))
           SELECT tenant_id, transaction_id, kind FROM fresh""",
        [x.tenant_id for x in transactions],
        [x.transaction_id for x in transactions],
        [x.kind for x in transactions],
        [x.source_id for x in transactions],
        [x.authorization_id for x in transactions],
        *zip(*entries, strict=True),
    )
    if fresh_ids is not None:
        fresh_ids.update((r["tenant_id"], r["transaction_id"]) for r in inserted)
    counts: dict[str, int] = {}
    for r in inserted:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    return counts


async def _insert_events(conn: asyncpg.Connection, events: list[EventRow]) -> dict[str, int]:
    if not events:
        return {}
    inserted = await conn.fetch(
        """WITH inserted AS (
               INSERT INTO events (event_id, tenant_id, type, subject, payload, occurred_at)
               SELECT a, b, c, d, e::jsonb, f FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],
                                                         $5::text[], $6::timestamptz[]) AS x(a, b, c, d, e, f)
               ON CONFLICT (event_id) DO NOTHING RETURNING type)
           SELECT type, count(*) AS n FROM inserted GROUP BY type""",
        *zip(*events, strict=True),
    )
    return {r["type"]: int(r["n"]) for r in inserted}


def _event_payload(record: DecisionRecord, decision: int, reason: int, **extra: object) -> str:
    """The payload of a decision's events, as JSON text (shared by all of them)."""
    return json.dumps(
        {
            "authorization_id": record.authorization_id,
            "card_id": record.card_id,
            "amount_minor": record.amount_minor,
            "currency": record.currency,
            "merchant": _merchant_fields(record.merchant),
            "decision": DECISION_NAMES[decision],
            "reason": REASON_NAMES[reason],
            "response_code": RESPONSE_CODES[reason],
            "policy_version": record.policy_version,
            **extra,
        }
    )


@dataclass(frozen=True)
class PreparedBatch:
    """A batch with its decisions already turned into rows: authorization records, holds and
    events. Writing it changes none of it, so a batch retried after a lost connection is
    written from the same rows."""

    accounts: dict[tuple[str, str], str]
    decisions: list[DecisionRecord]  # one per (tenant, authorization id): the first in stream order
    voids: list[DecisionRecord]
    reversals: list[ReversalRecord]
    clearings: list[ClearingEntry]
    expiries: list[ExpiryRecord]
    authorization_rows: list[tuple[object, ...]]
    holds: list[Transaction]
    events: list[EventRow]  # the decisions' events, in stream order


def card_keys(records: Sequence[Record]) -> tuple[set[tuple[str, str]], set[tuple[str, str, int]]]:
    """What `prepare_batch` needs to know about cards: the account of every card the records
    name, and each decision's card at its policy version."""
    accounts = {(r.tenant_id, r.card_id) for r in records}
    versions = {
        (r.tenant_id, r.card_id, r.policy_version)
        for r in records
        if isinstance(r, DecisionRecord) and r.kind == KIND_DECISION and r.policy_version > 0
    }
    return accounts, versions


def prepare_batch(
    records: Sequence[Record],
    accounts: dict[tuple[str, str], str],
    cards: dict[tuple[str, str, int], CardAtVersion],
) -> PreparedBatch:
    """The batch's decisions as rows, given the accounts and cards `card_keys` names (a card
    missing from them does not exist). Pure: reads nothing, writes nothing."""
    decision_records = [r for r in records if isinstance(r, DecisionRecord)]
    decisions = list(
        {(r.tenant_id, r.authorization_id): r for r in reversed(decision_records) if r.kind == KIND_DECISION}.values()
    )
    holds: list[Transaction] = []
    events: list[EventRow] = []
    for r in decisions:
        if r.decision == t.APPROVE:
            account_ref = accounts.get((r.tenant_id, r.card_id))
            assert account_ref is not None, f"approval {r.authorization_id} of unknown card {r.card_id}"
            holds.append(
                posting_for_approval(
                    r.tenant_id, r.authorization_id, account_ref, r.amount_minor, r.currency, r.incremental_of
                )
            )
        payload = _event_payload(r, r.decision, r.reason)
        events.append(
            event_row(r.tenant_id, AUTHORIZATION_REQUESTED, r.authorization_id, "decision", payload, r.decided_at)
        )
        if r.advice:
            events.append(
                event_row(r.tenant_id, AUTHORIZATION_ADVICE, r.authorization_id, "advice", payload, r.decided_at)
            )
        events.append(
            event_row(r.tenant_id, EVENT_OF_DECISION[r.decision], r.authorization_id, "decision", payload, r.decided_at)
        )
    return PreparedBatch(
        accounts=accounts,
        decisions=decisions,
        voids=[r for r in decision_records if r.kind == KIND_VOID],
        reversals=[r for r in records if isinstance(r, ReversalRecord)],
        clearings=[r for r in records if isinstance(r, ClearingEntry)],
        expiries=[r for r in records if isinstance(r, ExpiryRecord)],
        authorization_rows=_authorization_rows(decisions, accounts, cards),
        holds=holds,
        events=events,
    )


async def write_batch(
    conn: asyncpg.Connection, records: Sequence[Record], card_facts: CardFacts | None = None
) -> BatchResult:
    """Posts `records` (in stream order) in the caller's transaction: decisions first, then the
    voids and reversals that follow them in their streams. `card_facts` keeps what was read
    about cards for later batches (a writer passes its own); without it they are read anew."""
    card_facts = card_facts or CardFacts(CARD_FACTS_ONE_BATCH_MAX)
    account_keys, version_keys = card_keys(records)
    accounts = await card_facts.account_refs(conn, account_keys)
    cards = await card_facts.at_versions(conn, version_keys)
    return await write_prepared(conn, prepare_batch(records, accounts, cards))


async def write_prepared(conn: asyncpg.Connection, batch: PreparedBatch) -> BatchResult:
    """Writes a prepared batch in the caller's transaction: the decisions' rows, then what
    follows them in their streams (increments, voids, reversals, clearings, expiries)."""
    result = BatchResult()
    accounts = batch.accounts
    result.authorizations = await _insert_authorizations(conn, batch.authorization_rows)
    events = list(batch.events)
    fresh_holds: set[tuple[str, str]] = set()
    result.postings = await _insert_transactions(conn, batch.holds, fresh_holds)
    for r in batch.decisions:
        if r.incremental_of and r.decision == t.APPROVE and (r.tenant_id, f"hold:{r.authorization_id}") in fresh_holds:
            await conn.execute(
                """UPDATE authorizations SET incremented_minor = incremented_minor + $3::bigint,
                          remaining_hold_minor = remaining_hold_minor + $3::bigint
                   WHERE tenant_id = $1 AND authorization_id = $2""",
                r.tenant_id,
                r.incremental_of,
                r.amount_minor,
            )
            payload = _event_payload(r, r.decision, r.reason, incremental_of=r.incremental_of)
            events.append(
                event_row(
                    r.tenant_id, AUTHORIZATION_INCREMENTED, r.incremental_of, r.authorization_id, payload, r.decided_at
                )
            )

    release: list[Transaction] = []
    for r in batch.voids:
        before = await conn.fetchrow(
            """SELECT decision, voided_at, remaining_hold_minor FROM authorizations
               WHERE tenant_id = $1 AND authorization_id = $2 FOR UPDATE""",
            r.tenant_id,
            r.authorization_id,
        )
        if before is None:
            # The decision entry never reached us (dead-lettered): record the fail-closed answer alone.
            result.authorizations += await _insert_authorizations(conn, _authorization_rows([r], accounts, {}))
        elif before["voided_at"] is None:
            await conn.execute(
                """UPDATE authorizations SET decision = $3, reason = $4, response_code = $5, status = 'DECLINED',
                          voided_at = $6, rules = $7::jsonb, remaining_hold_minor = 0
                   WHERE tenant_id = $1 AND authorization_id = $2""",
                r.tenant_id, r.authorization_id, t.DECLINE, t.SYSTEM_UNAVAILABLE,
                RESPONSE_CODES[t.SYSTEM_UNAVAILABLE], r.decided_at, rule_trace_json(r, None, {}),
            )  # fmt: skip
        if before is not None and before["decision"] == t.APPROVE and before["remaining_hold_minor"] > 0:
            account_ref = accounts[(r.tenant_id, r.card_id)]
            held = before["remaining_hold_minor"]
            release.append(posting_for_void(r.tenant_id, r.authorization_id, account_ref, held, r.currency))
        payload = _event_payload(r, t.DECLINE, t.SYSTEM_UNAVAILABLE)
        events.append(event_row(r.tenant_id, AUTHORIZATION_VOIDED, r.authorization_id, "void", payload, r.decided_at))
    for kind, count in (await _insert_transactions(conn, release)).items():
        result.postings[kind] = result.postings.get(kind, 0) + count
    for kind, count in (await _post_reversals(conn, batch.reversals, accounts, events)).items():
        result.postings[kind] = result.postings.get(kind, 0) + count
    for kind, count in (await _post_clearings(conn, batch.clearings, accounts, events)).items():
        result.postings[kind] = result.postings.get(kind, 0) + count
    for kind, count in (await _post_expiries(conn, batch.expiries, accounts, events)).items():
        result.postings[kind] = result.postings.get(kind, 0) + count
    await _open_authorization_reviews(conn, batch.decisions)
    result.events = await _insert_events(conn, events)
    return result


async def _post_expiries(
    conn: asyncpg.Connection,
    expiries: Sequence[ExpiryRecord],
    accounts: dict[tuple[str, str], str],
    events: list[EventRow],
) -> dict[str, int]:
    """Each expired hold's release, posted once, and the authorization marked EXPIRED."""
    if not expiries:
        return {}
    currencies = {
        (r["tenant_id"], r["authorization_id"]): r["currency"].strip()
        for r in await conn.fetch(
            """SELECT tenant_id, authorization_id, currency FROM authorizations
               WHERE (tenant_id, authorization_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
            [e.tenant_id for e in expiries],
            [e.authorization_id for e in expiries],
        )
    }
    transactions = []
    for e in expiries:
        currency = currencies.get((e.tenant_id, e.authorization_id))
        assert currency is not None, f"expiry of an approval the ledger has not recorded: {e.authorization_id}"
        account_ref = accounts[(e.tenant_id, e.card_id)]
        transactions.append(
            posting_for_expiry(e.tenant_id, e.authorization_id, account_ref, e.released_minor, currency)
        )
    fresh: set[tuple[str, str]] = set()
    counts = await _insert_transactions(conn, transactions, fresh)
    for e, transaction in zip(expiries, transactions, strict=True):
        if (e.tenant_id, transaction.transaction_id) not in fresh:
            continue
        await conn.execute(
            """UPDATE authorizations SET expired_minor = expired_minor + $3::bigint, remaining_hold_minor = 0,
                      status = 'EXPIRED'
               WHERE tenant_id = $1 AND authorization_id = $2""",
            e.tenant_id,
            e.authorization_id,
            e.released_minor,
        )
        payload: dict[str, object] = {
            "authorization_id": e.authorization_id,
            "card_id": e.card_id,
            "released_minor": e.released_minor,
            "transaction_id": transaction.transaction_id,
        }
        events.append(
            event_row(
                e.tenant_id, AUTHORIZATION_EXPIRED, e.authorization_id, "expiry", json.dumps(payload), e.expired_at
            )
        )
    return counts


async def _open_authorization_reviews(conn: asyncpg.Connection, decisions: Sequence[DecisionRecord]) -> None:
    """Every REVIEW decision waits in the review queue for an operator."""
    reviews = [r for r in decisions if r.decision == t.REVIEW]
    if not reviews:
        return
    await conn.executemany(
        """INSERT INTO reviews (tenant_id, review_id, kind, authorization_id, card_id, amount_minor, currency,
               detail, opened_at)
           VALUES ($1, $2, 'AUTHORIZATION', $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        [
            (r.tenant_id, f"authorization:{r.authorization_id}", r.authorization_id, r.card_id, r.amount_minor,
             r.currency, f"amount {r.amount_minor} {r.currency} at or above the card's review threshold",
             r.decided_at)
            for r in reviews
        ],
    )  # fmt: skip


REVIEW_KIND_OF_OUTCOME = {2: "CLEARING_MISMATCH", 3: "FORCE_POST", 4: "LATE_CAPTURE"}
STATUS_AFTER_CLEARING = ("PARTIALLY_CLEARED", "CLEARED")


async def _post_clearings(
    conn: asyncpg.Connection,
    clearings: Sequence[ClearingEntry],
    accounts: dict[tuple[str, str], str],
    events: list[EventRow],
) -> dict[str, int]:
    """Each clearing's posting (once), its evidence row, its effect on the authorization (in
    stream order, only when posted now), its review if it needs one, and its events."""
    if not clearings:
        return {}
    transactions = []
    for c in clearings:
        account_ref = accounts.get((c.tenant_id, c.card_id))
        assert account_ref is not None, f"clearing {c.clearing_id} of unknown card {c.card_id}"
        if c.kind == REFUND:
            transactions.append(
                posting_for_refund(
                    c.tenant_id, c.clearing_id, c.authorization_id, account_ref, c.amount_minor, c.currency
                )
            )
        else:
            transactions.append(
                posting_for_clearing(
                    c.tenant_id,
                    c.clearing_id,
                    c.authorization_id,
                    account_ref,
                    c.currency,
                    c.from_hold_minor,
                    c.from_balance_minor,
                    c.released_minor,
                )
            )
    fresh: set[tuple[str, str]] = set()
    counts = await _insert_transactions(conn, transactions, fresh)
    for c, transaction in zip(clearings, transactions, strict=True):
        if (c.tenant_id, transaction.transaction_id) not in fresh:
            continue  # a redelivery: already applied
        review_id = f"clearing:{c.clearing_id}" if c.review else None
        await conn.execute(
            """INSERT INTO clearings (tenant_id, clearing_id, authorization_id, card_id, account_ref, kind, is_final,
                   amount_minor, currency, merchant, outcome, from_hold_minor, from_balance_minor, released_minor,
                   delta_minor, review_id, actor_key_id, cleared_at, fingerprint)
               VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, $16, $17,
                       $18, $19)
               ON CONFLICT DO NOTHING""",
            c.tenant_id, c.clearing_id, c.authorization_id, c.card_id, accounts[(c.tenant_id, c.card_id)], c.kind,
            c.is_final, c.amount_minor, c.currency, _merchant_json(c.merchant), c.outcome, c.from_hold_minor,
            c.from_balance_minor, c.released_minor, c.delta_minor, review_id, c.actor_key_id, c.cleared_at,
            c.fingerprint,
        )  # fmt: skip
        if c.kind != REFUND and c.authorization_id and c.mode in ("auth", "late"):
            final = c.is_final or c.mode == "late" or c.outcome == 4
            await conn.execute(
                """UPDATE authorizations
                   SET cleared_minor = cleared_minor + $3::bigint,
                       remaining_hold_minor = COALESCE($4::bigint, remaining_hold_minor),
                       status = $5
                   WHERE tenant_id = $1 AND authorization_id = $2""",
                c.tenant_id, c.authorization_id, c.amount_minor, c.remaining_hold_minor,
                STATUS_AFTER_CLEARING[1 if final else 0],
            )  # fmt: skip
        payload: dict[str, object] = {
            "clearing_id": c.clearing_id,
            "authorization_id": c.authorization_id,
            "card_id": c.card_id,
            "amount_minor": c.amount_minor,
            "currency": c.currency,
            "outcome": c.outcome,
            "from_hold_minor": c.from_hold_minor,
            "from_balance_minor": c.from_balance_minor,
            "released_minor": c.released_minor,
            "delta_minor": c.delta_minor,
            "transaction_id": transaction.transaction_id,
            "review_id": review_id,
        }
        subject = c.authorization_id or c.clearing_id
        text = json.dumps(payload)
        if c.kind == REFUND:
            events.append(event_row(c.tenant_id, REFUND_POSTED, subject, c.clearing_id, text, c.cleared_at))
        else:
            events.append(event_row(c.tenant_id, CLEARING_POSTED, subject, c.clearing_id, text, c.cleared_at))
            if c.outcome == 2:
                events.append(event_row(c.tenant_id, CLEARING_MISMATCH, subject, c.clearing_id, text, c.cleared_at))
        if review_id is not None:
            kind = REVIEW_KIND_OF_OUTCOME[c.outcome]
            await conn.execute(
                """INSERT INTO reviews (tenant_id, review_id, kind, authorization_id, clearing_id, card_id,
                       amount_minor, currency, delta_minor, detail, opened_at)
                   VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING""",
                c.tenant_id, review_id, kind, c.authorization_id, c.clearing_id, c.card_id, c.amount_minor,
                c.currency, c.delta_minor, f"{kind.lower().replace('_', ' ')}: ledger transaction "
                f"{transaction.transaction_id}, delta {c.delta_minor}", c.cleared_at,
            )  # fmt: skip
            review_payload = json.dumps({**payload, "kind": kind})
            events.append(event_row(c.tenant_id, REVIEW_OPENED, review_id, "opened", review_payload, c.cleared_at))
    return counts


async def _post_reversals(
    conn: asyncpg.Connection,
    reversals: Sequence[ReversalRecord],
    accounts: dict[tuple[str, str], str],
    events: list[EventRow],
) -> dict[str, int]:
    """Each reversal's release (posted once), and its effect on the authorization, applied
    once: only when its transaction is inserted now, in stream order."""
    if not reversals:
        return {}
    transactions = []
    for r in reversals:
        account_ref = accounts.get((r.tenant_id, r.card_id))
        assert account_ref is not None, f"reversal {r.reversal_id} of unknown card {r.card_id}"
        transactions.append(
            posting_for_reversal(
                r.tenant_id, r.reversal_id, r.authorization_id, account_ref, r.released_minor, r.currency
            )
        )
    fresh: set[tuple[str, str]] = set()
    counts = await _insert_transactions(conn, transactions, fresh)
    for r, transaction in zip(reversals, transactions, strict=True):
        if (r.tenant_id, transaction.transaction_id) not in fresh:
            continue  # a redelivery: already applied
        updated = await conn.execute(
            """UPDATE authorizations
               SET reversed_minor = reversed_minor + $3::bigint, remaining_hold_minor = $4::bigint,
                   status = CASE WHEN $4::bigint = 0 THEN 'REVERSED' ELSE 'PARTIALLY_REVERSED' END
               WHERE tenant_id = $1 AND authorization_id = $2 AND decision = 1""",
            r.tenant_id,
            r.authorization_id,
            r.released_minor,
            r.remaining_hold_minor,
        )
        assert updated == "UPDATE 1", f"reversal {r.reversal_id} of an approval the ledger has not recorded"
        await conn.execute(
            """INSERT INTO reversals (tenant_id, reversal_id, authorization_id, requested_minor, released_minor,
                   remaining_hold_minor, actor_key_id, reversed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
            r.tenant_id, r.reversal_id, r.authorization_id, r.requested_minor, r.released_minor,
            r.remaining_hold_minor, r.actor_key_id, r.reversed_at,
        )  # fmt: skip
        payload: dict[str, object] = {
            "authorization_id": r.authorization_id,
            "reversal_id": r.reversal_id,
            "card_id": r.card_id,
            "released_minor": r.released_minor,
            "remaining_hold_minor": r.remaining_hold_minor,
            "currency": r.currency,
        }
        events.append(
            event_row(
                r.tenant_id,
                AUTHORIZATION_REVERSED,
                r.authorization_id,
                r.reversal_id,
                json.dumps(payload),
                r.reversed_at,
            )
        )
    return counts
