"""Shared fixtures: backing services, one in-process server per session, API client and
factories. Every fixture that starts something stops it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authz_server.clock import SettableClock
from tests.support.api import Api, TenantKeys
from tests.support.stack import EPOCH_MS, Backing, ThreadedServer, backing_services, server_settings


@pytest.fixture(scope="session")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backing]:
    with backing_services(tmp_path_factory.mktemp("stack")) as services:
        yield services


@pytest.fixture(scope="session")
def server(backing: Backing) -> Iterator[ThreadedServer]:
    running = ThreadedServer(server_settings(backing), SettableClock(EPOCH_MS)).start()
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
