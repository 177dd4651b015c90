"""`ledger-writer` / `python -m ledger_writer`: post decision records to the Postgres ledger
until SIGTERM or SIGINT. Ready when LEDGER_METRICS_PORT answers. With LEDGER_WORKERS > 1 this
process supervises that many worker processes (ledger_writer/workers.py), each posting its
share of the shard streams; with 1 it posts them all itself."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys

import asyncpg
import redis.asyncio as aioredis
import uvloop
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from authz_server import logs
from authz_server.clock import SystemClock
from authz_server.config import ConfigError
from authz_server.lifecycle import sweep_expired_holds
from authz_server.redis_state.rebuild import ensure_projection
from authz_server.redis_state.scripts import Scripts
from authz_server.store.migrate import migrate
from ledger_writer.config import LedgerSettings
from ledger_writer.consumer import LedgerWriter, sleep_unless_set
from ledger_writer.workers import WORKER_INDEX_ENV, mark_ready, run_workers

log = logging.getLogger("ledger_writer")
# Container objects allocated between young-generation collections (Python's default: 700). A
# batch of 1,000 records allocates tens of thousands (records, rows, payloads, arrays): with
# the default the collector ran hundreds of times per drain, about a tenth of the writer's CPU.
GC_GEN0_THRESHOLD = 20_000
CHORES_STOP_WAIT_S = 5.0  # how long the lag gauges and the sweeper may take to stop


async def run_sweeper(
    redis: aioredis.Redis, writer: LedgerWriter, settings: LedgerSettings, stop: asyncio.Event
) -> None:
    """Releases expired holds every LEDGER_SWEEP_INTERVAL_S (any number of writers may sweep)
    until `stop` is set."""
    scripts = Scripts.register(redis)
    clock = SystemClock()
    while not stop.is_set():
        await sleep_unless_set(stop, settings.sweep_interval_s)
        if stop.is_set():
            break
        try:
            released = await sweep_expired_holds(redis, scripts, writer.keyspace, clock.now_ms())
        except (RedisError, OSError) as error:
            log.warning("hold sweep failed: %s", type(error).__name__)
            continue
        if released:
            log.info("released %d expired holds", released)


async def serve(settings: LedgerSettings, worker_index: int = 0, worker_count: int = 1) -> None:
    """Posts this process's share of the streams until SIGTERM or SIGINT. The only process
    (worker_count 1) serves the metrics endpoint itself; workers leave it to their parent.
    Worker 0 (or the only process) also keeps the lag gauges and sweeps expired holds."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=settings.pg_pool_size_max)
    assert pool is not None
    async with pool.acquire() as conn:
        await migrate(conn)
    redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=5.0)
    writer = LedgerWriter(settings, redis, pool, worker_index, worker_count)
    # Like the server, a writer that finds no projection marker rebuilds it (one process at a time).
    await ensure_projection(
        pool, redis, writer.keyspace, Scripts.register(redis), SystemClock().now_ms(), settings.replay_retention_s
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await writer.ensure_groups()
    if settings.metrics_port and worker_count == 1:
        start_http_server(settings.metrics_port, addr=settings.metrics_addr)
    log.info(
        "ledger-writer %s (worker %d of %d) consuming %d shard streams in %d lanes",
        writer.consumer,
        worker_index,
        worker_count,
        sum(len(streams) for streams in writer.lanes),
        len(writer.lanes),
    )
    # Everything allocated so far (modules, pools, caches) lives as long as the process: keep
    # the collector off it, and collect the young generation less often.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    chores = []
    if worker_index == 0:
        chores = [
            asyncio.create_task(writer.run_lag_gauges(stop)),
            asyncio.create_task(run_sweeper(redis, writer, settings, stop)),
        ]
    mark_ready(worker_index)
    try:
        await writer.run(stop)
    finally:
        # The chores stop on `stop` (set here too when the writer failed), not by cancellation:
        # a cancellation can be lost in redis-py's socket write under Python 3.11, or turn into
        # a timeout the chore retries, and a chore that missed it kept this process alive after
        # SIGTERM. Cancelled only if one has not stopped within CHORES_STOP_WAIT_S.
        stop.set()
        if chores:
            _, late = await asyncio.wait(chores, timeout=CHORES_STOP_WAIT_S)
            for task in late:
                log.warning("a chore did not stop within %.0fs; cancelling it", CHORES_STOP_WAIT_S)
                task.cancel()
        await redis.aclose()
        await pool.close()
        log.info("ledger-writer stopped" if worker_count == 1 else "ledger-writer worker %d stopped", worker_index)


def main() -> int:
    try:
        settings = LedgerSettings.from_env()
    except ConfigError as error:
        print(f"ledger-writer: configuration error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level, "ledger-writer")
    worker_index = os.environ.get(WORKER_INDEX_ENV)
    if worker_index is not None:
        uvloop.run(serve(settings, int(worker_index), settings.workers))
    elif settings.workers > 1:
        return run_workers(settings)
    else:
        uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
