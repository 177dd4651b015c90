"""Protects start-up configuration: Settings.from_env gives working defaults and refuses every
out-of-bounds or nonsensical value with a ConfigError that names the environment variable."""

from __future__ import annotations

import dataclasses
import os

import pytest

from authz_server.config import ConfigError, Settings

# (variable, attribute, low, high, other variables needed for the bound itself to be valid).
# The bounds are the contract of config.py; a change to one should be a deliberate change here.
INT_BOUNDS = [
    ("AUTHZ_WORKERS", "workers", 1, 256, {}),
    ("AUTHZ_METRICS_PORT", "metrics_port", 0, 65535, {}),
    ("AUTHZ_DECISION_BUDGET_MS", "decision_budget_ms", 1, 10_000, {"AUTHZ_SCRIPT_STALE_MS": "60000"}),
    ("AUTHZ_ADMIN_TIMEOUT_MS", "admin_timeout_ms", 10, 60_000, {}),
    ("AUTHZ_REPLAY_RETENTION_S", "replay_retention_s", 7 * 24 * 3600, 400 * 24 * 3600, {}),
    ("AUTHZ_SHARDS", "shard_count", 1, 1024, {}),
    ("AUTHZ_STREAM_BACKLOG_MAX", "stream_backlog_max", 1, 100_000_000, {}),
    ("AUTHZ_REDIS_POOL_SIZE", "redis_pool_size", 1, 10_000, {}),
    ("AUTHZ_PG_POOL_SIZE_MAX", "pg_pool_size_max", 1, 1000, {}),
    ("AUTHZ_API_KEY_CACHE_TTL_S", "api_key_cache_ttl_s", 0, 3600, {}),
    ("AUTHZ_CARD_CACHE_MAX", "card_cache_max", 1, 100_000_000, {}),
    ("AUTHZ_MAX_CONCURRENT_RPCS", "max_concurrent_rpcs", 1, 1_000_000, {}),
    ("AUTHZ_MAX_MESSAGE_BYTES", "max_message_bytes", 1024, 64 << 20, {}),
    ("AUTHZ_SHUTDOWN_GRACE_S", "shutdown_grace_s", 0, 600, {}),
    ("AUTHZ_SCRIPT_STALE_MS", "script_stale_ms", 10, 60_000, {"AUTHZ_DECISION_BUDGET_MS": "1"}),
]
INT_IDS = [b[0] for b in INT_BOUNDS]


def test_defaults_from_an_empty_environment():
    settings = Settings.from_env({})
    assert settings == Settings(workers=os.cpu_count() or 1), "an empty environment must give the documented defaults"
    assert settings.workers == (os.cpu_count() or 1), "issue #4: one worker per CPU by default"
    assert settings.listen_addr == "127.0.0.1:50051", "DESIGN §4: AUTHZ_LISTEN_ADDR defaults to 127.0.0.1:50051"
    assert settings.decision_budget_ms == 50, "DESIGN §3: the decision budget defaults to 50 ms"
    assert settings.replay_retention_s >= 7 * 24 * 3600, "DESIGN §3: replay records live at least 7 days"
    assert settings.admin_token == "", "without AUTHZ_ADMIN_TOKEN the TenantService is closed"
    assert settings.log_format == "text"


def test_empty_strings_mean_unset():
    env = {name: "" for name in INT_IDS} | {"REDIS_URL": "", "DATABASE_URL": "", "AUTHZ_LISTEN_ADDR": ""}
    assert Settings.from_env(env) == Settings(workers=os.cpu_count() or 1)


def test_design_variables_are_read():
    env = {
        "REDIS_URL": "redis://cache.internal:6380/2",
        "DATABASE_URL": "postgresql://app@db.internal/zentra",
        "AUTHZ_LISTEN_ADDR": "0.0.0.0:6000",
        "AUTHZ_ADMIN_TOKEN": "s" * 16,
        "AUTHZ_WORKERS": "4",
        "AUTHZ_METRICS_PORT": "0",
        "AUTHZ_KEY_PREFIX": "zc_test_1",
        "AUTHZ_LOG_FORMAT": "json",
    }
    settings = Settings.from_env(env)
    assert (settings.redis_url, settings.database_url, settings.listen_addr) == (
        "redis://cache.internal:6380/2",
        "postgresql://app@db.internal/zentra",
        "0.0.0.0:6000",
    )
    assert (settings.admin_token, settings.workers, settings.metrics_port) == ("s" * 16, 4, 0)
    assert (settings.key_prefix, settings.log_format) == ("zc_test_1", "json")


def test_from_env_without_argument_reads_os_environ(monkeypatch):
    monkeypatch.setenv("AUTHZ_DECISION_BUDGET_MS", "75")
    assert Settings.from_env().decision_budget_ms == 75
    monkeypatch.setenv("AUTHZ_DECISION_BUDGET_MS", "0")
    with pytest.raises(ConfigError, match="AUTHZ_DECISION_BUDGET_MS"):
        Settings.from_env()


@pytest.mark.parametrize(("name", "attribute", "low", "high", "companions"), INT_BOUNDS, ids=INT_IDS)
def test_integer_bounds_are_inclusive(name, attribute, low, high, companions):
    for value in (low, high):
        settings = Settings.from_env({name: str(value), **companions})
        assert getattr(settings, attribute) == value, f"{name}={value} is inside [{low}, {high}]"


