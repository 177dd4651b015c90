"""A server process stops on SIGTERM even if one of its periodic tasks (health probe, metrics
sync, tombstone retries) loses its cancellation: they also end on the shutdown flag
(authz_server/server.py, AuthzServer.shutdown)."""

from __future__ import annotations

import asyncio
import time

from authz_server.clock import SettableClock
from tests.support.stack import EPOCH_MS, Backing, ThreadedServer, server_settings, wait_until


def test_shutdown_ends_though_a_periodic_task_lost_its_cancellation(backing: Backing) -> None:
    server = ThreadedServer(server_settings(backing), SettableClock(EPOCH_MS)).start()
    probe = server.server._probe_health
    waiting = False
    absorbed = 0

    async def probe_that_loses_a_cancellation() -> None:
        nonlocal waiting, absorbed
        if not absorbed:
            waiting = True
            try:
                await asyncio.sleep(30)  # until cancelled
            except asyncio.CancelledError:
                absorbed += 1  # lost, as asyncio.wait_for can lose it: the probe goes on
        await probe()

    server.server._probe_health = probe_that_loses_a_cancellation  # type: ignore[method-assign]
    try:
        assert wait_until(lambda: waiting, timeout_s=10), "the periodic probe ran"
    finally:
        started = time.monotonic()
        server.stop()
        took_s = time.monotonic() - started
    assert absorbed == 1, "the probe lost the cancellation, as the test means it to"
    assert server.server._stopped.is_set(), "shutdown completed"
    assert took_s < 10, f"shutdown took {took_s:.1f}s"
