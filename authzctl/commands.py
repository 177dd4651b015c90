"""What each `authzctl` subcommand asks for: the RPC to call and the request to send.

Builders only turn parsed arguments into a request; they make no call and print nothing,
so the caller adds the credentials and deadline in one place."""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from authzctl.cli import CHANNELS, ROLES
from zentra.cards.v1 import (
    authorization_pb2,
    authorization_pb2_grpc,
    card_pb2,
    card_pb2_grpc,
    clearing_pb2_grpc,
    tenant_pb2,
    tenant_pb2_grpc,
)
from zentra.cards.v1 import types_pb2 as t

# A blocking unary stub method: (request, metadata=..., timeout=...) -> response.
Rpc = Callable[..., Message]


class Stubs:
    """The blocking stubs of every service, on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.tenants = tenant_pb2_grpc.TenantServiceStub(channel)
        self.cards = card_pb2_grpc.CardServiceStub(channel)
        self.authorizations = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        self.clearing = clearing_pb2_grpc.ClearingServiceStub(channel)


@dataclass(frozen=True)
class Call:
    """One RPC about to be made: the stub method and its request."""

    rpc: Rpc
    request: Message


def random_id(prefix: str) -> str:
    """A fresh identifier valid under the API's id rule, e.g. 'auth-3f9a0c1d2e4b5a69'."""
    return f"{prefix}-{secrets.token_hex(8)}"


def create_tenant(stubs: Stubs, args: argparse.Namespace) -> Call:
    request = tenant_pb2.CreateTenantRequest(tenant_id=args.tenant_id, name=args.name)
    return Call(stubs.tenants.CreateTenant, request)


def create_key(stubs: Stubs, args: argparse.Namespace) -> Call:
    request = tenant_pb2.CreateApiKeyRequest(tenant_id=args.tenant_id, role=ROLES[args.role], label=args.label)
    return Call(stubs.tenants.CreateApiKey, request)


def issue_card(stubs: Stubs, args: argparse.Namespace) -> Call:
    request = card_pb2.IssueCardRequest(
        idempotency_key=args.idempotency_key or random_id("issue"),
        customer_ref=args.customer_ref,
        account_ref=args.account_ref,
        currency=args.currency,
        spend_controls=args.controls or t.SpendControls(),
    )
    return Call(stubs.cards.IssueCard, request)


def get_card(stubs: Stubs, args: argparse.Namespace) -> Call:
    return Call(stubs.cards.GetCard, card_pb2.GetCardRequest(card_id=args.card_id))


def update_controls(stubs: Stubs, args: argparse.Namespace) -> Call:
    request = card_pb2.UpdateSpendControlsRequest(card_id=args.card_id, spend_controls=args.controls)
    return Call(stubs.cards.UpdateSpendControls, request)


def _card_action(rpc_of: Callable[[Stubs], Rpc]) -> Callable[[Stubs, argparse.Namespace], Call]:
    def build(stubs: Stubs, args: argparse.Namespace) -> Call:
        return Call(rpc_of(stubs), card_pb2.CardActionRequest(card_id=args.card_id, reason=args.reason))

    return build


def authorize(stubs: Stubs, args: argparse.Namespace) -> Call:
    merchant = t.Merchant(
        id=args.merchant_id, name=args.merchant_name, mcc=args.mcc, country=args.country, city=args.city
    )
    request = authorization_pb2.AuthorizeRequest(
        authorization_id=args.authorization_id or random_id("auth"),
        card_id=args.card_id,
        amount_minor=args.amount_minor,
        currency=args.currency,
        merchant=merchant,
        channel=CHANNELS[args.channel],
    )
    return Call(stubs.authorizations.Authorize, request)


BUILDERS: dict[str, Callable[[Stubs, argparse.Namespace], Call]] = {
    "create-tenant": create_tenant,
    "create-key": create_key,
    "issue-card": issue_card,
    "get-card": get_card,
    "update-controls": update_controls,
    "freeze": _card_action(lambda stubs: stubs.cards.FreezeCard),
    "unfreeze": _card_action(lambda stubs: stubs.cards.UnfreezeCard),
    "close": _card_action(lambda stubs: stubs.cards.CloseCard),
    "authorize": authorize,
}


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """The call metadata that authenticates with `token`."""
    return (("authorization", f"Bearer {token}"),)
