"""Seeds a running server for a ghz load test and writes a ready ghz config.

    python -m loadtest.ghz_seed --target 127.0.0.1:50051 --admin-token "$(cat .data/admin-token)" [--cards 1000]

Creates a tenant, a PROCESSOR key and `--cards` cards (realistic controls) through the public
API, then writes `loadtest/results/ghz/config.json`: ghz's config-file format (the keys are
its long command-line options), calling Authorize over every card in turn (a `data` array is
used round-robin by ghz) with a fresh authorization id per call (`{{newUUID}}`, a ghz
template function), the API key as metadata, and no proto files (the server has reflection).
Before writing it, it checks the calls by rendering the first few and sending them itself.
Prints the command: `ghz --config loadtest/results/ghz/config.json`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import uuid
from pathlib import Path

import grpc
from google.protobuf import json_format

from zentra.cards.v1 import (
    authorization_pb2,
    authorization_pb2_grpc,
    card_pb2,
    card_pb2_grpc,
    tenant_pb2,
    tenant_pb2_grpc,
)
from zentra.cards.v1 import types_pb2 as t

RESULTS = Path(__file__).resolve().parent / "results" / "ghz"
TEMPLATE = Path(__file__).resolve().parent / "ghz" / "authorize.json"
CHECKED_CALLS = 5  # rendered and sent by this script before it writes the config
# Purchases cycled over the cards: mostly approvals, some declines (MCC, country) and referrals.
PURCHASES = [
    (1250, "5812", "US"), (899, "5411", "US"), (4500, "5999", "GB"), (2300, "4111", "US"),
    (15_000, "5812", "US"), (700, "7995", "US"), (1100, "5411", "RU"), (60_000, "5732", "US"),
]  # fmt: skip


def controls() -> t.SpendControls:
    return t.SpendControls(
        spending_limits=[
            t.SpendLimit(interval=t.PER_AUTHORIZATION, amount_minor=100_000),
            t.SpendLimit(interval=t.DAILY, amount_minor=10_000_000, max_count=100_000),
            t.SpendLimit(interval=t.MONTHLY, amount_minor=50_000, mccs=["7995"]),
        ],
        blocked_mccs=["7995"],
        blocked_countries=["RU"],
        review_threshold_minor=50_000,
    )


def data_for(card_ids: list[str]) -> list[dict[str, object]]:
    """One AuthorizeRequest (proto JSON, proto field names) per card, ghz templates included."""
    rows = []
    for i, card_id in enumerate(card_ids):
        amount, mcc, country = PURCHASES[i % len(PURCHASES)]
        rows.append(
            {
                "authorization_id": "ghz-{{newUUID}}",
                "card_id": card_id,
                "amount_minor": amount,
                "currency": "USD",
                "merchant": {"id": f"m-{i % 50}", "name": "Load Test Merchant", "mcc": mcc, "country": country},
                "channel": "CONTACTLESS",
            }
        )
    return rows


def render(message: dict[str, object]) -> authorization_pb2.AuthorizeRequest:
    """A data element as ghz sends it: templates filled in, parsed as an AuthorizeRequest."""
    text = json.dumps(message).replace("{{newUUID}}", str(uuid.uuid4()))
    return json_format.Parse(text, authorization_pb2.AuthorizeRequest())


def seed_tenant(target: str, admin_token: str, cards: int) -> tuple[str, str, list[str]]:
    """Creates a tenant, its ADMIN and PROCESSOR keys and `cards` cards (realistic controls)
    through the public API of the server at `target`; returns the tenant id, the PROCESSOR
    key's secret and the card ids."""
    admin = (("authorization", f"Bearer {admin_token}"),)
    with grpc.insecure_channel(target) as channel:
        tenants = tenant_pb2_grpc.TenantServiceStub(channel)
        tenant_id = f"ghz-{secrets.token_hex(4)}"
        tenants.CreateTenant(tenant_pb2.CreateTenantRequest(tenant_id=tenant_id, name="ghz load test"), metadata=admin)
        keys = {
            role: tenants.CreateApiKey(
                tenant_pb2.CreateApiKeyRequest(tenant_id=tenant_id, role=role, label="ghz"), metadata=admin
            ).secret
            for role in (t.ADMIN, t.PROCESSOR)
        }
        stub = card_pb2_grpc.CardServiceStub(channel)
        card_ids = []
        for i in range(cards):
            request = card_pb2.IssueCardRequest(
                idempotency_key=f"{tenant_id}-{i}", customer_ref=f"cust-{i}", account_ref=f"acct-{i}",
                currency="USD", spend_controls=controls(),
            )  # fmt: skip
            card_ids.append(stub.IssueCard(request, metadata=(("authorization", f"Bearer {keys[t.ADMIN]}"),)).card_id)
    return tenant_id, keys[t.PROCESSOR], card_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.ghz_seed", description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--admin-token", required=True, help="the server's AUTHZ_ADMIN_TOKEN")
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--total", type=int, default=50_000, help="ghz --total")
    parser.add_argument("--concurrency", type=int, default=50, help="ghz --concurrency")
    args = parser.parse_args(argv)
    tenant_id, processor_secret, card_ids = seed_tenant(args.target, args.admin_token, args.cards)
    data = data_for(card_ids)
    processor = (("authorization", f"Bearer {processor_secret}"),)
    with grpc.insecure_channel(args.target) as channel:
        authz = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        for message in data[:CHECKED_CALLS]:
            authz.Authorize(render(message), metadata=processor, timeout=5)
    config = json.loads(TEMPLATE.read_text())
    config.update(
        host=args.target,
        total=args.total,
        concurrency=args.concurrency,
        metadata={"authorization": f"Bearer {processor_secret}"},
        data=data,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "config.json"
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)  # it holds an API key
    print(f"tenant {tenant_id}: {len(card_ids)} cards; config in {path}")
    print(f"ghz --config {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
