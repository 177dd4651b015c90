"""Protects DESIGN §3 "Malformed requests" through the real gRPC API: every malformed request is
INVALID_ARGUMENT naming the field, and leaves Redis and Postgres exactly as they were."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from tests.support.api import TenantKeys, bearer, new_id
from tests.support.stack import ADMIN_TOKEN
from zentra.cards.v1 import authorization_pb2, card_pb2, tenant_pb2
from zentra.cards.v1 import types_pb2 as t

ID_64 = "i" * 64
ID_65 = "i" * 65
TEXT_256 = "é" * 256
TEXT_257 = "x" * 257


# --- helpers: what a call did to Redis and Postgres -------------------------------------------


def expect_invalid(call: Callable[[], object], field: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (
        f"expected INVALID_ARGUMENT for {field}, got {error.code()}: {error.details()}"
    )
    assert error.details().startswith(f"{field}: "), (
        f"the status message must start with the field path {field!r}: {error.details()!r}"
    )


def usage(server, tenant_id: str, card_id: str) -> dict[bytes, bytes]:
    keys = server.server.keyspace
    return server.call(server.server.redis.hgetall(keys.usage(keys.shard_of(card_id), tenant_id, card_id)))


def replay_exists(server, tenant_id: str, authorization_id: str) -> bool:
    key = server.server.keyspace.replay(tenant_id, authorization_id)
    return bool(server.call(server.server.redis.exists(key)))


def stream_lengths(server) -> dict[str, int]:
    """XLEN of every shard's decision stream."""

    async def lengths() -> dict[str, int]:
        return {key: await server.server.redis.xlen(key) for key in server.server.keyspace.streams()}

    return server.call(lengths())


def card_stream(server, card_id: str) -> str:
    keys = server.server.keyspace
    return keys.stream(keys.shard_of(card_id))


def fetchval(server, sql: str, *args: object) -> object:
    return server.call(server.server.pool.fetchval(sql, *args))


def card_count(server, tenant_id: str) -> int:
    return fetchval(server, "SELECT count(*) FROM cards WHERE tenant_id = $1", tenant_id)  # type: ignore[return-value]


def projected_cards(server, tenant_id: str) -> list[bytes]:
    """Card projection keys of the tenant in Redis."""
    pattern = f"{server.server.keyspace.prefix}:*:card:{tenant_id}:*"

    async def scan() -> list[bytes]:
        return [key async for key in server.server.redis.scan_iter(match=pattern, count=1000)]

    return server.call(scan())


# --- Authorize ------------------------------------------------------------------------------

AuthorizeMutation = Callable[[authorization_pb2.AuthorizeRequest], None]


def _set(path: str, value: object) -> AuthorizeMutation:
    def mutate(req: authorization_pb2.AuthorizeRequest) -> None:
        target: object = req
        *parents, leaf = path.split(".")
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)

    return mutate


def _without_merchant(req: authorization_pb2.AuthorizeRequest) -> None:
    req.ClearField("merchant")


