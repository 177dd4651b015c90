"""The ledger writer's loop: read decision records from every shard stream through one
consumer group, post them in batches (one Postgres transaction each), and only then
acknowledge and delete them.

- At-least-once: an entry is acknowledged (and deleted) only after its batch committed, so a
  crash redelivers it; posting is idempotent, so a redelivery changes nothing.
- A restarted writer (same LEDGER_WRITER_SLOT, same consumer name) first re-reads its own
  pending entries; entries pending at a consumer idle for LEDGER_CLAIM_IDLE_MS are claimed.
- Several writers share the streams through the group: each entry goes to one of them.
- Within one writer the shard streams are split between LEDGER_WORKERS processes
  (ledger_writer/workers.py) and each process's streams into LEDGER_LANES lanes. Each lane
  reads, posts (on its own Postgres connection) and acknowledges its own streams' entries,
  so the lanes' batches are written concurrently; a stream belongs to exactly one lane, so
  every shard's records are still posted one batch after another, in stream order. A lane
  reads and prepares its next batch while the current one is written.
- An entry that cannot be parsed, or whose posting the database refuses, goes to the
  dead-letter stream with the error and is acknowledged; it never blocks the rest.
- Postgres or Redis unavailable: the batch is retried with backoff and nothing is
  acknowledged until it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from authz_server.redis_state.keys import Keyspace
from authz_server.services.rpc import DEPENDENCY_ERRORS
from ledger_writer import metrics
from ledger_writer.cards import CardFacts
from ledger_writer.config import LedgerSettings
from ledger_writer.records import Record, RecordError, parse_entry
from ledger_writer.store import BatchResult, PreparedBatch, card_keys, prepare_batch, write_batch, write_prepared

log = logging.getLogger(__name__)

GROUP = "ledger"
# Failures that mean "a dependency is down": retry, acknowledge nothing.
RETRYABLE: tuple[type[BaseException], ...] = (*DEPENDENCY_ERRORS, RedisError)
T = TypeVar("T")


class StopSignal(Protocol):
    """What a lane checks between batches and while a dependency is down (an asyncio.Event)."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Either:
    """Set as soon as either event is. Both are read directly (no task relays one to the other),
    so a stop takes effect before a lane starts its next batch, as with `stop` alone."""

    first: asyncio.Event
    second: asyncio.Event

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()


CLAIM_COUNT_MAX = 500  # entries one XAUTOCLAIM call may return
LAG_REFRESH_INTERVAL_S = 1.0  # how often the lag gauges are refreshed
RETRY_BACKOFF_MIN_S = 0.05


@dataclass(frozen=True, slots=True)
class Entry:
    stream: str
    entry_id: bytes
    fields: dict[bytes, bytes] | None  # None: deleted while pending


@dataclass(frozen=True, slots=True)
class Parsed:
    """A batch as read, its records parsed: what goes to Postgres and what is poison, and the
    records already turned into rows if everything they need about cards was known."""

    batch: list[Entry]
    records: list[tuple[Entry, Record]]
    poison: list[tuple[Entry, str]]
    prepared: PreparedBatch | None = None


def dead_letter_stream(keyspace: Keyspace) -> str:
    return f"{keyspace.prefix}:deadletter"


