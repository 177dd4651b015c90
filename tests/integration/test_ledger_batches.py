"""How the ledger writer gets a batch to Postgres: rows prepared ahead (while the previous batch
is written) are the rows it would write otherwise; a batch holding the same entry twice posts
it once; and a batch read ahead is never acknowledged before its own commit, so a writer that
stops with one in hand leaves it pending for the next start, which posts it exactly once."""

from __future__ import annotations

import asyncio

import redis

from ledger_writer.consumer import GROUP, LedgerWriter
from ledger_writer.records import Record, parse_entry
from ledger_writer.store import BatchResult, card_keys, prepare_batch, write_batch, write_prepared
from tests.integration.test_ledger_invariants import check_invariants, mixed_traffic
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import Backing, Ledger, ThreadedServer, ledger_settings
from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t

# recorded_at is the writing transaction's now(): it differs between two writes of the same batch.
SNAPSHOT_SQL = {
    "authorizations": """SELECT to_jsonb(a) - 'recorded_at' FROM authorizations a
                         WHERE tenant_id = $1 ORDER BY authorization_id""",
    "transactions": """SELECT tenant_id, transaction_id, kind, source_id, authorization_id FROM ledger_transactions
                       WHERE tenant_id = $1 ORDER BY transaction_id""",
    "entries": "SELECT * FROM ledger_entries WHERE tenant_id = $1 ORDER BY transaction_id, line",
    "events": "SELECT event_id, type, subject, payload, occurred_at FROM events WHERE tenant_id = $1 ORDER BY sequence",
    "reversals": "SELECT to_jsonb(r) - 'recorded_at' FROM reversals r WHERE tenant_id = $1 ORDER BY reversal_id",
}


def stream_records(server: ThreadedServer) -> list[Record]:
    client = redis.Redis.from_url(server.settings.redis_url)
    return [parse_entry(fields) for s in server.server.keyspace.streams() for _, fields in client.xrange(s)]


def approve_and_reverse(api: Api, tenant: TenantKeys, count: int) -> None:
    for _ in range(count):
        card = api.issue_card(tenant)
        approved = api.authorize(tenant.processor, card.card_id, 4000)
        assert approved.decision == t.APPROVE
        request = authorization_pb2.ReverseRequest(
            reversal_id=new_id("rev"), authorization_id=approved.authorization_id, amount_minor=1500
        )
        api.authz.Reverse(request, metadata=bearer(tenant.processor))


def test_prepared_rows_are_the_rows_written_otherwise(
    api: Api, tenant: TenantKeys, ledger: Ledger, server: ThreadedServer
) -> None:
    ledger.drain()
    responses = mixed_traffic(api, [tenant], 200, seed=31)
    approve_and_reverse(api, tenant, 5)
    records = stream_records(server)
    assert len(records) >= len(responses) + 10

    async def both_ways() -> list[tuple[BatchResult, dict[str, list[object]]]]:
        outcomes = []
        async with ledger.writer.pool.acquire() as conn:
            for prepared in (False, True):
                transaction = conn.transaction()
                await transaction.start()
                try:
                    if prepared:
                        accounts, versions = card_keys(records)
                        known = (
                            await ledger.writer.card_facts.account_refs(conn, accounts),
                            await ledger.writer.card_facts.at_versions(conn, versions),
                        )
                        result = await write_prepared(conn, prepare_batch(records, *known))
                    else:
                        result = await write_batch(conn, records)
                    rows = {
                        name: list(map(tuple, await conn.fetch(sql, tenant.tenant_id)))
                        for name, sql in SNAPSHOT_SQL.items()
                    }
                finally:
                    await transaction.rollback()
                outcomes.append((result, rows))
        return outcomes

    (unprepared, rows), (prepared, prepared_rows) = server.call(both_ways())
    assert prepared == unprepared
    assert prepared.postings.get("reversal") == 5 and prepared.authorizations >= len(responses)
    for name in SNAPSHOT_SQL:
        assert rows[name], f"the batch wrote {name}"
        assert prepared_rows[name] == rows[name], f"{name}: prepared rows differ from the rows written otherwise"


def test_the_same_entry_twice_in_a_batch_is_posted_once(
    api: Api, tenant: TenantKeys, ledger: Ledger, server: ThreadedServer
) -> None:
    ledger.drain()
    card = api.issue_card(tenant)
    approved = [api.authorize(tenant.processor, card.card_id, 100 + i) for i in range(5)]
    client = redis.Redis.from_url(server.settings.redis_url)
    stream = server.server.keyspace.stream(server.server.keyspace.shard_of(card.card_id))
    for _, fields in client.xrange(stream):
        client.xadd(stream, fields)  # every decision twice, both copies in the stream at once
    assert client.xlen(stream) == 10
    assert ledger.drain() == 10
    holds = ledger.fetch(
        "SELECT authorization_id FROM ledger_transactions WHERE tenant_id = $1 AND kind = 'hold'", tenant.tenant_id
    )
    assert sorted(h["authorization_id"] for h in holds) == sorted(a.authorization_id for a in approved)
    events = ledger.fetch(
        "SELECT type FROM events WHERE tenant_id = $1 AND type LIKE 'card.authorization.%'", tenant.tenant_id
    )
    assert len(events) == 10, "requested + approved, once per decision"
    assert client.xlen(stream) == 0


def test_a_batch_read_ahead_stays_pending_until_its_own_commit(
    api: Api, ledger: Ledger, server: ThreadedServer, backing: Backing
) -> None:
    ledger.drain()
    tenants = [api.new_tenant()]
    responses = mixed_traffic(api, tenants, 300, seed=41)
    slot_ledger = Ledger(server, ledger_settings(backing, writer_slot=301, lanes=1, batch_count_max=32))
    writer: LedgerWriter = slot_ledger.writer
    client = redis.Redis.from_url(backing.redis_url)
    streams = writer.streams
    entries = sum(client.xlen(s) for s in streams)
    try:
        stop = asyncio.Event()
        posted_batches: list[int] = []
        post = writer._post

        async def post_then_stop(parsed, stop_event):  # type: ignore[no-untyped-def]
            await post(parsed, stop_event)
            posted_batches.append(len(parsed.batch))
            await asyncio.sleep(0.2)  # the batch read ahead is in hand by now
            stop.set()

        writer._post = post_then_stop  # type: ignore[method-assign]
        server.call(writer.run(stop), 60)
        assert len(posted_batches) == 1, "stopped after one batch"
        pending = sum(client.xpending(s, GROUP)["pending"] for s in streams)
        assert pending > 0, "the batch read ahead is pending, not acknowledged"
        assert sum(client.xlen(s) for s in streams) == entries - posted_batches[0], "only that batch was acknowledged"
        recorded = ledger.fetch("SELECT count(*) AS n FROM authorizations WHERE tenant_id = $1", tenants[0].tenant_id)
        assert recorded[0]["n"] == posted_batches[0], "only the posted batch is in Postgres"
        writer._post = post  # type: ignore[method-assign]
        slot_ledger.drain()  # a restart: its own pending entries first, then the rest
        assert sum(client.xlen(s) for s in streams) == 0
        assert sum(client.xpending(s, GROUP)["pending"] for s in streams) == 0
        check_invariants(ledger, tenants, responses)
    finally:
        slot_ledger.close()
