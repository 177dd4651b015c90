"""Protects the ledger writer's start-up configuration: LedgerSettings.from_env gives working
defaults and refuses out-of-bounds values with a ConfigError naming the variable."""

from __future__ import annotations

import pytest

from authz_server.config import ConfigError
from ledger_writer.config import LedgerSettings


def test_defaults_from_an_empty_environment() -> None:
    settings = LedgerSettings.from_env({})
    assert settings == LedgerSettings(), "an empty environment must give the documented defaults"
    assert 1 <= settings.lanes <= settings.pg_pool_size_max
    assert settings.workers * settings.lanes <= settings.shard_count, "every lane of every worker has a stream"


def test_workers_are_read() -> None:
    assert LedgerSettings.from_env({"LEDGER_WORKERS": "1"}).workers == 1
    assert LedgerSettings.from_env({"LEDGER_WORKERS": "4", "LEDGER_LANES": "4"}).workers == 4


def test_lanes_are_read() -> None:
    assert LedgerSettings.from_env({"LEDGER_LANES": "4"}).lanes == 4
    assert LedgerSettings.from_env({"LEDGER_LANES": "1"}).lanes == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEDGER_LANES": "0"}, "LEDGER_LANES=0 is outside"),
        ({"LEDGER_LANES": "two"}, "LEDGER_LANES='two' is not an integer"),
        ({"LEDGER_LANES": "5", "LEDGER_WORKERS": "1", "AUTHZ_SHARDS": "4"}, "LEDGER_LANES=5 must not exceed"),
        ({"LEDGER_WORKERS": "0"}, "LEDGER_WORKERS=0 is outside"),
        (
            {"LEDGER_WORKERS": "3", "LEDGER_LANES": "2", "AUTHZ_SHARDS": "4"},
            "LEDGER_WORKERS=3 x LEDGER_LANES=2 must not exceed AUTHZ_SHARDS=4",
        ),
        (
            {"LEDGER_LANES": "5", "LEDGER_PG_POOL_SIZE_MAX": "4"},
            "LEDGER_LANES=5 must not exceed LEDGER_PG_POOL_SIZE_MAX",
        ),
    ],
)
def test_lanes_out_of_bounds_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LedgerSettings.from_env(env)


def test_card_cache_bound_is_read_and_checked() -> None:
    assert LedgerSettings.from_env({"LEDGER_CARD_CACHE_MAX": "10"}).card_cache_max == 10
    with pytest.raises(ConfigError, match="LEDGER_CARD_CACHE_MAX=0 is outside"):
        LedgerSettings.from_env({"LEDGER_CARD_CACHE_MAX": "0"})
