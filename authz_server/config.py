"""One frozen settings object, read from the environment once and validated at start-up.

Every limit is named with its unit last and says why it exists. A value outside its
bounds stops the process with a message naming the variable, the value and the bounds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

_KEY_PREFIX = re.compile(r"[A-Za-z0-9_]{1,32}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting is missing or outside its bounds; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside [{low}, {high}]")
    return value


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of authz-server (and the parts ledger-writer shares)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    listen_addr: str = "127.0.0.1:50051"
    # Bootstrap token for TenantService; empty disables TenantService (every call is denied).
    admin_token: str = field(default="", repr=False)
    # Server processes sharing the listen port (SO_REUSEPORT); from the environment the default
    # is the number of CPUs.
    workers: int = 1
    # Prometheus metrics HTTP port; 0 turns the endpoint off.
    metrics_port: int = 9464
    # Address the metrics endpoint binds to (0.0.0.0 in containers).
    metrics_addr: str = "127.0.0.1"
    # Longest time a decision may take before it fails closed (DECLINE / SYSTEM_UNAVAILABLE).
    decision_budget_ms: int = 50
    # How long an administrative call may wait for Postgres or Redis before UNAVAILABLE.
    admin_timeout_ms: int = 3000
    # How long replay records (and fail-closed tombstones) are kept; DESIGN asks >= 7 days.
    replay_retention_s: int = 7 * 24 * 3600
    # Logical shards of cards; each has its own hash tag and decision stream. Fixed per deployment.
    shard_count: int = 16
    # Decisions allowed to wait unacknowledged in one shard's stream; past it Authorize fails
    # closed rather than exhaust Redis memory or trim unposted money data.
    stream_backlog_max: int = 1_000_000
    # Redis connections per process; a blocking pool waits at most the decision budget.
    redis_pool_size: int = 64
    # Postgres connections per process (administration and API-key lookups only).
    pg_pool_size_max: int = 10
    # Prefix of every Redis key; lets several deployments (or test runs) share one Redis.
    key_prefix: str = "zc"
    # How long a verified API key is trusted from the in-process cache before re-reading it.
    api_key_cache_ttl_s: int = 30
    # Cards whose policy this process keeps parsed; guarded by policy_version, so never stale.
    card_cache_max: int = 100_000
    # Concurrent RPCs one process accepts; beyond it gRPC answers RESOURCE_EXHAUSTED at once.
    max_concurrent_rpcs: int = 10_000
    # Largest request message accepted (bytes); our largest request is a card's controls.
    max_message_bytes: int = 1 << 20
    # How long SIGTERM waits for in-flight calls before cancelling them.
    shutdown_grace_s: int = 10
    # A decision script that starts executing this long after it was sent refuses to decide
    # (it records a fail-closed decline), so a script delayed in Redis cannot reserve after the
    # caller was told "declined". Generous, to tolerate clock skew between hosts.
    script_stale_ms: int = 1000
    # How long an approval's hold lives before the sweeper releases it (lodging and car rental
    # MCCs get 31 days: authz_server/holds.py).
    hold_expiry_s: int = 7 * 24 * 3600
    # A clearing whose amount differs from its hold by more than this share of the approved
    # amount (basis points; 2000 = 20%, room for tips) goes to review.
    clearing_tolerance_bps: int = 2000
    # "json" for JSON lines, "text" for humans.
    log_format: str = "text"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Reads and validates every setting; raises ConfigError naming the first bad one."""
        env = os.environ if env is None else env
        defaults = cls()
        settings = cls(
            redis_url=env.get("REDIS_URL") or defaults.redis_url,
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            listen_addr=env.get("AUTHZ_LISTEN_ADDR") or defaults.listen_addr,
            admin_token=env.get("AUTHZ_ADMIN_TOKEN", ""),
            workers=_int(env, "AUTHZ_WORKERS", os.cpu_count() or 1, 1, 256),
            metrics_port=_int(env, "AUTHZ_METRICS_PORT", defaults.metrics_port, 0, 65535),
            metrics_addr=env.get("AUTHZ_METRICS_ADDR") or defaults.metrics_addr,
            decision_budget_ms=_int(env, "AUTHZ_DECISION_BUDGET_MS", defaults.decision_budget_ms, 1, 10_000),
            admin_timeout_ms=_int(env, "AUTHZ_ADMIN_TIMEOUT_MS", defaults.admin_timeout_ms, 10, 60_000),
            replay_retention_s=_int(
                env, "AUTHZ_REPLAY_RETENTION_S", defaults.replay_retention_s, 7 * 24 * 3600, 400 * 24 * 3600
            ),
            shard_count=_int(env, "AUTHZ_SHARDS", defaults.shard_count, 1, 1024),
            stream_backlog_max=_int(env, "AUTHZ_STREAM_BACKLOG_MAX", defaults.stream_backlog_max, 1, 100_000_000),
            redis_pool_size=_int(env, "AUTHZ_REDIS_POOL_SIZE", defaults.redis_pool_size, 1, 10_000),
            pg_pool_size_max=_int(env, "AUTHZ_PG_POOL_SIZE_MAX", defaults.pg_pool_size_max, 1, 1000),
            key_prefix=env.get("AUTHZ_KEY_PREFIX") or defaults.key_prefix,
            api_key_cache_ttl_s=_int(env, "AUTHZ_API_KEY_CACHE_TTL_S", defaults.api_key_cache_ttl_s, 0, 3600),
            card_cache_max=_int(env, "AUTHZ_CARD_CACHE_MAX", defaults.card_cache_max, 1, 100_000_000),
            max_concurrent_rpcs=_int(env, "AUTHZ_MAX_CONCURRENT_RPCS", defaults.max_concurrent_rpcs, 1, 1_000_000),
            max_message_bytes=_int(env, "AUTHZ_MAX_MESSAGE_BYTES", defaults.max_message_bytes, 1024, 64 << 20),
            shutdown_grace_s=_int(env, "AUTHZ_SHUTDOWN_GRACE_S", defaults.shutdown_grace_s, 0, 600),
            script_stale_ms=_int(env, "AUTHZ_SCRIPT_STALE_MS", defaults.script_stale_ms, 10, 60_000),
            hold_expiry_s=_int(env, "AUTHZ_HOLD_EXPIRY_S", defaults.hold_expiry_s, 60, 400 * 24 * 3600),
            clearing_tolerance_bps=_int(
                env, "AUTHZ_CLEARING_TOLERANCE_BPS", defaults.clearing_tolerance_bps, 0, 1_000_000
            ),
            log_format=env.get("AUTHZ_LOG_FORMAT") or defaults.log_format,
            log_level=(env.get("AUTHZ_LOG_LEVEL") or defaults.log_level).upper(),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Checks the cross-field rules; raises ConfigError with an exact message."""
        if self.admin_token and len(self.admin_token) < 16:
            raise ConfigError("AUTHZ_ADMIN_TOKEN must be at least 16 characters (or unset)")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"AUTHZ_LOG_FORMAT={self.log_format!r} must be 'text' or 'json'")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"AUTHZ_LOG_LEVEL={self.log_level!r} must be one of {', '.join(LOG_LEVELS)}")
        if not _KEY_PREFIX.fullmatch(self.key_prefix):
            raise ConfigError(f"AUTHZ_KEY_PREFIX={self.key_prefix!r} must be 1-32 chars of [A-Za-z0-9_]")
        if ":" not in self.listen_addr:
            raise ConfigError(f"AUTHZ_LISTEN_ADDR={self.listen_addr!r} must be host:port")
        if self.workers > 1 and self.listen_addr.rsplit(":", 1)[1] == "0":
            raise ConfigError("AUTHZ_LISTEN_ADDR needs a fixed port when AUTHZ_WORKERS > 1 (they share it)")
        if self.script_stale_ms < self.decision_budget_ms:
            raise ConfigError("AUTHZ_SCRIPT_STALE_MS must be >= AUTHZ_DECISION_BUDGET_MS")

    def describe(self) -> dict[str, object]:
        """The settings for a start-up log line, with secrets and credentials left out."""
        hidden = {"admin_token", "redis_url", "database_url"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
