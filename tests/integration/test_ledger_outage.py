"""Postgres unavailable for several seconds: the hot path keeps deciding (it never touches
Postgres), the ledger writer retries with backoff without acknowledging anything, and once
Postgres is back it catches up with nothing lost."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from authz_server.clock import SettableClock
from devstack.embedded import EmbeddedPostgres
from tests.support import ledger_checks
from tests.support.api import Api
from tests.support.stack import EPOCH_MS, Backing, Ledger, ThreadedServer, ledger_settings, server_settings
from zentra.cards.v1 import types_pb2 as t


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedPostgres]:
    data_dir = Path(tempfile.mkdtemp(prefix="zentra-outage-"))
    postgres = EmbeddedPostgres(data_dir / "pg")
    postgres.start()
    yield postgres
    postgres.stop()


def test_writer_catches_up_after_a_postgres_outage(backing: Backing, own_postgres: EmbeddedPostgres) -> None:
    stack = replace(backing, database_url=own_postgres.url, key_prefix=backing.key_prefix + "pg")
    # The budget of the shared test server (tests/conftest.py): this test is about which store
    # the hot path needs, not its speed, and a 50 ms budget failed a decision closed once on a
    # loaded CI machine while Postgres was shutting down (a decision that needed Postgres would
    # still fail, at once: the connection is refused).
    budget = {"decision_budget_ms": 2000, "script_stale_ms": 10_000}
    server = ThreadedServer(server_settings(stack, **budget), SettableClock(EPOCH_MS)).start()
    api = Api(server.target)
    ledger = Ledger(server, ledger_settings(stack, retry_backoff_max_ms=200))
    try:
        tenant = api.new_tenant()
        card = api.issue_card(tenant)
        assert api.authorize(tenant.processor, card.card_id, 10).decision == t.APPROVE  # caches the key
        ledger.drain()

        own_postgres.stop()
        responses = [api.authorize(tenant.processor, card.card_id, 100 + i) for i in range(200)]
        assert all(r.decision == t.APPROVE for r in responses), "the hot path decides without Postgres"
        catching_up = asyncio.run_coroutine_threadsafe(ledger.writer.drain(), server.loop)
        time.sleep(3)
        assert not catching_up.done(), "the writer waits for Postgres instead of dropping records"
        streams = server.server.keyspace.streams()
        pending = server.call(_stream_lengths(server, streams))
        assert pending >= 200, "nothing is acknowledged while Postgres is down"
        own_postgres.start()
        catching_up.result(60)

        approved = {(tenant.tenant_id, r.authorization_id): 100 + i for i, r in enumerate(responses)}
        decisions = {key: t.APPROVE for key in approved}
        ledger_checks.assert_every_decision_recorded(ledger.fetch, decisions, [tenant.tenant_id])
        holds = ledger.fetch("SELECT count(*) AS n FROM ledger_transactions WHERE tenant_id = $1", tenant.tenant_id)
        assert holds[0]["n"] == 201
        ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
        assert server.call(_stream_lengths(server, streams)) == 0
    finally:
        if own_postgres._server is None:
            own_postgres.start()
        ledger.close()
        api.close()
        server.stop()


async def _stream_lengths(server: ThreadedServer, streams: list[str]) -> int:
    return sum([await server.server.redis.xlen(s) for s in streams])
