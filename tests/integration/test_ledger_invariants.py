"""DESIGN §5.2-§5.4 after thousands of mixed concurrent decisions, and the ledger writer's
delivery guarantees: redelivered records change nothing, poison goes to the dead-letter
stream without blocking the rest, and two writers at once share the work without posting
anything twice."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis

from ledger_writer.consumer import dead_letter_stream
from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import Backing, Ledger, ThreadedServer, ledger_settings
from zentra.cards.v1 import types_pb2 as t

MCCS = ["5812", "5411", "7995", "4111"]
IN_FLIGHT_MAX = 300  # concurrent calls per wave, as a processor adapter's connection pool would send


def mixed_traffic(api: Api, tenants: list[TenantKeys], calls: int, seed: int) -> dict[tuple[str, str], object]:
    """`calls` concurrent Authorize calls across the tenants' cards (approvals, declines by MCC,
    country and limits, reviews, replays). Returns (tenant, authorization id) -> response."""
    rng = random.Random(seed)
    cards = []
    for tenant in tenants:
        for _ in range(5):
            controls = t.SpendControls(
                spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=rng.choice([20_000, 50_000, 200_000]))],
                blocked_mccs=["7995"],
                blocked_countries=["RU"],
                review_threshold_minor=9_000,
            )
            cards.append((tenant, api.issue_card(tenant, controls).card_id))
    requests = []
    for _ in range(calls):
        tenant, card_id = rng.choice(cards)
        if requests and rng.random() < 0.05:
            requests.append(rng.choice(requests))  # a retry: same id, same request
            continue
        request = api.authorize_request(
            card_id, rng.choice([100, 700, 2500, 9500]), mcc=rng.choice(MCCS), country=rng.choice(["US", "US", "RU"])
        )
        requests.append((tenant, request))
    answers = {}
    for start in range(0, len(requests), IN_FLIGHT_MAX):
        futures = [
            (tenant, api.authz.Authorize.future(req, metadata=bearer(tenant.processor), timeout=60))
            for tenant, req in requests[start : start + IN_FLIGHT_MAX]
        ]
        answers.update({(tenant.tenant_id, f.result().authorization_id): f.result() for tenant, f in futures})
    return answers


def check_invariants(ledger: Ledger, tenants: list[TenantKeys], responses: dict) -> None:  # type: ignore[type-arg]
    ids = [x.tenant_id for x in tenants]
    approved = {k: r.decision for k, r in responses.items()}
    amounts = {}
    for tenant_id, auth_id in [k for k, d in approved.items() if d == t.APPROVE]:
        [row] = ledger.fetch(
            "SELECT amount_minor FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2", tenant_id, auth_id
        )
        amounts[(tenant_id, auth_id)] = row["amount_minor"]
    ledger_checks.assert_every_decision_recorded(ledger.fetch, approved, ids)
    ledger_checks.assert_one_hold_per_approval(ledger.fetch, amounts, ids)
    ledger_checks.assert_balanced(ledger.fetch, ids)
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, ids)


def ledger_snapshot(ledger: Ledger, tenant_ids: list[str]) -> tuple:  # type: ignore[type-arg]
    return (
        ledger.fetch("SELECT * FROM authorizations WHERE tenant_id = ANY($1) ORDER BY 1, 2", tenant_ids),
        ledger.fetch(
            "SELECT tenant_id, transaction_id, kind FROM ledger_transactions WHERE tenant_id = ANY($1) ORDER BY 1, 2",
            tenant_ids,
        ),
        ledger.fetch("SELECT * FROM ledger_entries WHERE tenant_id = ANY($1) ORDER BY 1, 2, 3", tenant_ids),
        ledger.fetch("SELECT event_id, type, subject FROM events WHERE tenant_id = ANY($1) ORDER BY 1", tenant_ids),
    )


def test_invariants_after_thousands_of_mixed_decisions(api: Api, ledger: Ledger) -> None:
    tenants = [api.new_tenant() for _ in range(3)]
    responses = mixed_traffic(api, tenants, 3000, seed=7)
    outcomes = {t.Reason.Name(r.reason) for r in responses.values()}
    assert {"APPROVED", "MCC_NOT_ALLOWED", "COUNTRY_NOT_ALLOWED", "REVIEW_REQUIRED", "SPEND_LIMIT_EXCEEDED"} <= outcomes
    ledger.drain()
    check_invariants(ledger, tenants, responses)


def test_redelivered_records_change_nothing(api: Api, ledger: Ledger, server: ThreadedServer) -> None:
    ledger.drain()  # start from empty streams
    tenants = [api.new_tenant()]
    responses = mixed_traffic(api, tenants, 300, seed=11)
    client = redis.Redis.from_url(ledger.settings.redis_url)
    streams = server.server.keyspace.streams()
    copies = [(s, fields) for s in streams for _, fields in client.xrange(s)]
    assert len(copies) >= len(responses)
    ledger.drain()
    before = ledger_snapshot(ledger, [tenants[0].tenant_id])
    for _ in range(2):
        for stream, fields in copies:
            client.xadd(stream, fields)
        assert ledger.drain() == len(copies)
    assert ledger_snapshot(ledger, [tenants[0].tenant_id]) == before, "redelivery must not change the ledger"
    check_invariants(ledger, tenants, responses)


def test_poison_goes_to_the_dead_letter_stream(
    api: Api, tenant: TenantKeys, ledger: Ledger, server: ThreadedServer
) -> None:
    client = redis.Redis.from_url(ledger.settings.redis_url)
    stream = server.server.keyspace.stream(0)
    poison_ids = [
        client.xadd(stream, {"k": "decision", "p": "{not json", "d": "1"}),
        client.xadd(stream, {"k": "mystery"}),
        client.xadd(stream, {"k": "decision", "p": '{"schema": 1}', "d": "1", "r": "1"}),
    ]
    card = api.issue_card(tenant)
    good = api.authorize(tenant.processor, card.card_id, 500)
    ledger.drain()
    dead = {fields[b"entry_id"]: fields for _, fields in client.xrange(dead_letter_stream(server.server.keyspace))}
    for entry_id in poison_ids:
        assert entry_id in dead, f"poison {entry_id} is in the dead-letter stream"
        assert dead[entry_id][b"error"].startswith(b"unparseable")
    assert client.xlen(stream) == 0 or all(i not in dict(client.xrange(stream)) for i in poison_ids)
    assert ledger.fetch(
        "SELECT 1 FROM authorizations WHERE tenant_id = $1 AND authorization_id = $2",
        tenant.tenant_id,
        good.authorization_id,
    ), "the rest is posted"


def test_two_writers_share_the_streams_without_double_posting(
    api: Api, ledger: Ledger, server: ThreadedServer, backing: Backing
) -> None:
    ledger.drain()
    tenants = [api.new_tenant() for _ in range(2)]
    responses = mixed_traffic(api, tenants, 1500, seed=5)
    first = Ledger(server, ledger_settings(backing, writer_slot=101, batch_count_max=32))
    second = Ledger(server, ledger_settings(backing, writer_slot=102, batch_count_max=32))
    try:

        async def both() -> list[int]:
            return list(await asyncio.gather(first.writer.drain(), second.writer.drain()))

        taken = server.call(both(), 120)
        assert all(n > 0 for n in taken), f"both writers must take entries: {taken}"
        assert sum(taken) >= len(responses)
        check_invariants(ledger, tenants, responses)
    finally:
        first.close()
        second.close()


@pytest.fixture(autouse=True)
def _streams_drained_after(ledger: Ledger):  # type: ignore[no-untyped-def]
    yield
    ledger.drain()
