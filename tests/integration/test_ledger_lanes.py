"""The ledger writer's lanes: the shard streams are split between lanes that post at the same
time, every stream belongs to exactly one lane (so a shard's records keep their stream order:
a reversal is never posted before its approval), and the ledger they write together is the
one a single lane writes."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from ledger_writer.consumer import LedgerWriter
from tests.integration.test_ledger_invariants import check_invariants, mixed_traffic
from tests.support import ledger_checks
from tests.support.api import Api, bearer, new_id
from tests.support.stack import Backing, Ledger, ThreadedServer, ledger_settings
from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t


@pytest.mark.parametrize("lanes", [1, 3, 16])
def test_every_stream_belongs_to_exactly_one_lane(lanes: int, backing: Backing) -> None:
    writer = LedgerWriter(ledger_settings(backing, lanes=lanes, pg_pool_size_max=16), None, None)  # type: ignore[arg-type]
    assert len(writer.lanes) == lanes
    assigned = [stream for lane in writer.lanes for stream in lane]
    assert sorted(assigned) == sorted(writer.streams), "each stream in exactly one lane, none left out"
    assert all(lane for lane in writer.lanes), "no lane without streams"


def test_lanes_post_concurrently_and_keep_each_shard_in_order(
    api: Api, ledger: Ledger, server: ThreadedServer, backing: Backing
) -> None:
    ledger.drain()
    tenants = [api.new_tenant() for _ in range(2)]
    responses = mixed_traffic(api, tenants, 800, seed=23)
    # Approvals followed by their reversals, on many cards (so on many shards and every lane):
    # a lane posting a reversal before the approval it releases would refuse it.
    tenant = tenants[0]
    reversed_ids = []
    for _ in range(12):
        card = api.issue_card(tenant)
        approved = api.authorize(tenant.processor, card.card_id, 3000)
        assert approved.decision == t.APPROVE
        request = authorization_pb2.ReverseRequest(
            reversal_id=new_id("rev"), authorization_id=approved.authorization_id, amount_minor=1000
        )
        api.authz.Reverse(request, metadata=bearer(tenant.processor))
        reversed_ids.append(approved.authorization_id)
        responses[(tenant.tenant_id, approved.authorization_id)] = approved
    lanes = Ledger(server, ledger_settings(backing, writer_slot=201, lanes=4, batch_count_max=64))
    try:
        writer = lanes.writer

        async def each_lane() -> list[int]:
            return list(await asyncio.gather(*(writer._drain_lane(streams) for streams in writer.lanes)))

        taken = server.call(each_lane(), 120)
        assert sum(taken) >= len(responses) + len(reversed_ids)
        assert sum(1 for n in taken if n) >= 3, f"the work is spread over the lanes: {taken}"
    finally:
        lanes.close()
    check_invariants(ledger, tenants, responses)
    rows = ledger.fetch(
        """SELECT authorization_id, status, remaining_hold_minor FROM authorizations
           WHERE tenant_id = $1 AND authorization_id = ANY($2)""",
        tenant.tenant_id,
        reversed_ids,
    )
    assert {(r["status"], r["remaining_hold_minor"]) for r in rows} == {("PARTIALLY_REVERSED", 2000)}
    assert len(rows) == len(reversed_ids)
    ledger_checks.assert_balanced(ledger.fetch, [x.tenant_id for x in tenants])


def run_contained(server: ThreadedServer, writer: LedgerWriter, stop: asyncio.Event, timeout_s: float) -> None:
    """Runs the writer until it returns or raises; one still running after `timeout_s` is
    stopped (and the TimeoutError raised), so that it takes no entries from later tests."""
    try:
        server.call(writer.run(stop), timeout_s)
    except TimeoutError:
        server.loop.call_soon_threadsafe(stop.set)
        time.sleep(5)
        raise


@pytest.fixture(autouse=True)
def _streams_drained_after(ledger: Ledger):  # type: ignore[no-untyped-def]
    yield
    ledger.drain()


def test_a_lane_that_fails_stops_the_writer_and_acknowledges_nothing_more(
    api: Api, ledger: Ledger, server: ThreadedServer, backing: Backing
) -> None:
    ledger.drain()
    tenant = api.new_tenant()
    responses = mixed_traffic(api, [tenant], 200, seed=29)
    failing = Ledger(server, ledger_settings(backing, writer_slot=202, lanes=2, batch_count_max=16))
    try:
        writer = failing.writer
        post = writer._post
        calls = 0

        async def post_or_fail(parsed, stop):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("a bug in one lane")
            await post(parsed, stop)

        writer._post = post_or_fail  # type: ignore[method-assign]
        stop = asyncio.Event()
        with pytest.raises(ExceptionGroup) as failed:
            run_contained(server, writer, stop, 60)
        assert failed.group_contains(RuntimeError, match="a bug in one lane")
        writer._post = post  # type: ignore[method-assign]
        failing.drain()  # a restart posts what the failed run left pending, once
    finally:
        failing.close()
    check_invariants(ledger, [tenant], responses)


def test_a_lane_that_absorbs_its_cancellation_still_stops_when_another_lane_fails(
    ledger: Ledger, server: ThreadedServer, backing: Backing
) -> None:
    """Cancelling a task is a request that library code can lose: Python 3.11's asyncio.wait_for
    (which redis-py puts around socket writes when a socket timeout is set) returns the result
    instead of raising if what it waits for completes as the cancellation arrives. A lane that lost the task group's
    cancellation must still stop once another lane failed, or the writer keeps posting after it
    reported its failure, and never returns."""
    ledger.drain()
    failing = Ledger(server, ledger_settings(backing, writer_slot=203, lanes=2, batch_wait_ms=20))
    absorbed = 0
    try:
        writer = failing.writer
        read_batch = writer._read_batch
        failing_lane = writer.lanes[0]

        async def read_or_fail(streams: list[str]) -> list:  # type: ignore[type-arg]
            nonlocal absorbed
            if streams == failing_lane:
                await asyncio.sleep(0.2)
                raise RuntimeError("a bug in one lane")
            try:
                await asyncio.sleep(30)  # longer than the test waits: only a cancellation ends it
            except asyncio.CancelledError:
                absorbed += 1  # lost, as wait_for loses it: the read goes on and returns
            return await read_batch(streams)

        writer._read_batch = read_or_fail  # type: ignore[method-assign]
        stop = asyncio.Event()
        with pytest.raises(ExceptionGroup) as failed:
            run_contained(server, writer, stop, 20)
        assert failed.group_contains(RuntimeError, match="a bug in one lane")
        assert absorbed == 1, "the other lane lost the cancellation, so only the halt could stop it"
    finally:
        failing.close()


def test_a_cancellation_that_a_driver_turns_into_a_dependency_error_is_not_retried(backing: Backing) -> None:
    """Clean-up code that raises while a cancellation unwinds (a rollback, a disconnect) replaces
    the CancelledError with its own error; retried as a dependency being down, the lane would go
    on forever."""
    writer = LedgerWriter(ledger_settings(backing), None, None)  # type: ignore[arg-type]
    attempts = 0

    async def cancelled_into_interface_error() -> None:
        nonlocal attempts
        attempts += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress") from None

    async def cancel_it() -> asyncio.Task[None]:
        task = asyncio.create_task(writer._with_retry(cancelled_into_interface_error, asyncio.Event(), "postgres"))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.wait([task], timeout=5)
        return task

    task = asyncio.run(cancel_it())
    assert task.cancelled(), "the cancellation ends the task"
    assert attempts == 1, "and the operation is not tried again"