AUTHORIZE_REFUSALS: list[tuple[str, AuthorizeMutation, str]] = [
    ("authorization_id-missing", _set("authorization_id", ""), "authorization_id"),
    ("authorization_id-65-chars", _set("authorization_id", ID_65), "authorization_id"),
    ("authorization_id-space", _set("authorization_id", "auth 1"), "authorization_id"),
    ("authorization_id-slash", _set("authorization_id", "auth/1"), "authorization_id"),
    ("authorization_id-e-acute", _set("authorization_id", "authé"), "authorization_id"),
    ("card_id-missing", _set("card_id", ""), "card_id"),
    ("card_id-65-chars", _set("card_id", ID_65), "card_id"),
    ("card_id-slash", _set("card_id", "card/1"), "card_id"),
    ("amount-zero", _set("amount_minor", 0), "amount_minor"),
    ("amount-negative", _set("amount_minor", -500), "amount_minor"),
    ("amount-1e13-plus-1", _set("amount_minor", 10**13 + 1), "amount_minor"),
    ("currency-lower-usd", _set("currency", "usd"), "currency"),
    ("currency-XXX", _set("currency", "XXX"), "currency"),
    ("currency-XTS", _set("currency", "XTS"), "currency"),
    ("currency-ABC", _set("currency", "ABC"), "currency"),
    ("currency-empty", _set("currency", ""), "currency"),
    ("merchant-missing", _without_merchant, "merchant"),
    ("mcc-581", _set("merchant.mcc", "581"), "merchant.mcc"),
    ("mcc-58a2", _set("merchant.mcc", "58a2"), "merchant.mcc"),
    ("mcc-empty", _set("merchant.mcc", ""), "merchant.mcc"),
    ("country-lower-us", _set("merchant.country", "us"), "merchant.country"),
    ("country-USA", _set("merchant.country", "USA"), "merchant.country"),
    ("country-XX", _set("merchant.country", "XX"), "merchant.country"),
    ("country-empty", _set("merchant.country", ""), "merchant.country"),
    ("channel-unspecified", _set("channel", t.CHANNEL_UNSPECIFIED), "channel"),
    ("channel-unknown-99", _set("channel", 99), "channel"),
    ("merchant-name-257", _set("merchant.name", TEXT_257), "merchant.name"),
    ("merchant-city-257", _set("merchant.city", TEXT_257), "merchant.city"),
    ("merchant-id-space", _set("merchant.id", "m 1"), "merchant.id"),
    ("merchant-id-65-chars", _set("merchant.id", ID_65), "merchant.id"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [c[1:] for c in AUTHORIZE_REFUSALS], ids=[c[0] for c in AUTHORIZE_REFUSALS]
)
def test_malformed_authorize_is_refused_and_changes_nothing(api, server, tenant, mutate, field):
    card = api.issue_card(tenant)
    good = api.authorize_request(card.card_id, 1000)
    bad = authorization_pb2.AuthorizeRequest()
    bad.CopyFrom(good)
    mutate(bad)
    streams_before = stream_lengths(server)

    expect_invalid(lambda: api.authz.Authorize(bad, metadata=bearer(tenant.processor)), field)

    assert usage(server, tenant.tenant_id, card.card_id) == {}, "a refused request must reserve nothing"
    for authorization_id in {good.authorization_id, bad.authorization_id} - {""}:
        assert not replay_exists(server, tenant.tenant_id, authorization_id), (
            f"a refused request must leave no replay record for {authorization_id!r}"
        )
    assert stream_lengths(server) == streams_before, "a refused request must append no decision record"

    response = api.authz.Authorize(good, metadata=bearer(tenant.processor))
    assert (response.decision, response.reason, response.replayed) == (t.APPROVE, t.APPROVED, False), (
        "the same authorization_id, sent well-formed afterwards, must be decided afresh"
    )
    assert usage(server, tenant.tenant_id, card.card_id) != {}, "the approval after it does reserve"
    stream = card_stream(server, card.card_id)
    assert stream_lengths(server)[stream] == streams_before[stream] + 1, "the approval is handed off once"


def test_refused_authorize_can_be_retried_many_times_without_effect(api, server, tenant):
    card = api.issue_card(tenant)
    request = api.authorize_request(card.card_id, 0)
    streams_before = stream_lengths(server)
    for _ in range(3):
        expect_invalid(lambda: api.authz.Authorize(request, metadata=bearer(tenant.processor)), "amount_minor")
    assert stream_lengths(server) == streams_before
    assert not replay_exists(server, tenant.tenant_id, request.authorization_id)


def test_validation_runs_for_admin_callers_too(api, server, tenant):
    card = api.issue_card(tenant)
    request = api.authorize_request(card.card_id, 1000, currency="usd")
    expect_invalid(lambda: api.authz.Authorize(request, metadata=bearer(tenant.admin)), "currency")
    assert usage(server, tenant.tenant_id, card.card_id) == {}


@pytest.mark.parametrize(
    "mutate",
    [
        _set("amount_minor", 10**13),
        _set("amount_minor", 1),
        _set("merchant.name", TEXT_256),
        _set("merchant.city", TEXT_256),
        _set("merchant.id", ""),
        _set("merchant.id", "AZaz09._:-"),
        _set("authorization_id", ID_64),
        _set("authorization_id", "A.z_0:9-"),
    ],
    ids=["amount-1e13", "amount-1", "name-256", "city-256", "merchant-id-empty", "merchant-id-alphabet",
         "authorization_id-64", "authorization_id-alphabet"],
)  # fmt: skip
def test_boundary_authorize_is_approved(api, server, tenant, mutate):
    card = api.issue_card(tenant)
    request = api.authorize_request(card.card_id, 1000)
    mutate(request)
    response = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    assert (response.decision, response.reason) == (t.APPROVE, t.APPROVED), (
        "a request at the edge of every rule is valid and decided normally"
    )
    assert response.authorization_id == request.authorization_id
    assert replay_exists(server, tenant.tenant_id, request.authorization_id)


def test_card_id_of_64_chars_is_decided_not_refused(api, tenant):
    response = api.authorize(tenant.processor, ID_64, 1000)
    assert (response.decision, response.reason, response.response_code) == (t.DECLINE, t.CARD_NOT_FOUND, "14")


# --- IssueCard ------------------------------------------------------------------------------


def valid_controls() -> t.SpendControls:
    return t.SpendControls(
        spending_limits=[
            t.SpendLimit(interval=t.PER_AUTHORIZATION, amount_minor=50_000),
            t.SpendLimit(interval=t.DAILY, amount_minor=100_000, max_count=10),
            t.SpendLimit(interval=t.MONTHLY, amount_minor=20_000, mccs=["5812"]),
        ],
        allowed_mccs=["5812", "5814"],
        blocked_mccs=["7995"],
        allowed_channels=[t.CARD_PRESENT, t.ECOMMERCE],
        allowed_countries=["US", "CA"],
        blocked_countries=["KP"],
        review_threshold_minor=40_000,
    )


ControlsMutation = Callable[[t.SpendControls], None]


def _limit(i: int, **fields: object) -> ControlsMutation:
    """Replaces spending limit `i` (the list has three) with one made of exactly `fields`."""

    def mutate(controls: t.SpendControls) -> None:
        limit = controls.spending_limits[i]
        limit.Clear()
        for name, value in fields.items():
            if name == "mccs":
                limit.mccs.extend(value)  # type: ignore[call-overload]
            else:
                setattr(limit, name, value)

    return mutate


def _entries(name: str, *values: object) -> ControlsMutation:
    def mutate(controls: t.SpendControls) -> None:
        getattr(controls, name).extend(values)

    return mutate


def _threshold(value: int) -> ControlsMutation:
    def mutate(controls: t.SpendControls) -> None:
        controls.review_threshold_minor = value

    return mutate


L = "spend_controls.spending_limits"
CONTROLS_REFUSALS: list[tuple[str, ControlsMutation, str]] = [
    ("interval-unset", _limit(1, amount_minor=100), f"{L}[1].interval"),
    ("amount-and-count-zero", _limit(1, interval=t.WEEKLY), f"{L}[1]"),
    ("max_count-on-per-authorization", _limit(1, interval=t.PER_AUTHORIZATION, amount_minor=9, max_count=1),
     f"{L}[1].max_count"),
    ("limit-mcc-3-digits", _limit(2, interval=t.DAILY, amount_minor=5, mccs=["5812", "581"]), f"{L}[2].mccs[1]"),
    ("limit-mcc-letters", _limit(0, interval=t.DAILY, amount_minor=5, mccs=["58a2"]), f"{L}[0].mccs[0]"),
    ("negative-amount", _limit(2, interval=t.DAILY, amount_minor=-1, max_count=2), f"{L}[2].amount_minor"),
    ("negative-count", _limit(1, interval=t.DAILY, amount_minor=1, max_count=-3), f"{L}[1].max_count"),
    ("allowed_mccs-3-digits", _entries("allowed_mccs", "581"), "spend_controls.allowed_mccs[2]"),
    ("blocked_mccs-letters", _entries("blocked_mccs", "abcd"), "spend_controls.blocked_mccs[1]"),
    ("allowed_countries-lower", _entries("allowed_countries", "mx"), "spend_controls.allowed_countries[2]"),
    ("blocked_countries-XX", _entries("blocked_countries", "XX"), "spend_controls.blocked_countries[1]"),
    ("blocked_countries-alpha3", _entries("blocked_countries", "PRK"), "spend_controls.blocked_countries[1]"),
    ("allowed_channels-unspecified", _entries("allowed_channels", t.CHANNEL_UNSPECIFIED),
     "spend_controls.allowed_channels[2]"),
    ("review_threshold-negative", _threshold(-1), "spend_controls.review_threshold_minor"),
]  # fmt: skip


def issue_request(**fields: object) -> card_pb2.IssueCardRequest:
    request = card_pb2.IssueCardRequest(
        idempotency_key=new_id("issue"),
        customer_ref="cust-1",
        account_ref=new_id("acct"),
        currency="USD",
        spend_controls=valid_controls(),
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


IssueMutation = Callable[[card_pb2.IssueCardRequest], None]


def _top(name: str, value: str) -> IssueMutation:
    def mutate(req: card_pb2.IssueCardRequest) -> None:
        setattr(req, name, value)

    return mutate


def _in_controls(mutation: ControlsMutation) -> IssueMutation:
    def mutate(req: card_pb2.IssueCardRequest) -> None:
        mutation(req.spend_controls)

    return mutate


ISSUE_REFUSALS: list[tuple[str, IssueMutation, str]] = [
    ("idempotency_key-missing", _top("idempotency_key", ""), "idempotency_key"),
    ("idempotency_key-65-chars", _top("idempotency_key", ID_65), "idempotency_key"),
    ("idempotency_key-space", _top("idempotency_key", "issue 1"), "idempotency_key"),
    ("customer_ref-missing", _top("customer_ref", ""), "customer_ref"),
    ("customer_ref-e-acute", _top("customer_ref", "clienté"), "customer_ref"),
    ("account_ref-missing", _top("account_ref", ""), "account_ref"),
    ("account_ref-65-chars", _top("account_ref", ID_65), "account_ref"),
    ("currency-lower-usd", _top("currency", "usd"), "currency"),
    ("currency-XXX", _top("currency", "XXX"), "currency"),
    ("currency-XTS", _top("currency", "XTS"), "currency"),
    ("currency-empty", _top("currency", ""), "currency"),
    *[(f"controls-{name}", _in_controls(mutation), field) for name, mutation, field in CONTROLS_REFUSALS],
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in ISSUE_REFUSALS], ids=[c[0] for c in ISSUE_REFUSALS])
def test_malformed_issue_card_is_refused_and_creates_nothing(api, server, tenant, mutate, field):
    good = issue_request()
    bad = card_pb2.IssueCardRequest()
    bad.CopyFrom(good)
    mutate(bad)

    expect_invalid(lambda: api.cards.IssueCard(bad, metadata=bearer(tenant.admin)), field)

    assert card_count(server, tenant.tenant_id) == 0, "a refused IssueCard must not create a card row"
    claimed = fetchval(server, "SELECT count(*) FROM card_issue_requests WHERE tenant_id = $1", tenant.tenant_id)
    assert claimed == 0, "a refused IssueCard must not claim its idempotency key"
    assert projected_cards(server, tenant.tenant_id) == [], "a refused IssueCard must not project a card"

    card = api.cards.IssueCard(good, metadata=bearer(tenant.admin))
    assert (card.state, card.policy_version, card.tenant_id) == (t.ACTIVE, 1, tenant.tenant_id), (
        "the same idempotency_key, sent well-formed afterwards, issues the card"
    )
    assert card_count(server, tenant.tenant_id) == 1


def test_issue_card_accepts_identifiers_at_their_bounds(api, tenant):
    card = api.cards.IssueCard(
        issue_request(idempotency_key=ID_64, customer_ref="AZaz09._:-" * 6, account_ref=ID_64),
        metadata=bearer(tenant.admin),
    )
    assert (card.customer_ref, card.account_ref) == ("AZaz09._:-" * 6, ID_64)
    assert card.spend_controls.review_threshold_minor == 40_000


# --- UpdateSpendControls --------------------------------------------------------------------


def replacement_controls() -> t.SpendControls:
    return t.SpendControls(
        spending_limits=[
            t.SpendLimit(interval=t.PER_AUTHORIZATION, amount_minor=10_000),
            t.SpendLimit(interval=t.WEEKLY, max_count=3),
            t.SpendLimit(interval=t.LIFETIME, amount_minor=1_000_000),
        ],
        allowed_mccs=["5411", "5812"],
        blocked_mccs=["7995"],
        allowed_channels=[t.CONTACTLESS, t.ECOMMERCE],
        allowed_countries=["GB", "IE"],
        blocked_countries=["KP"],
    )


UpdateMutation = Callable[[card_pb2.UpdateSpendControlsRequest], None]


def _update_card_id(card_id: str) -> UpdateMutation:
    def mutate(req: card_pb2.UpdateSpendControlsRequest) -> None:
        req.card_id = card_id

    return mutate


def _update_controls(mutation: ControlsMutation) -> UpdateMutation:
    def mutate(req: card_pb2.UpdateSpendControlsRequest) -> None:
        mutation(req.spend_controls)

    return mutate


UPDATE_REFUSALS: list[tuple[str, UpdateMutation, str]] = [
    ("card_id-missing", _update_card_id(""), "card_id"),
    ("card_id-65-chars", _update_card_id(ID_65), "card_id"),
    ("card_id-space", _update_card_id("card 1"), "card_id"),
    *[(name, _update_controls(mutation), field) for name, mutation, field in CONTROLS_REFUSALS],
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in UPDATE_REFUSALS], ids=[c[0] for c in UPDATE_REFUSALS])
def test_malformed_update_spend_controls_is_refused_and_changes_nothing(api, server, tenant, mutate, field):
    card = api.issue_card(tenant, controls=valid_controls())
    good = card_pb2.UpdateSpendControlsRequest(card_id=card.card_id, spend_controls=replacement_controls())
    bad = card_pb2.UpdateSpendControlsRequest()
    bad.CopyFrom(good)
    mutate(bad)

    expect_invalid(lambda: api.cards.UpdateSpendControls(bad, metadata=bearer(tenant.admin)), field)

    after = api.cards.GetCard(card_pb2.GetCardRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    assert after.spend_controls == card.spend_controls, "a refused update must leave the old controls"
    assert after.policy_version == card.policy_version == 1, "a refused update must not bump policy_version"
    versions = fetchval(server, "SELECT count(*) FROM card_versions WHERE card_id = $1", card.card_id)
    assert versions == 1, "a refused update must record no card version"

    updated = api.cards.UpdateSpendControls(good, metadata=bearer(tenant.admin))
    assert (updated.policy_version, updated.spend_controls) == (2, replacement_controls()), (
        "the card stays updatable: the well-formed update replaces the controls"
    )


# --- GetCard and card actions ---------------------------------------------------------------


@pytest.mark.parametrize("card_id", ["", ID_65, "card/1", "cardé"], ids=["missing", "65-chars", "slash", "e-acute"])
def test_get_card_with_malformed_card_id_is_refused(api, tenant, card_id):
    request = card_pb2.GetCardRequest(card_id=card_id)
    expect_invalid(lambda: api.cards.GetCard(request, metadata=bearer(tenant.operator)), "card_id")


ACTIONS = ["FreezeCard", "UnfreezeCard", "CloseCard"]


@pytest.mark.parametrize("action", ACTIONS)
def test_card_action_reason_over_256_chars_is_refused_and_changes_nothing(api, server, tenant, action):
    card = api.issue_card(tenant)
    if action == "UnfreezeCard":
        card = api.cards.FreezeCard(card_pb2.CardActionRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    request = card_pb2.CardActionRequest(card_id=card.card_id, reason=TEXT_257)

    expect_invalid(lambda: getattr(api.cards, action)(request, metadata=bearer(tenant.admin)), "reason")

    after = api.cards.GetCard(card_pb2.GetCardRequest(card_id=card.card_id), metadata=bearer(tenant.admin))
    assert (after.state, after.policy_version) == (card.state, card.policy_version), (
        f"a refused {action} must leave the card's state and policy_version"
    )


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("card_id", ["", ID_65, "card 1"], ids=["missing", "65-chars", "space"])
def test_card_action_with_malformed_card_id_is_refused(api, tenant, action, card_id):
    request = card_pb2.CardActionRequest(card_id=card_id, reason="ok")
    expect_invalid(lambda: getattr(api.cards, action)(request, metadata=bearer(tenant.admin)), "card_id")


def test_card_action_reason_of_256_chars_is_accepted(api, server, tenant):
    card = api.issue_card(tenant)
    frozen = api.cards.FreezeCard(
        card_pb2.CardActionRequest(card_id=card.card_id, reason=TEXT_256), metadata=bearer(tenant.admin)
    )
    assert (frozen.state, frozen.policy_version) == (t.FROZEN, 2)
    reason = fetchval(
        server, "SELECT reason FROM card_versions WHERE card_id = $1 AND policy_version = 2", card.card_id
    )
    assert reason == TEXT_256, "the reason is kept as evidence, whole"


# --- TenantService --------------------------------------------------------------------------


def tenant_total(server) -> int:
    return fetchval(server, "SELECT count(*) FROM tenants")  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("tenant_id", "name", "field"),
    [
        ("", "Acme", "tenant_id"),
        (ID_65, "Acme", "tenant_id"),
        ("acme corp", "Acme", "tenant_id"),
        ("acme/eu", "Acme", "tenant_id"),
        ("acmé", "Acme", "tenant_id"),
        (None, "", "name"),
        (None, TEXT_257, "name"),
    ],
    ids=["id-missing", "id-65-chars", "id-space", "id-slash", "id-e-acute", "name-empty", "name-257"],
)
def test_malformed_create_tenant_is_refused_and_creates_nothing(api, server, tenant_id, name, field):
    tenant_id = new_id("tenant") if tenant_id is None else tenant_id
    before = tenant_total(server)
    request = tenant_pb2.CreateTenantRequest(tenant_id=tenant_id, name=name)

    expect_invalid(lambda: api.tenants.CreateTenant(request, metadata=bearer(ADMIN_TOKEN)), field)

    assert tenant_total(server) == before, "a refused CreateTenant must not create a tenant"
    if field == "name":
        created = api.tenants.CreateTenant(
            tenant_pb2.CreateTenantRequest(tenant_id=tenant_id, name="Acme"), metadata=bearer(ADMIN_TOKEN)
        )
        assert created.tenant_id == tenant_id, "the tenant_id stays free after a refused request"


def test_create_tenant_accepts_bounds(api):
    prefix = new_id("t") + "."
    tenant_id = prefix + "x" * (64 - len(prefix))
    assert len(tenant_id) == 64
    created = api.tenants.CreateTenant(
        tenant_pb2.CreateTenantRequest(tenant_id=tenant_id, name=TEXT_256), metadata=bearer(ADMIN_TOKEN)
    )
    assert (created.tenant_id, created.name) == (tenant_id, TEXT_256)


@pytest.mark.parametrize(
    ("role", "label", "tenant_id", "field"),
    [
        (t.ROLE_UNSPECIFIED, "", None, "role"),
        (7, "", None, "role"),
        (t.ADMIN, TEXT_257, None, "label"),
        (t.ADMIN, "", "", "tenant_id"),
        (t.ADMIN, "", "tenant/x", "tenant_id"),
    ],
    ids=["role-unspecified", "role-unknown-7", "label-257", "tenant_id-missing", "tenant_id-slash"],
)
def test_malformed_create_api_key_is_refused_and_creates_nothing(api, server, tenant, role, label, tenant_id, field):
    request = tenant_pb2.CreateApiKeyRequest(
        tenant_id=tenant.tenant_id if tenant_id is None else tenant_id, role=role, label=label
    )
    keys_before = fetchval(server, "SELECT count(*) FROM api_keys")

    expect_invalid(lambda: api.tenants.CreateApiKey(request, metadata=bearer(ADMIN_TOKEN)), field)

    assert fetchval(server, "SELECT count(*) FROM api_keys") == keys_before, "a refused CreateApiKey stores no key"


# --- characters Postgres cannot store --------------------------------------------------------


def _freeze_with_nul_reason(api, tenant: TenantKeys) -> Callable[[], object]:
    card = api.issue_card(tenant)
    request = card_pb2.CardActionRequest(card_id=card.card_id, reason="lost\x00card")
    return lambda: api.cards.FreezeCard(request, metadata=bearer(tenant.admin))


def _create_tenant_with_nul_name(api, tenant: TenantKeys) -> Callable[[], object]:
    request = tenant_pb2.CreateTenantRequest(tenant_id=new_id("tenant"), name="Ac\x00me")
    return lambda: api.tenants.CreateTenant(request, metadata=bearer(ADMIN_TOKEN))


def _create_api_key_with_nul_label(api, tenant: TenantKeys) -> Callable[[], object]:
    request = tenant_pb2.CreateApiKeyRequest(tenant_id=tenant.tenant_id, role=t.PROCESSOR, label="a\x00b")
    return lambda: api.tenants.CreateApiKey(request, metadata=bearer(ADMIN_TOKEN))


def _authorize_with_nul_merchant_name(api, tenant: TenantKeys) -> Callable[[], object]:
    card = api.issue_card(tenant)
    request = api.authorize_request(card.card_id, 1000)
    request.merchant.name = "Cafe\x00"
    return lambda: api.authz.Authorize(request, metadata=bearer(tenant.processor))


@pytest.mark.parametrize(
    ("make_call", "field"),
    [
        (_freeze_with_nul_reason, "reason"),
        (_create_tenant_with_nul_name, "name"),
        (_create_api_key_with_nul_label, "label"),
        (_authorize_with_nul_merchant_name, "merchant.name"),
    ],
    ids=["freeze-reason", "tenant-name", "api-key-label", "merchant-name"],
)
def test_free_text_with_nul_is_invalid_argument(api, tenant, make_call, field):
    expect_invalid(make_call(api, tenant), field)
