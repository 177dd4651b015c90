"""Pipelining concurrent decisions: every decision script call that becomes ready in the same
event-loop turn goes to Redis in one pipeline, one round trip and one write, instead of one
each. The profile of a busy worker showed a quarter of its time in redis-py's per-command
work (pool, packing, a write per call); a pipeline pays that once per batch.

A caller that gives up on its call (its decision budget ran out) only stops waiting: the batch
still runs, and the script's own replay and tombstone rules decide what that late result means
(lua/tombstone.lua). The connection is never abandoned mid-reply."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

ScriptArg = bytes | str | int

BATCH_COUNT_MAX = 128  # script calls per pipeline; more wait for the next one


class ScriptCaller(Protocol):
    async def call(self, keys: Sequence[str], args: Sequence[ScriptArg]) -> object: ...


class ScriptBatcher:
    """Runs calls of one script in pipelines, as many per round trip as are ready together."""

    def __init__(self, redis: aioredis.Redis, script: AsyncScript, batch_count_max: int = BATCH_COUNT_MAX) -> None:
        assert batch_count_max > 0
        self._redis = redis
        self._script = script
        self._batch_count_max = batch_count_max
        self._queue: list[tuple[Sequence[str], Sequence[ScriptArg], asyncio.Future[object]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, keys: Sequence[str], args: Sequence[ScriptArg]) -> object:
        """The script's reply for these keys and args (raises what the script raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._queue.append((keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while self._queue:
            batch, self._queue = self._queue[: self._batch_count_max], self._queue[self._batch_count_max :]
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Sequence[str], Sequence[ScriptArg], asyncio.Future[object]]]) -> None:
        try:
            replies = await self._pipeline(batch)
            if any(isinstance(reply, NoScriptError) for reply in replies):
                # Redis lost its script cache (restart, failover, SCRIPT FLUSH): load and redo.
                await self._redis.script_load(self._script.script)
                replies = await self._pipeline(batch)
        except BaseException as error:  # the whole round trip failed: every caller fails closed
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error if isinstance(error, Exception) else ConnectionError(str(error)))
            if not isinstance(error, Exception):
                raise
            return
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue  # the caller gave up waiting
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(
        self, batch: list[tuple[Sequence[str], Sequence[ScriptArg], asyncio.Future[object]]]
    ) -> list[object]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))
