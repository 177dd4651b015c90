"""The ghz config that loadtest/ghz_seed.py writes is ghz's documented config-file format, and
every call it describes is a valid Authorize the server decides (rendered as ghz renders it)."""

from __future__ import annotations

import json
import stat

import grpc

from loadtest import ghz_seed
from tests.support.api import bearer
from tests.support.stack import ADMIN_TOKEN, ThreadedServer
from zentra.cards.v1 import authorization_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

# ghz's config-file keys are its long command-line options; these are the ones we use.
GHZ_OPTIONS = {"call", "host", "insecure", "total", "concurrency", "connections", "timeout", "metadata", "data"}


def test_seeded_config_drives_authorize_over_every_card(server: ThreadedServer, capsys) -> None:  # type: ignore[no-untyped-def]
    assert (
        ghz_seed.main(["--target", server.target, "--admin-token", ADMIN_TOKEN, "--cards", "12", "--total", "100"]) == 0
    )
    path = ghz_seed.RESULTS / "config.json"
    assert f"ghz --config {path}" in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the config holds an API key"
    config = json.loads(path.read_text())
    assert set(config) == GHZ_OPTIONS
    assert config["call"] == "zentra.cards.v1.AuthorizationService.Authorize"
    assert len({m["card_id"] for m in config["data"]}) == 12, "one message per card, used round-robin"
    secret = config["metadata"]["authorization"].removeprefix("Bearer ")
    with grpc.insecure_channel(server.target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        outcomes = {
            t.Reason.Name(stub.Authorize(ghz_seed.render(m), metadata=bearer(secret), timeout=5).reason)
            for m in config["data"]
        }
    assert {"APPROVED", "MCC_NOT_ALLOWED", "COUNTRY_NOT_ALLOWED", "REVIEW_REQUIRED"} <= outcomes
    rendered = {ghz_seed.render(config["data"][0]).authorization_id for _ in range(3)}
    assert len(rendered) == 3, "every call gets a fresh authorization id"
