"""Shared fixtures: backing services, one in-process server per session, API client and
factories. Every fixture that starts something stops it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from authz_server.clock import SettableClock
from tests.support.api import Api, TenantKeys
from tests.support.stack import (
    EPOCH_MS,
    Backing,
    Ledger,
    ThreadedServer,
    backing_services,
    ledger_settings,
    server_settings,
)


@pytest.fixture(scope="session")
def backing() -> Iterator[Backing]:
    # A private directory outside pytest's tmp tree: as root, Postgres runs as another user
    # and must traverse the path, and a concurrent pytest session resets its tree to 0700.
    data_dir = Path(tempfile.mkdtemp(prefix="zentra-test-"))
    try:
        with backing_services(data_dir) as services:
            yield services
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server(backing: Backing) -> Iterator[ThreadedServer]:
    # A generous decision budget: these tests are about what is decided, and a loaded 2-core CI
    # machine must not turn them into fail-closed declines. The 50 ms default and failing closed
    # are tested by tests/integration/test_fail_closed.py on a server of its own.
    settings = server_settings(backing, decision_budget_ms=2000, script_stale_ms=10_000)
    running = ThreadedServer(settings, SettableClock(EPOCH_MS)).start()
    yield running
    running.stop()
    assert not running.loop_errors, f"unhandled errors on the server's event loop: {running.loop_errors}"


@pytest.fixture
def clock(server: ThreadedServer) -> Iterator[SettableClock]:
    """The server's business clock, put back where it was after the test."""
    before = server.clock.now_ms()
    yield server.clock
    server.clock.set_ms(before)


@pytest.fixture(scope="session")
def api(server: ThreadedServer) -> Iterator[Api]:
    client = Api(server.target)
    yield client
    client.close()


@pytest.fixture
def tenant(api: Api) -> TenantKeys:
    return api.new_tenant()


@pytest.fixture(scope="session")
def ledger(server: ThreadedServer, backing: Backing) -> Iterator[Ledger]:
    """The ledger writer, posting on demand (`ledger.drain()`) on the server's event loop."""
    writer = Ledger(server, ledger_settings(backing))
    yield writer
    writer.close()
