"""DESIGN §5.7: the Redis projection rebuilt from Postgres equals the live one — cards,
controls and state, window counters after posted decisions, replay records — and a server
that finds the projection gone rebuilds it by itself before it approves again."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import redis

from authz_server.windows import WINDOW_LETTERS, period_ids
from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import ADMIN_TOKEN, Backing, Ledger, ThreadedServer, wait_until
from zentra.cards.v1 import authorization_pb2, card_pb2, clearing_pb2, clearing_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

INTERVAL_OF_LETTER = {letter: interval for interval, letter in WINDOW_LETTERS.items()}


def projection_of(client: redis.Redis, prefix: str, tenant_id: str, now_ms: int) -> dict[str, object]:
    """The tenant's projection as the hot path sees it: card hashes, current-window usage
    (buckets of earlier windows and released-to-zero buckets count as nothing), replay records."""
    periods = period_ids(now_ms)
    view: dict[str, object] = {}
    for key in client.scan_iter(match=f"{prefix}:*:{tenant_id}:*"):
        name = key.decode()
        if any(kind in name for kind in (":card:", ":replay:", ":reversal:", ":clearing:")):
            view[name] = client.hgetall(key)
        elif ":use:" in name:
            fields = client.hgetall(key)
            usage = {}
            for field in fields:
                bucket, _, part = field.decode().rpartition("|")
                if part != "p":
                    continue
                period = fields[field].decode()
                amount, count = int(fields[f"{bucket}|a".encode()]), int(fields[f"{bucket}|c".encode()])
                if period == periods[INTERVAL_OF_LETTER[bucket[0]]] and (amount or count):
                    usage[bucket] = (period, amount, count)
            view[name] = usage
    for key in client.scan_iter(match=f"{prefix}:*:holds"):
        for member, score in client.zscan_iter(key):
            if member.decode().startswith(f"{tenant_id}|"):
                view[f"{key.decode()} {member.decode()}"] = score
    return view


def forget_projection(client: redis.Redis, prefix: str) -> int:
    """What a Redis restarted empty looks like to us (streams aside: the writer owns those)."""
    doomed = [k for k in client.scan_iter(match=f"{prefix}:*") if not k.endswith((b":decisions", b":deadletter"))]
    return client.delete(*doomed) if doomed else 0


def traffic(api: Api, tenant: TenantKeys) -> list[str]:
    cards = [
        api.issue_card(tenant, t.SpendControls(
            spending_limits=[
                t.SpendLimit(interval=t.DAILY, amount_minor=10_000, max_count=5),
                t.SpendLimit(interval=t.MONTHLY, amount_minor=7_000, mccs=["5812"]),
            ],
            blocked_mccs=["7995"],
            review_threshold_minor=4_000,
        ))
        for _ in range(3)
    ]  # fmt: skip
    api.cards.FreezeCard(card_pb2.CardActionRequest(card_id=cards[2].card_id), metadata=bearer(tenant.admin))
    ids = []
    for card in cards:
        for amount, mcc in [
            (1000, "5812"),
            (2500, "5812"),
            (3000, "5411"),
            (4500, "5411"),
            (100, "7995"),
            (5000, "5812"),
        ]:
            response = api.authorize(tenant.processor, card.card_id, amount, mcc=mcc)
            ids.append(response.authorization_id)
            if response.decision == t.APPROVE and amount in (1000, 3000):
                # Reversals too: a partial one (the hold and counters shrink) and a full one.
                request = authorization_pb2.ReverseRequest(
                    reversal_id=f"rev-{response.authorization_id}",
                    authorization_id=response.authorization_id,
                    amount_minor=400 if amount == 3000 else 0,
                )
                api.authz.Reverse(request, metadata=bearer(tenant.processor))
    # Clearings of every kind: exact, over-capture, a partial one, late capture, force post, refund.
    stub = clearing_pb2_grpc.ClearingServiceStub(api.channel)
    for index, (amount, final) in enumerate([(2500, True), (3500, True), (1000, False), (1000, True)]):
        authorization_id = ids[index + 1] if index < 3 else ids[0]
        record = clearing_pb2.ClearingRecord(
            clearing_id=f"clr-{authorization_id}-{index}", authorization_id=authorization_id,
            card_id=cards[0].card_id, amount_minor=amount, currency="USD",
            merchant=t.Merchant(mcc="5812", country="US"), kind=clearing_pb2.CAPTURE, is_final=final,
        )  # fmt: skip
        try:
            stub.PostClearing(record, metadata=bearer(tenant.processor))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
    for kind in (clearing_pb2.CAPTURE, clearing_pb2.REFUND):
        record = clearing_pb2.ClearingRecord(
            clearing_id=f"clr-{tenant.tenant_id}-{kind}", card_id=cards[1].card_id, amount_minor=700, currency="USD",
            merchant=t.Merchant(mcc="5812", country="US"), kind=kind, is_final=True,
        )  # fmt: skip
        stub.PostClearing(record, metadata=bearer(tenant.processor))
    return ids


def test_rebuilt_projection_equals_the_live_one(
    api: Api, tenant: TenantKeys, ledger: Ledger, server: ThreadedServer
) -> None:
    traffic(api, tenant)
    ledger.drain()
    client = redis.Redis.from_url(server.settings.redis_url)
    prefix = server.settings.key_prefix
    now_ms = server.clock.now_ms()
    live = projection_of(client, prefix, tenant.tenant_id, now_ms)
    assert any(":use:" in k and v for k, v in live.items()), "the traffic reserved something"
    assert sum(":replay:" in k for k in live) == 18
    assert sum(":reversal:" in k for k in live) >= 2
    assert sum(":clearing:" in k for k in live) >= 4
    assert sum(":holds " in k for k in live) >= 2, "live holds wait in their shard's holds set"

    assert forget_projection(client, prefix) > 0
    assert projection_of(client, prefix, tenant.tenant_id, now_ms) == {}
    # The server notices the missing marker, fails closed meanwhile, and rebuilds by itself.
    assert wait_until(lambda: client.exists(f"{prefix}:projection") == 1, timeout_s=15)
    assert wait_until(lambda: server.server.decider.ready, timeout_s=15)
    rebuilt = projection_of(client, prefix, tenant.tenant_id, now_ms)
    assert rebuilt == live, "the rebuilt projection must equal the live one"


def test_counters_survive_a_rebuild(api: Api, tenant: TenantKeys, ledger: Ledger, server: ThreadedServer) -> None:
    card = api.issue_card(tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=5_000)]))
    assert api.authorize(tenant.processor, card.card_id, 4_000).decision == t.APPROVE
    ledger.drain()
    client = redis.Redis.from_url(server.settings.redis_url)
    forget_projection(client, server.settings.key_prefix)
    assert wait_until(
        lambda: server.server.decider.ready and client.exists(f"{server.settings.key_prefix}:projection"), timeout_s=15
    )
    response = api.authorize(tenant.processor, card.card_id, 2_000)
    assert response.reason == t.SPEND_LIMIT_EXCEEDED, "the 4000 approved before the loss still counts"
    assert api.authorize(tenant.processor, card.card_id, 1_000).decision == t.APPROVE


def test_rebuild_command_refuses_with_unposted_decisions(
    api: Api, tenant: TenantKeys, ledger: Ledger, backing: Backing
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": backing.redis_url,
        "DATABASE_URL": backing.database_url,
        "AUTHZ_KEY_PREFIX": backing.key_prefix,
        "AUTHZ_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    command = [sys.executable, "-m", "authz_server", "rebuild-projection"]
    card = api.issue_card(tenant)
    api.authorize(tenant.processor, card.card_id, 100)
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "not posted yet" in refused.stderr, refused.stderr
    ledger.drain()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "projection rebuilt:" in done.stdout
