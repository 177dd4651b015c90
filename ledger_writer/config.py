"""Settings of the ledger writer, read from the environment once and validated. The keyspace
settings (AUTHZ_KEY_PREFIX, AUTHZ_SHARDS) are the server's own variables: both processes
must agree on them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from authz_server.config import LOG_LEVELS, ConfigError, Settings, _int


@dataclass(frozen=True)
class LedgerSettings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = field(default="postgresql://postgres@127.0.0.1:5432/postgres", repr=False)
    key_prefix: str = "zc"
    shard_count: int = 16
    # For rebuilding the projection at start-up (the server's AUTHZ_REPLAY_RETENTION_S).
    replay_retention_s: int = 7 * 24 * 3600
    # The writer is ready when this port answers; 0 turns the endpoint off.
    metrics_port: int = 9465
    metrics_addr: str = "127.0.0.1"
    # Most decision records posted in one Postgres transaction.
    batch_count_max: int = 1000
    # Longest a record waits for its batch to fill before the batch is posted anyway.
    batch_wait_ms: int = 20
    # Entries pending longer than this at another consumer are claimed (the consumer is gone).
    claim_idle_ms: int = 30_000
    # Stable per writer process: its consumer name is `writer-<slot>`, so a restarted writer
    # re-reads its own pending entries first.
    writer_slot: int = 0
    # Writer processes (ledger_writer/workers.py): the shard streams are split between them, so
    # that the writer's Python work (parsing, building rows, encoding them) uses more than one
    # core; 1 posts in the one process. On 2 cores 3 posted the most (each worker waits on
    # Postgres much of the time), ahead of 2 workers with 2 lanes each.
    workers: int = 3
    # Each worker's streams are split into this many lanes, each posting its own batches on its
    # own Postgres connection at the same time as the others (Postgres then works on several
    # batches at once, and one lane's Python work overlaps another's commit). At most one lane
    # per shard stream, and at most pg_pool_size_max: each lane holds a connection while it writes.
    lanes: int = 1
    pg_pool_size_max: int = 4
    # Cards (account refs, and policies at a version) kept in memory between batches: what the
    # writer reads about a card never changes, so a card is read once, not once per batch.
    card_cache_max: int = 100_000
    # Longest pause between retries while Postgres is unavailable.
    retry_backoff_max_ms: int = 2000
    # How often expired holds are looked for and released.
    sweep_interval_s: int = 10
    log_format: str = "text"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LedgerSettings:
        env = os.environ if env is None else env
        d = cls()
        # The keyspace variables are validated exactly as the server validates them.
        shared_names = ("AUTHZ_KEY_PREFIX", "AUTHZ_SHARDS", "AUTHZ_REPLAY_RETENTION_S")
        shared = Settings.from_env({k: v for k, v in env.items() if k in shared_names})
        settings = cls(
            redis_url=env.get("REDIS_URL") or d.redis_url,
            database_url=env.get("DATABASE_URL") or d.database_url,
            key_prefix=shared.key_prefix,
            shard_count=shared.shard_count,
            replay_retention_s=shared.replay_retention_s,
            metrics_port=_int(env, "LEDGER_METRICS_PORT", d.metrics_port, 0, 65535),
            metrics_addr=env.get("LEDGER_METRICS_ADDR") or d.metrics_addr,
            batch_count_max=_int(env, "LEDGER_BATCH_COUNT_MAX", d.batch_count_max, 1, 100_000),
            batch_wait_ms=_int(env, "LEDGER_BATCH_WAIT_MS", d.batch_wait_ms, 1, 60_000),
            claim_idle_ms=_int(env, "LEDGER_CLAIM_IDLE_MS", d.claim_idle_ms, 100, 86_400_000),
            writer_slot=_int(env, "LEDGER_WRITER_SLOT", d.writer_slot, 0, 10_000),
            workers=_int(env, "LEDGER_WORKERS", d.workers, 1, 64),
            lanes=_int(env, "LEDGER_LANES", d.lanes, 1, 64),
            pg_pool_size_max=_int(env, "LEDGER_PG_POOL_SIZE_MAX", d.pg_pool_size_max, 1, 100),
            card_cache_max=_int(env, "LEDGER_CARD_CACHE_MAX", d.card_cache_max, 1, 100_000_000),
            retry_backoff_max_ms=_int(env, "LEDGER_RETRY_BACKOFF_MAX_MS", d.retry_backoff_max_ms, 10, 60_000),
            sweep_interval_s=_int(env, "LEDGER_SWEEP_INTERVAL_S", d.sweep_interval_s, 1, 3600),
            log_format=env.get("AUTHZ_LOG_FORMAT") or d.log_format,
            log_level=(env.get("AUTHZ_LOG_LEVEL") or d.log_level).upper(),
        )
        if settings.workers * settings.lanes > settings.shard_count:
            raise ConfigError(
                f"LEDGER_WORKERS={settings.workers} x LEDGER_LANES={settings.lanes} must not exceed "
                f"AUTHZ_SHARDS={settings.shard_count} (every lane needs a stream of its own)"
            )
        if settings.lanes > settings.pg_pool_size_max:
            raise ConfigError(
                f"LEDGER_LANES={settings.lanes} must not exceed LEDGER_PG_POOL_SIZE_MAX={settings.pg_pool_size_max}"
            )
        if settings.log_level not in LOG_LEVELS:
            raise ConfigError(f"AUTHZ_LOG_LEVEL={settings.log_level!r} must be one of {', '.join(LOG_LEVELS)}")
        if settings.log_format not in ("text", "json"):
            raise ConfigError(f"AUTHZ_LOG_FORMAT={settings.log_format!r} must be 'text' or 'json'")
        return settings