@pytest.mark.parametrize(("name", "attribute", "low", "high", "companions"), INT_BOUNDS, ids=INT_IDS)
def test_integer_outside_bounds_is_refused_naming_the_variable(name, attribute, low, high, companions):
    for value in (low - 1, high + 1):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({name: str(value), **companions})
        assert str(caught.value) == f"{name}={value} is outside [{low}, {high}]", (
            f"the message for {name}={value} must name the variable, the value and the bounds"
        )


@pytest.mark.parametrize("raw", ["fifty", "1.5", "0x10", "5ms"], ids=["word", "float", "hex", "unit-suffix"])
@pytest.mark.parametrize("name", INT_IDS)
def test_non_integer_is_refused_naming_the_variable(name, raw):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: raw})
    assert str(caught.value) == f"{name}={raw!r} is not an integer"


def test_decision_budget_zero_is_refused():
    with pytest.raises(ConfigError, match=r"^AUTHZ_DECISION_BUDGET_MS=0 is outside \[1, 10000\]$"):
        Settings.from_env({"AUTHZ_DECISION_BUDGET_MS": "0"})


def test_replay_retention_below_seven_days_is_refused():
    with pytest.raises(ConfigError, match="AUTHZ_REPLAY_RETENTION_S"):
        Settings.from_env({"AUTHZ_REPLAY_RETENTION_S": str(6 * 24 * 3600)})


@pytest.mark.parametrize("token", ["x", "short-token", "x" * 15], ids=["1-char", "11-chars", "15-chars"])
def test_short_admin_token_is_refused(token):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"AUTHZ_ADMIN_TOKEN": token})
    assert str(caught.value) == "AUTHZ_ADMIN_TOKEN must be at least 16 characters (or unset)", (
        "the message names the variable and the rule, and never echoes the token"
    )


def test_admin_token_of_16_characters_is_accepted():
    assert Settings.from_env({"AUTHZ_ADMIN_TOKEN": "t" * 16}).admin_token == "t" * 16


@pytest.mark.parametrize("log_format", ["xml", "JSON", "plain"])
def test_bad_log_format_is_refused(log_format):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"AUTHZ_LOG_FORMAT": log_format})
    assert str(caught.value) == f"AUTHZ_LOG_FORMAT={log_format!r} must be 'text' or 'json'"


@pytest.mark.parametrize("level", ["LOUD", "verbose"])
def test_bad_log_level_is_refused(level):
    with pytest.raises(ConfigError, match="AUTHZ_LOG_LEVEL"):
        Settings.from_env({"AUTHZ_LOG_LEVEL": level})


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR"])
def test_standard_log_levels_are_accepted(level):
    assert Settings.from_env({"AUTHZ_LOG_LEVEL": level}).log_level == level
    assert Settings.from_env({"AUTHZ_LOG_LEVEL": level.lower()}).log_level == level


@pytest.mark.parametrize(
    "prefix",
    ["a-b", "zc:1", "a b", "x" * 33],
    ids=["dash", "colon", "space", "33-chars"],
)
def test_bad_key_prefix_is_refused(prefix):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"AUTHZ_KEY_PREFIX": prefix})
    assert str(caught.value) == f"AUTHZ_KEY_PREFIX={prefix!r} must be 1-32 chars of [A-Za-z0-9_]"


@pytest.mark.parametrize("prefix", ["zé", "z\u0661"], ids=["e-acute", "arabic-digit"])
def test_non_ascii_key_prefix_is_refused(prefix):
    with pytest.raises(ConfigError, match="AUTHZ_KEY_PREFIX"):
        Settings.from_env({"AUTHZ_KEY_PREFIX": prefix})


def test_key_prefix_of_32_characters_is_accepted():
    assert Settings.from_env({"AUTHZ_KEY_PREFIX": "A_9" + "z" * 29}).key_prefix == "A_9" + "z" * 29


def test_listen_addr_without_port_is_refused():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"AUTHZ_LISTEN_ADDR": "localhost"})
    assert str(caught.value) == "AUTHZ_LISTEN_ADDR='localhost' must be host:port"


def test_script_stale_below_decision_budget_is_refused():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"AUTHZ_DECISION_BUDGET_MS": "200", "AUTHZ_SCRIPT_STALE_MS": "199"})
    assert str(caught.value) == "AUTHZ_SCRIPT_STALE_MS must be >= AUTHZ_DECISION_BUDGET_MS"
    equal = Settings.from_env({"AUTHZ_DECISION_BUDGET_MS": "200", "AUTHZ_SCRIPT_STALE_MS": "200"})
    assert equal.script_stale_ms == equal.decision_budget_ms == 200


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.decision_budget_ms = 1  # type: ignore[misc]


def test_secrets_stay_out_of_repr_and_describe():
    token = "admin-token-" + "q" * 20
    settings = Settings.from_env(
        {
            "AUTHZ_ADMIN_TOKEN": token,
            "REDIS_URL": "redis://:redispass@cache:6379/0",
            "DATABASE_URL": "postgresql://app:pgpass@db/zentra",
        }
    )
    described = settings.describe()
    assert token not in repr(settings), "repr(Settings) must not show the admin token"
    for secret in (token, "redispass", "pgpass"):
        assert secret not in repr(described), f"describe() is logged at start-up and must not contain {secret!r}"
    assert described["decision_budget_ms"] == 50, "describe() still shows the limits"
