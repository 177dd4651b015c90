"""Protects GetAuthorization and GetAccountBalances over real gRPC, Redis and Postgres: what a caller reads before
and after the ledger writer posts, who may read it, and that balances follow the postings."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from tests.support.api import Api, TenantKeys, bearer, merchant, new_id
from tests.support.stack import ADMIN_TOKEN, Ledger
from zentra.cards.v1 import authorization_pb2, card_pb2, ledger_pb2, ledger_pb2_grpc, tenant_pb2
from zentra.cards.v1 import types_pb2 as t

# --- helpers --------------------------------------------------------------------------------


def get_authorization(api: Api, secret: str, authorization_id: str) -> authorization_pb2.Authorization:
    return api.authz.GetAuthorization(
        authorization_pb2.GetAuthorizationRequest(authorization_id=authorization_id), metadata=bearer(secret)
    )


def get_balances(api: Api, secret: str, account_ref: str) -> ledger_pb2.AccountBalances:
    stub = ledger_pb2_grpc.LedgerServiceStub(api.channel)
    return stub.GetAccountBalances(
        ledger_pb2.GetAccountBalancesRequest(account_ref=account_ref), metadata=bearer(secret)
    )


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def key_id(secret: str) -> str:
    return secret.split(".", 1)[0]


def issue_card_on_account(api: Api, tenant: TenantKeys, account_ref: str, currency: str = "USD") -> card_pb2.Card:
    return api.cards.IssueCard(
        card_pb2.IssueCardRequest(
            idempotency_key=new_id("issue"), customer_ref="cust-1", account_ref=account_ref, currency=currency
        ),
        metadata=bearer(tenant.admin),
    )


def new_processor_key(api: Api, tenant: TenantKeys) -> str:
    return api.tenants.CreateApiKey(
        tenant_pb2.CreateApiKeyRequest(tenant_id=tenant.tenant_id, role=t.PROCESSOR, label="second processor"),
        metadata=bearer(ADMIN_TOKEN),
    ).secret


def entries_of(found: authorization_pb2.Authorization) -> list[tuple[str, str, int, int, str, str]]:
    return [
        (e.transaction_id, e.account, e.direction, e.amount_minor, e.currency, e.account_ref)
        for e in found.ledger_entries
    ]


# --- before and after posting ---------------------------------------------------------------


def test_approval_is_read_from_redis_before_posting_and_from_postgres_after(api, tenant, ledger: Ledger):
    card = api.issue_card(tenant)
    response = api.authorize(tenant.processor, card.card_id, 1250)
    assert response.decision == t.APPROVE

    before = get_authorization(api, tenant.operator, response.authorization_id)
    assert not before.posted, "not yet posted by the ledger writer: answered from the Redis replay record"
    assert (before.authorization_id, before.card_id, before.tenant_id) == (
        response.authorization_id, card.card_id, tenant.tenant_id,
    )  # fmt: skip
    assert (before.decision, before.reason, before.response_code, before.status) == (
        t.APPROVE, t.APPROVED, "00", "PENDING",
    )  # fmt: skip
    assert (before.amount_minor, before.currency, before.channel) == (1250, "USD", t.CARD_PRESENT)
    assert before.merchant == merchant(), "the merchant as the processor sent it"
    assert (before.policy_version, before.decided_at) == (response.policy_version, response.decided_at)
    assert before.actor_key_id == key_id(tenant.processor)
    assert list(before.rules) == [] and list(before.ledger_entries) == [], "no rule trace or postings before posting"
    assert not before.HasField("recorded_at") and before.account_ref == ""

    ledger.drain()
    after = get_authorization(api, tenant.operator, response.authorization_id)
    assert after.posted, "after the ledger writer ran, the answer comes from Postgres"
    assert (after.decision, after.reason, after.response_code, after.status) == (t.APPROVE, t.APPROVED, "00", "PENDING")
    assert (after.amount_minor, after.currency, after.channel, after.merchant) == (
        1250, "USD", t.CARD_PRESENT, merchant(),
    )  # fmt: skip
    assert (after.policy_version, after.decided_at) == (before.policy_version, before.decided_at), (
        "Redis and Postgres tell the same decision"
    )
    assert after.rules, "a posted authorization carries its rule trace"
    assert after.rules[-1].passed, f"an approval passes every rule it ran; last was {after.rules[-1]}"
    assert all(rule.passed for rule in after.rules)
    hold = f"hold:{response.authorization_id}"
    assert entries_of(after) == [
        (hold, "customer_balance", ledger_pb2.DEBIT, 1250, "USD", card.account_ref),
        (hold, "reserved_balance", ledger_pb2.CREDIT, 1250, "USD", card.account_ref),
    ], "exactly the hold: debit customer_balance, credit reserved_balance"
    assert after.HasField("recorded_at") and after.account_ref == card.account_ref
    assert after.actor_key_id == key_id(tenant.processor)


def test_decline_shows_the_failed_rule_and_no_entries(api, tenant, ledger: Ledger):
    card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"]))
    response = api.authorize(tenant.processor, card.card_id, 100, mcc="7995")
    assert (response.decision, response.reason) == (t.DECLINE, t.MCC_NOT_ALLOWED)

    before = get_authorization(api, tenant.admin, response.authorization_id)
    assert (before.posted, before.decision, before.reason, before.response_code, before.status) == (
        False, t.DECLINE, t.MCC_NOT_ALLOWED, "57", "DECLINED",
    )  # fmt: skip
    assert before.merchant.mcc == "7995"

    ledger.drain()
    after = get_authorization(api, tenant.admin, response.authorization_id)
    assert (after.posted, after.decision, after.reason, after.status) == (
        True,
        t.DECLINE,
        t.MCC_NOT_ALLOWED,
        "DECLINED",
    )
    assert after.rules and not after.rules[-1].passed, "a decline's trace ends in the rule that failed"
    assert (after.rules[-1].rule, after.rules[-1].detail) == ("mcc", "mcc 7995 is in blocked_mccs [7995]")
    assert all(rule.passed for rule in after.rules[:-1]), "rules before the failing one passed"
    assert list(after.ledger_entries) == [], "a decline posts nothing"


def test_exceeded_limit_is_shown_before_and_after_posting(api, tenant, ledger: Ledger):
    limit = t.SpendLimit(interval=t.DAILY, amount_minor=500)
    card = api.issue_card(tenant, t.SpendControls(spending_limits=[limit]))
    response = api.authorize(tenant.processor, card.card_id, 600)
    assert (response.decision, response.reason) == (t.DECLINE, t.SPEND_LIMIT_EXCEEDED)

    before = get_authorization(api, tenant.operator, response.authorization_id)
    assert (before.posted, before.exceeded_limit, before.response_code) == (False, limit, "61")
    ledger.drain()
    after = get_authorization(api, tenant.operator, response.authorization_id)
    assert (after.posted, after.exceeded_limit, after.response_code) == (True, limit, "61")
    assert after.rules[-1].rule == "spending_limits" and not after.rules[-1].passed


def test_card_not_found_decline_is_readable_without_an_account(api, tenant, ledger: Ledger):
    response = api.authorize(tenant.processor, "card_nowhere", 100)
    ledger.drain()
    found = get_authorization(api, tenant.operator, response.authorization_id)
    assert (found.posted, found.reason, found.policy_version, found.account_ref) == (True, t.CARD_NOT_FOUND, 0, "")
    assert [(r.rule, r.passed) for r in found.rules] == [("card_exists", False)]


# --- who may read it ------------------------------------------------------------------------


def test_who_may_read_an_authorization(api, tenant, ledger: Ledger):
    other_tenant = api.new_tenant()
    second_processor = new_processor_key(api, tenant)
    card = api.issue_card(tenant)
    response = api.authorize(tenant.processor, card.card_id, 700)
    unknown_id = new_id("auth")
    unknown = rpc_error(lambda: get_authorization(api, tenant.admin, unknown_id))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    not_found_details = unknown.details().replace(unknown_id, response.authorization_id)

    def check(stage: str) -> None:
        for role, secret in (
            ("OPERATOR", tenant.operator),
            ("ADMIN", tenant.admin),
            ("its PROCESSOR", tenant.processor),
        ):
            found = get_authorization(api, secret, response.authorization_id)
            assert found.authorization_id == response.authorization_id, f"{stage}: {role} may read it"
        strangers = (
            ("another PROCESSOR key of the tenant", second_processor),
            ("the other tenant's ADMIN", other_tenant.admin),
            ("the other tenant's OPERATOR", other_tenant.operator),
            ("the other tenant's PROCESSOR", other_tenant.processor),
        )
        for who, secret in strangers:
            error = rpc_error(lambda secret=secret: get_authorization(api, secret, response.authorization_id))
            assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, not_found_details), (
                f"{stage}: {who} must get NOT_FOUND, indistinguishable from an unknown id"
            )

    check("before posting")
    ledger.drain()
    assert get_authorization(api, tenant.admin, response.authorization_id).posted
    check("after posting")


def test_admin_made_authorization_is_hidden_from_processors(api, tenant, ledger: Ledger):
    card = api.issue_card(tenant)
    response = api.authorize(tenant.admin, card.card_id, 300)

    def check(stage: str) -> None:
        error = rpc_error(lambda: get_authorization(api, tenant.processor, response.authorization_id))
        assert error.code() == grpc.StatusCode.NOT_FOUND, f"{stage}: a PROCESSOR sees only what it authorized"
        assert get_authorization(api, tenant.admin, response.authorization_id).actor_key_id == key_id(tenant.admin)

    check("before posting")
    ledger.drain()
    check("after posting")


def test_bootstrap_token_may_not_read_authorizations(api, tenant):
    error = rpc_error(lambda: get_authorization(api, ADMIN_TOKEN, new_id("auth")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_unknown_authorization_is_not_found(api, tenant):
    error = rpc_error(lambda: get_authorization(api, tenant.operator, new_id("auth")))
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()


@pytest.mark.parametrize(
    "authorization_id",
    ["", "a" * 65, "bad id", "auth/1", "ä"],
    ids=["empty", "too-long", "space", "slash", "non-ascii"],
)
def test_malformed_authorization_id_is_invalid_argument(api, tenant, authorization_id):
    error = rpc_error(lambda: get_authorization(api, tenant.operator, authorization_id))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith("authorization_id:"), "the refusal names the field"


# --- balances -------------------------------------------------------------------------------


def test_balances_follow_the_postings(api, tenant, ledger: Ledger):
    account_ref = new_id("acct")
    first, second = issue_card_on_account(api, tenant, account_ref), issue_card_on_account(api, tenant, account_ref)
    euro = issue_card_on_account(api, tenant, account_ref, currency="EUR")
    assert api.authorize(tenant.processor, first.card_id, 1000).decision == t.APPROVE
    assert api.authorize(tenant.processor, second.card_id, 250).decision == t.APPROVE
    assert api.authorize(tenant.processor, euro.card_id, 40, currency="EUR").decision == t.APPROVE
    declined = api.authorize(tenant.processor, first.card_id, 500, currency="EUR")
    assert declined.reason == t.CURRENCY_MISMATCH, "a decline must not move any balance"

    assert list(get_balances(api, tenant.operator, account_ref).balances) == [], (
        "balances reflect postings only: nothing is posted before the ledger writer runs"
    )
    ledger.drain()
    for secret in (tenant.operator, tenant.admin):
        balances = get_balances(api, secret, account_ref)
        assert balances.account_ref == account_ref
        assert [
            (b.currency, b.customer_balance_minor, b.reserved_balance_minor, b.settlement_minor)
            for b in balances.balances
        ] == [("EUR", -40, 40, 0), ("USD", -1250, 1250, 0)], "credit-normal, per currency, ordered by currency"


def test_balances_are_for_operators_and_admins_only(api, tenant):
    for secret in (tenant.processor, ADMIN_TOKEN):
        error = rpc_error(lambda secret=secret: get_balances(api, secret, new_id("acct")))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
        assert "GetAccountBalances" in error.details()


def test_balances_of_an_unknown_or_foreign_account_are_empty(api, tenant, ledger: Ledger):
    other_tenant = api.new_tenant()
    card = api.issue_card(tenant)
    assert api.authorize(tenant.processor, card.card_id, 100).decision == t.APPROVE
    ledger.drain()
    assert list(get_balances(api, tenant.operator, new_id("acct")).balances) == [], "no entries: an empty list"
    assert list(get_balances(api, other_tenant.operator, card.account_ref).balances) == [], (
        "another tenant's account of the same name is not this tenant's"
    )
    assert len(get_balances(api, tenant.operator, card.account_ref).balances) == 1


@pytest.mark.parametrize("account_ref", ["", "a" * 65, "no spaces"], ids=["empty", "too-long", "space"])
def test_malformed_account_ref_is_invalid_argument(api, tenant, account_ref):
    error = rpc_error(lambda: get_balances(api, tenant.operator, account_ref))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("account_ref:"), "the refusal names the field"
