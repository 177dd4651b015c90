"""The decision lane: authorize.lua calls over one dedicated, pipelined Redis connection per
process, encoded and parsed by hiredis.

Why not redis-py's asyncio Pipeline: measured on the benchmark machine, it costs 35-58 us of
client CPU per script call (a Pipeline object, a pooled connection, argument encoding in Python,
response callbacks), a third of what a whole decision may cost. Here a call is one
`hiredis.pack_command` and one future: every call made in the same event-loop turn goes out in
one write, and replies are matched to callers in order (Redis answers a connection's commands
in the order they were sent). 7-13 us per call in the same measurement.

redis-py still owns everything else about the connection: `connect()` of the client's own
connection class does TCP or unix sockets, TLS, AUTH, SELECT and keepalive exactly as the rest
of the server's connections; the lane then takes over that connection's transport (replies are
parsed in its data callback, no reader task between).

Failure semantics, which the Decider relies on to fail closed:
- A caller that gives up (its decision budget ran out) only stops waiting: its call was sent and
  its reply will be read and dropped in turn; lua/tombstone.lua decides what a late result means.
- Any connection failure fails every call waiting on that connection with a ConnectionError
  (a RedisError) and drops the connection; the next call connects again. A connection attempt
  that fails makes calls fail at once for RECONNECT_INTERVAL_S, instead of each trying again.
- NOSCRIPT (Redis restarted or flushed its script cache) re-sends that call as EVAL with the
  script's source, which also caches it again.
- Error replies (a script error, LOADING, BUSY...) are raised to their caller as ResponseError.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Protocol

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError

ScriptArg = bytes | str | int

RECONNECT_INTERVAL_S = 0.1  # after a failed connection attempt, calls fail at once this long


class ScriptCaller(Protocol):
    async def call(self, keys: Sequence[str], args: Sequence[ScriptArg], deadline: float | None = None) -> object:
        """The script's reply; TimeoutError once the event loop's clock passes `deadline`."""
        ...


class _Link(asyncio.Protocol):
    """One open connection: what was sent and not yet answered, in order. It takes over the
    transport of a redis-py connection once that has connected (TLS, AUTH, SELECT done): replies
    are parsed as they arrive, in the transport's own callback, without a reader task."""

    def __init__(self, connection: AbstractConnection, loop: asyncio.AbstractEventLoop) -> None:
        self.connection = connection
        # Kept, not asked for per call: asyncio.get_running_loop() makes a getpid() system call.
        self.loop = loop
        # redis-py's asyncio connections keep their stream writer here once connected.
        writer: asyncio.StreamWriter = connection._writer  # type: ignore[assignment]
        self.transport = writer.transport
        self.parser = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.outgoing: list[bytes] = []
        self.flush_scheduled = False
        self.failure: BaseException | None = None
        self.transport.set_protocol(self)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.failure is not None:
            raise RedisConnectionError(f"decision connection failed: {type(self.failure).__name__}")
        future: asyncio.Future[Any] = self.loop.create_future()
        self.outgoing.append(packed)
        self.waiting.append(future)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.failure is not None:
            return
        data, self.outgoing = b"".join(self.outgoing), []
        try:
            self.transport.write(data)
        except Exception as error:  # the transport is gone: fail what waits
            self.fail(error)

    def data_received(self, data: bytes) -> None:
        """Matches replies to callers, in order."""
        try:
            self.parser.feed(data)
            while (reply := self.parser.gets()) is not False:
                future = self.waiting.popleft()
                if future.done():
                    continue  # the caller gave up waiting
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except Exception as error:  # a protocol error, or a reply nobody asked for
            self.fail(error)

    def eof_received(self) -> bool:
        self.fail(RedisConnectionError("Redis closed the decision connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or RedisConnectionError("the decision connection was closed"))

    def fail(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
            with contextlib.suppress(Exception):
                self.transport.abort()
        cause = RedisConnectionError(f"decision connection failed: {type(error).__name__}: {error}")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(cause)


class ScriptLane:
    """Runs one script over a dedicated pipelined connection (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, script: AsyncScript) -> None:
        self._pool = redis.connection_pool
        self._sha = script.sha
        source = script.script
        self._source: bytes = source.encode() if isinstance(source, str) else bytes(source)
        self._link: _Link | None = None
        self._connecting: asyncio.Task[_Link] | None = None
        self._connect_error: BaseException | None = None
        self._retry_at = 0.0
        self._closed = False

    async def call(self, keys: Sequence[str], args: Sequence[ScriptArg], deadline: float | None = None) -> object:
        """The script's reply for these keys and args; raises a RedisError if it cannot be had,
        TimeoutError once the event loop's clock (loop.time()) passes `deadline`. The deadline
        is a timer on the reply's future: cheaper per call than an asyncio.timeout() block."""
        link = self._link
        if link is None or link.failure is not None:
            link = await self._connected_by(deadline)
        try:
            return await _awaited_by(link, link.send(_pack(("EVALSHA", self._sha, len(keys), *keys, *args))), deadline)
        except ResponseError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        link = await self._connected_by(deadline)
        return await _awaited_by(link, link.send(_pack(("EVAL", self._source, len(keys), *keys, *args))), deadline)

    async def _connected_by(self, deadline: float | None) -> _Link:
        if deadline is None:
            return await self._connected()
        async with asyncio.timeout_at(deadline):
            return await self._connected()

    async def _connected(self) -> _Link:
        link = self._link
        if link is not None and link.failure is None:
            return link
        if self._closed:
            raise RedisConnectionError("the decision lane is closed")
        if self._connecting is None:
            if time.monotonic() < self._retry_at and self._connect_error is not None:
                raise RedisConnectionError(f"Redis unreachable: {self._connect_error}")
            self._connecting = asyncio.ensure_future(self._connect())
        # Shared by every caller: one caller's timeout must not cancel the others' attempt.
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Link:
        try:
            connection: AbstractConnection = self._pool.connection_class(**self._pool.connection_kwargs)
            await connection.connect()
            link = _Link(connection, asyncio.get_running_loop())
        except BaseException as error:
            self._connect_error = error
            self._retry_at = time.monotonic() + RECONNECT_INTERVAL_S
            raise
        finally:
            self._connecting = None
        old, self._link = self._link, link
        if old is not None:
            await _close(old)
        return link

    async def aclose(self) -> None:
        """Closes the connection; calls still waiting fail (shutdown comes after the drain)."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        if self._link is not None:
            await _close(self._link)
            self._link = None


async def _awaited_by(link: _Link, future: asyncio.Future[Any], deadline: float | None) -> object:
    if deadline is None:
        return await future
    timer = link.loop.call_at(deadline, _time_out, future)
    try:
        return await future
    finally:
        timer.cancel()


def _time_out(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _pack(command: tuple[ScriptArg, ...]) -> bytes:
    return hiredis.pack_command(command)  # type: ignore[arg-type]  # the stub types a 1-tuple


async def _close(link: _Link) -> None:
    link.fail(RedisConnectionError("the decision connection was closed"))
    with contextlib.suppress(Exception):
        await link.connection.disconnect(nowait=True)
