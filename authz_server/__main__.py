"""`authz-server` / `python -m authz_server`:

authz-server                      serve the gRPC API until SIGTERM or SIGINT
authz-server rebuild-projection   rebuild the Redis projection from Postgres now
"""

from __future__ import annotations

import argparse
import os
import sys

import uvloop
from prometheus_client import start_http_server

from authz_server import logs
from authz_server.clock import SystemClock
from authz_server.config import ConfigError, Settings
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.rebuild import rebuild_projection
from authz_server.redis_state.scripts import Scripts
from authz_server.server import redis_client, serve
from authz_server.store.db import create_pool
from authz_server.store.migrate import migrate
from authz_server.workers import WORKER_INDEX_ENV, run_workers


async def rebuild(settings: Settings, allow_unposted: bool) -> int:
    """Rebuilds the projection; refuses while decisions wait unposted in the streams (they
    would be missing from the counters), unless told otherwise."""
    pool = await create_pool(settings)
    redis = redis_client(settings)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        keyspace = Keyspace(settings.key_prefix, settings.shard_count)
        unposted = sum([await redis.xlen(stream) for stream in keyspace.streams()])
        if unposted and not allow_unposted:
            print(
                f"rebuild-projection: {unposted} decisions are not posted yet; run the ledger writer until the "
                "streams are empty, or pass --allow-unposted",
                file=sys.stderr,
            )
            return 1
        report = await rebuild_projection(
            pool, redis, keyspace, Scripts.register(redis), SystemClock().now_ms(), settings.replay_retention_s
        )
        print(
            f"projection rebuilt: {report.cards} cards, {report.counters} counter sets, "
            f"{report.replay_records} replay records in {report.seconds:.2f}s"
        )
        return 0
    finally:
        await redis.aclose()
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="authz-server", description="Zentra Cards authorization server")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the gRPC API (the default)")
    rebuild_parser = commands.add_parser("rebuild-projection", help="rebuild the Redis projection from Postgres")
    rebuild_parser.add_argument(
        "--allow-unposted", action="store_true", help="rebuild even though the streams hold unposted decisions"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"authz-server: configuration error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level, "authz-server")
    if args.command == "rebuild-projection":
        return uvloop.run(rebuild(settings, args.allow_unposted))
    if os.environ.get(WORKER_INDEX_ENV) is not None:
        # One of several workers: the parent serves the (aggregated) metrics endpoint.
        uvloop.run(serve(settings, reuse_port=True))
        return 0
    if settings.workers > 1:
        return run_workers(settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_addr)
    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