class LedgerWriter:
    """Posts the shard streams' records. One worker of `worker_count` (ledger_writer/workers.py)
    posts streams worker_index, worker_index + worker_count, ...; by default, all of them."""

    def __init__(
        self,
        settings: LedgerSettings,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        worker_index: int = 0,
        worker_count: int = 1,
    ) -> None:
        assert 0 <= worker_index < worker_count, f"worker {worker_index} of {worker_count}"
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self.keyspace = Keyspace(settings.key_prefix, settings.shard_count)
        self.streams = self.keyspace.streams()
        self.consumer = f"writer-{settings.writer_slot}"
        self.dead_letter = dead_letter_stream(self.keyspace)
        self.card_facts = CardFacts(settings.card_cache_max)  # shared by the lanes
        own = self.streams[worker_index::worker_count]
        assert own, f"worker {worker_index} of {worker_count} has no stream of the {len(self.streams)}"
        lane_count = min(settings.lanes, len(own))
        # Stream i goes to lane i mod lanes: disjoint, and every stream has exactly one lane.
        self.lanes: list[list[str]] = [own[lane::lane_count] for lane in range(lane_count)]

    async def ensure_groups(self) -> None:
        """Creates the consumer group on every shard stream (from the start of the stream)."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def run(self, stop: asyncio.Event) -> None:
        """Posts until `stop` is set; returns after every lane has posted the batch in hand.
        A lane that fails for any reason but a dependency being down stops the others."""
        await self._with_retry(self.ensure_groups, stop, "redis")
        # A lane's failure stops the others twice over: the task group cancels them, and `halt`
        # (which every lane checks, with `stop`, between batches and while a dependency is down)
        # is set. The event does not depend on the cancellation being delivered: library code
        # can lose one (Python 3.11's asyncio.wait_for, which redis-py puts around socket writes
        # when a socket timeout is set, returns the result if the write completes as the
        # cancellation arrives), and a lane that lost it would go on posting, and the writer
        # never return, after a failure. That was seen once under load (.ci/run, 2026-11-25);
        # which library lost the cancellation there was not pinned down, so both ways are
        # closed: this event, and _with_retry not retrying an error that replaced a cancellation.
        halt = asyncio.Event()
        stopping = _Either(stop, halt)

        async def lane(streams: list[str]) -> None:
            try:
                await self._run_lane(streams, stopping)
            finally:
                halt.set()  # failing, cancelled, or stopped: the other lanes stop too

        async with asyncio.TaskGroup() as lanes:
            for streams in self.lanes:
                lanes.create_task(lane(streams))

    async def _run_lane(self, streams: list[str], stop: StopSignal) -> None:
        while not stop.is_set():  # this consumer's own pending entries first (after a restart)
            pending = await self._with_retry(lambda: self._read(streams, "0"), stop, "redis")
            if not pending:
                break
            await self.post(pending, stop)
        next_claim = 0.0

        async def read_next() -> Parsed | None:
            nonlocal next_claim
            batch = await self._with_retry(lambda: self._read_batch(streams), stop, "redis") or []
            if time.monotonic() >= next_claim:
                batch += await self._with_retry(lambda: self._claim_idle(streams), stop, "redis") or []
                next_claim = time.monotonic() + self.settings.claim_idle_ms / 2000
            return self._prepare(self._parse(batch)) if batch else None

        # The next batch is read, parsed and prepared while this one is written (its Redis and
        # Python work overlaps this one's wait for Postgres). Reading ahead acknowledges nothing:
        # an entry leaves its stream only after its own batch committed, and batches are still
        # posted one after another, in stream order.
        ahead: asyncio.Task[Parsed | None] | None = None
        try:
            while not stop.is_set():
                parsed = await (ahead or read_next())
                ahead = None
                if parsed is None:
                    continue
                if not stop.is_set():
                    ahead = asyncio.create_task(read_next())
                await self._post(parsed, stop)
        except BaseException:
            if ahead is not None:  # the lane is failing or cancelled: so is what it read ahead
                if ahead.done() and not ahead.cancelled():
                    ahead.exception()  # retrieved, so that only the lane's own error is reported
                ahead.cancel()
            raise
        if ahead is not None:
            await ahead  # stopping: what it read stays pending, for the next start

    async def drain(self) -> int:
        """Posts every entry available now (pending ones first), then returns how many it took.
        For tests, tools and catching up; `run` is the long-lived loop. The lanes drain
        concurrently, as in `run`."""
        taken = await asyncio.gather(*(self._drain_lane(streams) for streams in self.lanes))
        return sum(taken)

    async def _drain_lane(self, streams: list[str]) -> int:
        stop = asyncio.Event()
        taken = 0
        for start in ("0", ">"):
            while True:
                batch = await self._read(streams, start)
                if not batch:
                    break
                await self.post(batch, stop)
                taken += len(batch)
        return taken

    async def _read(
        self, streams: list[str], start: str, block_ms: int | None = None, count: int | None = None
    ) -> list[Entry]:
        """Up to `count` entries of each of `streams` (by default the lane's share of a batch)."""
        try:
            reply: Any = await self.redis.xreadgroup(
                GROUP,
                self.consumer,
                dict.fromkeys(streams, start),
                count=count or max(1, self.settings.batch_count_max // len(streams)),
                block=block_ms,
            )
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # Redis lost the streams (restarted empty, flushed): recreate the group and go on.
            log.warning("consumer group missing; recreating it")
            await self.ensure_groups()
            return []
        return [
            Entry(stream.decode() if isinstance(stream, bytes) else stream, entry_id, fields or None)
            for stream, entries in reply or []
            for entry_id, fields in entries
        ]

    async def _read_batch(self, streams: list[str]) -> list[Entry]:
        """New entries of `streams` until the batch is full or batch_wait_ms passed since the
        first one."""
        batch = await self._read(streams, ">", block_ms=self.settings.batch_wait_ms)
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        while batch and len(batch) < self.settings.batch_count_max:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            # COUNT is per stream: ask each for its share of the room left, so that the batch
            # stays within batch_count_max.
            room = self.settings.batch_count_max - len(batch)
            if room < len(streams):
                break
            more = await self._read(streams, ">", block_ms=remaining_ms, count=room // len(streams))
            if not more:
                break
            batch += more
        return batch

    async def _claim_idle(self, streams: list[str]) -> list[Entry]:
        """Entries of `streams` pending too long at other consumers, taken over (XAUTOCLAIM
        until 0-0)."""
        claimed: list[Entry] = []
        for stream in streams:
            cursor: bytes | str = "0-0"
            while len(claimed) < self.settings.batch_count_max:
                reply = await self.redis.xautoclaim(
                    stream, GROUP, self.consumer, self.settings.claim_idle_ms, start_id=cursor, count=CLAIM_COUNT_MAX
                )
                cursor, entries = reply[0], reply[1]
                claimed += [Entry(stream, entry_id, fields or None) for entry_id, fields in entries]
                if cursor in (b"0-0", "0-0"):
                    break
        if claimed:
            metrics.CLAIMED.inc(len(claimed))
            log.info("claimed %d idle entries", len(claimed))
        return claimed

    async def post(self, batch: list[Entry], stop: StopSignal) -> None:
        """Posts one batch: dead-letters what cannot be parsed, commits the rest (retrying while
        a dependency is down), then acknowledges and deletes every entry of the batch."""
        await self._post(self._prepare(self._parse(batch)), stop)

    @staticmethod
    def _parse(batch: list[Entry]) -> Parsed:
        records: list[tuple[Entry, Record]] = []
        poison: list[tuple[Entry, str]] = []
        for entry in batch:
            if entry.fields is None:
                continue  # deleted while pending: acknowledged below, nothing to post
            try:
                records.append((entry, parse_entry(entry.fields)))
            except RecordError as error:
                poison.append((entry, f"unparseable: {error}"))
        return Parsed(batch, records, poison)

    def _prepare(self, parsed: Parsed) -> Parsed:
        """The batch with its rows built now (off the critical path, while the previous batch is
        written) when the cards it names are all in memory; otherwise as it is, to be prepared
        in its transaction after reading them."""
        records = [record for _, record in parsed.records]
        account_keys, version_keys = card_keys(records)
        known = self.card_facts.known(account_keys, version_keys)
        if known is None:
            return parsed
        try:
            prepared = prepare_batch(records, *known)
        except AssertionError:
            return parsed  # an invariant broken: let it fail where a batch is written, as always
        return Parsed(parsed.batch, parsed.records, parsed.poison, prepared)

    async def _post(self, parsed: Parsed, stop: StopSignal) -> None:
        poison = parsed.poison
        if parsed.records:
            refused = await self._with_retry(lambda: self._commit(parsed.records, parsed.prepared), stop, "postgres")
            if refused is None:
                return  # stopping while a dependency is down: leave the batch pending
            poison = poison + refused
        if poison:
            await self._with_retry(lambda: self._dead_letter(poison), stop, "redis")
        await self._with_retry(lambda: self._ack(parsed.batch), stop, "redis")

    async def _commit(
        self, records: list[tuple[Entry, Record]], prepared: PreparedBatch | None = None
    ) -> list[tuple[Entry, str]]:
        """Writes the batch (from its prepared rows if given) in one transaction. If the database
        refuses it (not a connection problem), writes the records one by one and returns those
        it refused, with why."""
        try:
            await self._write([r for _, r in records], prepared)
            return []
        except DEPENDENCY_ERRORS:
            raise
        except asyncpg.PostgresError:
            log.warning("batch of %d refused; posting one by one to isolate the poison", len(records))
        refused: list[tuple[Entry, str]] = []
        for entry, record in records:
            try:
                await self._write([record])
            except DEPENDENCY_ERRORS:
                raise
            except (asyncpg.PostgresError, AssertionError) as error:
                refused.append((entry, f"refused by the ledger: {type(error).__name__}: {error}"))
        return refused

    async def _write(self, records: list[Record], prepared: PreparedBatch | None = None) -> None:
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            result: BatchResult = await (
                write_prepared(conn, prepared) if prepared else write_batch(conn, records, self.card_facts)
            )
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(records))
        metrics.AUTHORIZATIONS.inc(result.authorizations)
        for kind, count in result.postings.items():
            metrics.POSTINGS.labels(kind).inc(count)
        for kind, count in result.events.items():
            metrics.EVENTS.labels(kind).inc(count)

    async def _dead_letter(self, poison: list[tuple[Entry, str]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry, error in poison:
                fields: dict[bytes | str, bytes | str] = {
                    "stream": entry.stream,
                    "entry_id": entry.entry_id,
                    "error": error[:1000],
                }
                fields.update({b"orig:" + k: v for k, v in (entry.fields or {}).items()})
                pipe.xadd(self.dead_letter, fields)  # type: ignore[arg-type]
            await pipe.execute()
        metrics.DEAD_LETTERS.inc(len(poison))
        for entry, error in poison:
            original = entry.fields or {}
            log.error(
                "dead-lettered %s %s: %s",
                entry.stream,
                entry.entry_id.decode(),
                error,
                extra={"decision_id": original.get(b"n", b"").decode(errors="replace")},
            )

    async def _ack(self, batch: list[Entry]) -> None:
        """Acknowledges and deletes posted entries: only acknowledged entries ever leave a stream."""
        ids: dict[str, list[bytes]] = defaultdict(list)
        for entry in batch:
            ids[entry.stream].append(entry.entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, entry_ids in ids.items():
                pipe.xack(stream, GROUP, *entry_ids)
                pipe.xdel(stream, *entry_ids)
            await pipe.execute()

    async def _with_retry(self, operation: Callable[[], Awaitable[T]], stop: StopSignal, dependency: str) -> T | None:
        """Runs `operation` until it succeeds, backing off while a dependency is down; returns
        None if `stop` is set before it could."""
        backoff_s = RETRY_BACKOFF_MIN_S
        while True:
            try:
                return await operation()
            except RETRYABLE as error:
                if stop.is_set():
                    return None
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Cancelled while the operation ran, and a clean-up on the way out raised
                    # this error in place of the CancelledError: the cancellation wins; retrying
                    # would keep a cancelled lane going.
                    raise asyncio.CancelledError() from error
                metrics.RETRIES.labels(dependency).inc()
                log.warning("%s unavailable (%s); retrying in %.2fs", dependency, type(error).__name__, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self.settings.retry_backoff_max_ms / 1000)

    async def refresh_lag(self) -> None:
        """Sets the lag gauges: a stream holds exactly the entries not yet posted and acknowledged."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.streams:
                pipe.xlen(stream)
            lengths = await pipe.execute()
        for shard, length in enumerate(lengths):
            metrics.LAG.labels(str(shard)).set(length)

    async def run_lag_gauges(self, stop: asyncio.Event) -> None:
        """Refreshes the lag gauges every LAG_REFRESH_INTERVAL_S until `stop` is set."""
        while not stop.is_set():
            try:
                await self.refresh_lag()
            except (RedisError, OSError):
                pass
            await sleep_unless_set(stop, LAG_REFRESH_INTERVAL_S)


async def sleep_unless_set(stop: asyncio.Event, seconds: float) -> None:
    """Waits `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
