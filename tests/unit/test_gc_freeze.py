"""A server process freezes what it keeps (server.freeze_periodically): long-lived objects leave
the collector's generations, so no full collection has to walk the worker's caches."""

from __future__ import annotations

import asyncio
import gc

import pytest

from authz_server import server


async def test_freeze_periodically_moves_survivors_out_of_the_collectors_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "GC_FREEZE_INTERVAL_S", 0.01)
    kept = [[i] for i in range(5000)]  # long-lived, GC-tracked
    frozen_before = gc.get_freeze_count()
    task = asyncio.create_task(server.freeze_periodically())
    try:
        await asyncio.sleep(0.1)
        frozen_after = gc.get_freeze_count()
    finally:
        task.cancel()
        gc.unfreeze()  # give this test process its collector back
    assert len(kept) == 5000
    assert frozen_after >= frozen_before + len(kept)
