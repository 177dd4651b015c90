"""The ledger writer's chores (the lag gauges and the hold sweeper) stop when the writer's stop
event is set, without being cancelled: a cancellation can be lost inside redis-py (Python 3.11's
asyncio.wait_for around a socket write) or turn into a timeout that a chore retries, and a chore
that missed it once kept a writer process alive after SIGTERM (ledger_writer/__main__.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import redis.asyncio as aioredis

from ledger_writer.__main__ import run_sweeper
from tests.support.stack import Backing, Ledger, ThreadedServer, ledger_settings


def test_the_chores_stop_on_the_stop_event_even_if_they_lose_a_cancellation(
    server: ThreadedServer, backing: Backing
) -> None:
    settings = replace(ledger_settings(backing, writer_slot=401), sweep_interval_s=0.05)
    ledger = Ledger(server, settings)
    writer = ledger.writer
    refresh = writer.refresh_lag
    absorbed = 0

    async def refresh_absorbing_a_cancellation() -> None:
        nonlocal absorbed
        if not absorbed:  # the first refresh waits for the cancellation, and loses it
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                absorbed += 1  # lost, as asyncio.wait_for can lose it: the chore goes on
        await refresh()

    writer.refresh_lag = refresh_absorbing_a_cancellation  # type: ignore[method-assign]

    async def run_then_stop() -> tuple[float, bool, bool]:
        redis = aioredis.Redis.from_url(backing.redis_url)
        stop = asyncio.Event()
        gauges = asyncio.create_task(writer.run_lag_gauges(stop))
        sweeper = asyncio.create_task(run_sweeper(redis, writer, settings, stop))
        try:
            await asyncio.sleep(0.3)  # the sweeper has swept a few times; the gauges wait
            gauges.cancel()  # lost, below: only the event can stop it now
            await asyncio.sleep(0.01)
            assert not gauges.done(), "the cancellation was lost, as the test means it to be"
            started = time.monotonic()
            stop.set()
            done, _ = await asyncio.wait([gauges, sweeper], timeout=5)
            return time.monotonic() - started, gauges in done, sweeper in done
        finally:
            await redis.aclose()

    try:
        took_s, gauges_stopped, sweeper_stopped = server.call(run_then_stop(), 30)
    finally:
        writer.refresh_lag = refresh  # type: ignore[method-assign]
        ledger.close()
    assert gauges_stopped and sweeper_stopped, "both chores end once stop is set"
    assert absorbed == 1
    assert took_s < 2, f"they stop at once, not after a full interval: {took_s:.2f}s"
