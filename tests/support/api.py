"""A thin test client over blocking gRPC stubs, with factories for tenants and cards."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import grpc

from tests.support.stack import ADMIN_TOKEN
from zentra.cards.v1 import (
    authorization_pb2,
    authorization_pb2_grpc,
    card_pb2,
    card_pb2_grpc,
    tenant_pb2,
    tenant_pb2_grpc,
)
from zentra.cards.v1 import (
    types_pb2 as t,
)


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass
class TenantKeys:
    tenant_id: str
    admin: str
    operator: str
    processor: str


def merchant(mcc: str = "5812", country: str = "US", **kw: str) -> t.Merchant:
    return t.Merchant(id=kw.get("id", "m-1"), name=kw.get("name", "Cafe"), mcc=mcc, country=country, city="Boston")


class Api:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.tenants = tenant_pb2_grpc.TenantServiceStub(self.channel)
        self.cards = card_pb2_grpc.CardServiceStub(self.channel)
        self.authz = authorization_pb2_grpc.AuthorizationServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def new_tenant(self) -> TenantKeys:
        tenant_id = new_id("tenant")
        self.tenants.CreateTenant(
            tenant_pb2.CreateTenantRequest(tenant_id=tenant_id, name="Test"), metadata=bearer(ADMIN_TOKEN)
        )
        keys = {
            role: self.tenants.CreateApiKey(
                tenant_pb2.CreateApiKeyRequest(tenant_id=tenant_id, role=role, label=t.Role.Name(role)),
                metadata=bearer(ADMIN_TOKEN),
            ).secret
            for role in (t.ADMIN, t.OPERATOR, t.PROCESSOR)
        }
        return TenantKeys(tenant_id, keys[t.ADMIN], keys[t.OPERATOR], keys[t.PROCESSOR])

    def issue_card(
        self, tenant: TenantKeys, controls: t.SpendControls | None = None, currency: str = "USD"
    ) -> card_pb2.Card:
        return self.cards.IssueCard(
            card_pb2.IssueCardRequest(
                idempotency_key=new_id("issue"),
                customer_ref="cust-1",
                account_ref=new_id("acct"),
                currency=currency,
                spend_controls=controls or t.SpendControls(),
            ),
            metadata=bearer(tenant.admin),
        )

    @staticmethod
    def authorize_request(
        card_id: str,
        amount_minor: int = 1000,
        *,
        currency: str = "USD",
        mcc: str = "5812",
        country: str = "US",
        channel: int = t.CARD_PRESENT,
        authorization_id: str | None = None,
    ) -> authorization_pb2.AuthorizeRequest:
        return authorization_pb2.AuthorizeRequest(
            authorization_id=authorization_id or new_id("auth"),
            card_id=card_id,
            amount_minor=amount_minor,
            currency=currency,
            merchant=merchant(mcc, country),
            channel=channel,
        )

    def authorize(
        self, secret: str, card_id: str, amount_minor: int = 1000, **kw
    ) -> authorization_pb2.AuthorizeResponse:  # type: ignore[no-untyped-def]
        return self.authz.Authorize(self.authorize_request(card_id, amount_minor, **kw), metadata=bearer(secret))
