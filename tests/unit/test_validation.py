"""Protects the edge validation rules of DESIGN §3: each malformed field is refused with an
InvalidArgument naming its exact field path, and the boundary values just inside are accepted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from authz_server import validation
from authz_server.errors import InvalidArgument
from authz_server.policy import Purchase
from zentra.cards.v1 import authorization_pb2, card_pb2, tenant_pb2
from zentra.cards.v1 import types_pb2 as t

ID_64 = "a" * 64
ID_65 = "a" * 65
TEXT_256 = "é" * 256  # length is counted in characters, not bytes
TEXT_257 = "x" * 257


def _authorize_request() -> authorization_pb2.AuthorizeRequest:
    return authorization_pb2.AuthorizeRequest(
        authorization_id="auth-1",
        card_id="card_1",
        amount_minor=1250,
        currency="USD",
        merchant=t.Merchant(id="m-1", name="Cafe", mcc="5812", country="US", city="Boston"),
        channel=t.CARD_PRESENT,
    )


def _controls() -> t.SpendControls:
    return t.SpendControls(
        spending_limits=[
            t.SpendLimit(interval=t.PER_AUTHORIZATION, amount_minor=50_000),
            t.SpendLimit(interval=t.DAILY, amount_minor=100_000, max_count=10, mccs=["5812", "5814"]),
        ],
        allowed_mccs=["5812"],
        blocked_mccs=["7995"],
        allowed_channels=[t.CARD_PRESENT, t.ECOMMERCE],
        allowed_countries=["US", "CA"],
        blocked_countries=["KP"],
        review_threshold_minor=40_000,
    )


def _issue_request() -> card_pb2.IssueCardRequest:
    return card_pb2.IssueCardRequest(
        idempotency_key="issue-1",
        customer_ref="cust-1",
        account_ref="acct-1",
        currency="USD",
        spend_controls=_controls(),
    )


def _expect_invalid(call: Callable[[], object], field: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        call()
    error = caught.value
    assert error.field == field, f"expected the error to name {field!r}, it named {error.field!r}"
    assert str(error) == f"{field}: {error.rule}", "the wire message must be '<field>: <rule>'"
    assert error.rule, "the rule must be spelled out"
    return error


# --- identifiers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a", ID_64, "AZaz09._:-", "tenant:acme.eu_1-2"],
    ids=["one-char", "64-chars", "whole-alphabet", "realistic"],
)
def test_require_id_accepts_1_to_64_chars_of_the_alphabet(value):
    assert validation.require_id("card_id", value) == value


@pytest.mark.parametrize(
    ("value", "rule_fragment"),
    [
        ("", "required"),
        (ID_65, "64"),
        ("a b", "A-Z"),
        ("a/b", "A-Z"),
        ("café", "A-Z"),
        ("a\nb", "A-Z"),
        ("abc\n", "A-Z"),
        ("\u0661\u0662\u0663", "A-Z"),  # Arabic-Indic digits are not [0-9]
        ("a*b", "A-Z"),
        ("a\x00", "A-Z"),
    ],
    ids=["empty", "65-chars", "space", "slash", "e-acute", "newline", "trailing-newline", "arabic-digits",
         "star", "nul"],
)  # fmt: skip
def test_require_id_refuses_bad_identifiers(value, rule_fragment):
    error = _expect_invalid(lambda: validation.require_id("authorization_id", value), "authorization_id")
    assert rule_fragment in error.rule, f"rule {error.rule!r} should mention {rule_fragment!r}"


def test_check_text_accepts_256_characters_and_refuses_257():
    assert validation.check_text("merchant.name", TEXT_256) == TEXT_256
    assert validation.check_text("merchant.name", "") == ""
    error = _expect_invalid(lambda: validation.check_text("merchant.name", TEXT_257), "merchant.name")
    assert "256" in error.rule


# --- currencies, countries, MCCs, channels -------------------------------------------------


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "GBP"])
def test_require_currency_accepts_assigned_upper_case_codes(code):
    assert validation.require_currency("currency", code) == code


@pytest.mark.parametrize(
    "code",
    ["usd", "Usd", "XXX", "XTS", "ABC", "", "US", "USDD", " USD"],
    ids=["lower", "mixed", "XXX-no-currency", "XTS-testing", "unassigned", "empty", "two-letters",
         "four-letters", "leading-space"],
)  # fmt: skip
def test_require_currency_refuses_non_currencies(code):
    _expect_invalid(lambda: validation.require_currency("currency", code), "currency")


@pytest.mark.parametrize("code", ["US", "GB", "DE", "JP"])
def test_require_country_accepts_assigned_alpha2_codes(code):
    assert validation.require_country("merchant.country", code) == code


@pytest.mark.parametrize(
    "code",
    ["us", "USA", "XX", "", "UK", "EU", "U"],
    ids=["lower", "alpha3", "unassigned-XX", "empty", "UK-not-assigned", "EU-not-a-country", "one-letter"],
)
def test_require_country_refuses_non_countries(code):
    _expect_invalid(lambda: validation.require_country("merchant.country", code), "merchant.country")


@pytest.mark.parametrize(
    "mcc",
    ["581", "58a2", "", "58121", "\uff15\uff18\uff11\uff12", " 5812", "5812\n"],
    ids=["three-digits", "letter", "empty", "five-digits", "fullwidth-digits", "leading-space",
         "trailing-newline"],
)  # fmt: skip
def test_require_mcc_refuses_anything_but_four_ascii_digits(mcc):
    _expect_invalid(lambda: validation.require_mcc("merchant.mcc", mcc), "merchant.mcc")


def test_require_mcc_accepts_four_digits_including_leading_zero():
    assert validation.require_mcc("merchant.mcc", "0742") == "0742"


@pytest.mark.parametrize("channel", [t.CHANNEL_UNSPECIFIED, 99, -1], ids=["unspecified", "unknown-99", "negative"])
def test_require_channel_refuses_unspecified_and_unknown_values(channel):
    _expect_invalid(lambda: validation.require_channel("channel", channel), "channel")


def test_require_channel_accepts_every_named_channel():
    for channel in (t.CARD_PRESENT, t.CONTACTLESS, t.ECOMMERCE, t.ATM, t.MAIL_PHONE):
        assert validation.require_channel("channel", channel) == channel


# --- AuthorizeRequest ---------------------------------------------------------------------


def test_validate_authorize_returns_the_purchase_facts():
    purchase = validation.validate_authorize(_authorize_request())
    assert purchase == Purchase(1250, "USD", "5812", "US", t.CARD_PRESENT)


def _set(path: str, value: object) -> Callable[[authorization_pb2.AuthorizeRequest], None]:
    def mutate(req: authorization_pb2.AuthorizeRequest) -> None:
        target: object = req
        *parents, leaf = path.split(".")
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)

    return mutate


def _clear_merchant(req: authorization_pb2.AuthorizeRequest) -> None:
    req.ClearField("merchant")


AUTHORIZE_REFUSALS = [
    ("missing-authorization_id", _set("authorization_id", ""), "authorization_id"),
    ("authorization_id-65-chars", _set("authorization_id", ID_65), "authorization_id"),
    ("authorization_id-space", _set("authorization_id", "auth 1"), "authorization_id"),
    ("authorization_id-slash", _set("authorization_id", "auth/1"), "authorization_id"),
    ("authorization_id-e-acute", _set("authorization_id", "authé"), "authorization_id"),
    ("missing-card_id", _set("card_id", ""), "card_id"),
    ("card_id-65-chars", _set("card_id", ID_65), "card_id"),
    ("card_id-space", _set("card_id", "card 1"), "card_id"),
    ("amount-zero", _set("amount_minor", 0), "amount_minor"),
    ("amount-negative", _set("amount_minor", -1), "amount_minor"),
    ("amount-above-1e13", _set("amount_minor", 10**13 + 1), "amount_minor"),
    ("currency-lower", _set("currency", "usd"), "currency"),
    ("currency-XXX", _set("currency", "XXX"), "currency"),
    ("currency-XTS", _set("currency", "XTS"), "currency"),
    ("currency-ABC", _set("currency", "ABC"), "currency"),
    ("currency-empty", _set("currency", ""), "currency"),
    ("merchant-missing", _clear_merchant, "merchant"),
    ("mcc-three-digits", _set("merchant.mcc", "581"), "merchant.mcc"),
    ("mcc-letter", _set("merchant.mcc", "58a2"), "merchant.mcc"),
    ("mcc-empty", _set("merchant.mcc", ""), "merchant.mcc"),
    ("country-lower", _set("merchant.country", "us"), "merchant.country"),
    ("country-alpha3", _set("merchant.country", "USA"), "merchant.country"),
    ("country-XX", _set("merchant.country", "XX"), "merchant.country"),
    ("country-empty", _set("merchant.country", ""), "merchant.country"),
    ("channel-unspecified", _set("channel", t.CHANNEL_UNSPECIFIED), "channel"),
    ("merchant-name-257", _set("merchant.name", TEXT_257), "merchant.name"),
    ("merchant-city-257", _set("merchant.city", TEXT_257), "merchant.city"),
    ("merchant-id-bad-char", _set("merchant.id", "m 1"), "merchant.id"),
    ("merchant-id-65-chars", _set("merchant.id", ID_65), "merchant.id"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [c[1:] for c in AUTHORIZE_REFUSALS], ids=[c[0] for c in AUTHORIZE_REFUSALS]
)
def test_validate_authorize_names_the_bad_field(mutate, field):
    req = _authorize_request()
    mutate(req)
    _expect_invalid(lambda: validation.validate_authorize(req), field)


def test_validate_authorize_empty_merchant_message_names_mcc_first():
    req = _authorize_request()
    req.merchant.Clear()
    req.merchant.SetInParent()  # present but empty: its mcc is the first required part
    _expect_invalid(lambda: validation.validate_authorize(req), "merchant.mcc")


@pytest.mark.parametrize(
    "mutate",
    [
        _set("amount_minor", 10**13),
        _set("amount_minor", 1),
        _set("merchant.name", TEXT_256),
        _set("merchant.city", TEXT_256),
        _set("merchant.id", ""),
        _set("authorization_id", ID_64),
        _set("card_id", ID_64),
    ],
    ids=["amount-1e13", "amount-1", "name-256", "city-256", "empty-merchant-id", "auth-id-64", "card-id-64"],
)
def test_validate_authorize_accepts_boundary_values(mutate):
    req = _authorize_request()
    mutate(req)
    assert validation.validate_authorize(req).amount_minor == req.amount_minor


def test_validate_authorize_reports_fields_in_request_order():
    req = _authorize_request()
    req.card_id = ""
    req.amount_minor = 0
    req.channel = t.CHANNEL_UNSPECIFIED
    _expect_invalid(lambda: validation.validate_authorize(req), "card_id")


# --- SpendControls (IssueCard and UpdateSpendControls) ------------------------------------


def _limit(i: int, **fields: object) -> Callable[[t.SpendControls], None]:
    def mutate(controls: t.SpendControls) -> None:
        while len(controls.spending_limits) <= i:
            controls.spending_limits.add(interval=t.WEEKLY, amount_minor=1)
        limit = controls.spending_limits[i]
        limit.Clear()
        for name, value in fields.items():
            if name == "mccs":
                limit.mccs.extend(value)  # type: ignore[call-overload]
            else:
                setattr(limit, name, value)

    return mutate


def _list(name: str, values: list[object]) -> Callable[[t.SpendControls], None]:
    def mutate(controls: t.SpendControls) -> None:
        field = getattr(controls, name)
        del field[:]
        field.extend(values)

    return mutate


def _threshold(value: int) -> Callable[[t.SpendControls], None]:
    def mutate(controls: t.SpendControls) -> None:
        controls.review_threshold_minor = value

    return mutate


S = "spend_controls"
CONTROLS_REFUSALS = [
    ("interval-unset", _limit(0, amount_minor=100), f"{S}.spending_limits[0].interval"),
    ("interval-unknown-99", _limit(1, interval=99, amount_minor=100), f"{S}.spending_limits[1].interval"),
    ("amount-and-count-zero", _limit(1, interval=t.DAILY), f"{S}.spending_limits[1]"),
    (
        "max_count-on-per-authorization",
        _limit(1, interval=t.PER_AUTHORIZATION, amount_minor=100, max_count=2),
        f"{S}.spending_limits[1].max_count",
    ),
    (
        "max_count-only-on-per-authorization",
        _limit(0, interval=t.PER_AUTHORIZATION, max_count=1),
        f"{S}.spending_limits[0].max_count",
    ),
    ("negative-amount", _limit(1, interval=t.DAILY, amount_minor=-1, max_count=3), f"{S}.spending_limits[1].amount_minor"),
    ("negative-count", _limit(1, interval=t.DAILY, amount_minor=5, max_count=-1), f"{S}.spending_limits[1].max_count"),
    ("amount-above-1e15", _limit(0, interval=t.DAILY, amount_minor=10**15 + 1), f"{S}.spending_limits[0].amount_minor"),
    ("count-above-1e9", _limit(0, interval=t.DAILY, max_count=10**9 + 1), f"{S}.spending_limits[0].max_count"),
    ("limit-mcc-three-digits", _limit(1, interval=t.DAILY, amount_minor=5, mccs=["5812", "581"]),
     f"{S}.spending_limits[1].mccs[1]"),
    ("limit-mcc-letters", _limit(2, interval=t.DAILY, amount_minor=5, mccs=["abcd"]), f"{S}.spending_limits[2].mccs[0]"),
    ("allowed_mccs-bad", _list("allowed_mccs", ["5812", "58a2"]), f"{S}.allowed_mccs[1]"),
    ("blocked_mccs-bad", _list("blocked_mccs", ["79955"]), f"{S}.blocked_mccs[0]"),
    ("allowed_countries-lower", _list("allowed_countries", ["US", "ca"]), f"{S}.allowed_countries[1]"),
    ("allowed_countries-alpha3", _list("allowed_countries", ["USA"]), f"{S}.allowed_countries[0]"),
    ("blocked_countries-XX", _list("blocked_countries", ["KP", "XX"]), f"{S}.blocked_countries[1]"),
    ("allowed_channels-unspecified", _list("allowed_channels", [t.ECOMMERCE, t.CHANNEL_UNSPECIFIED]),
     f"{S}.allowed_channels[1]"),
    ("allowed_channels-unknown", _list("allowed_channels", [42]), f"{S}.allowed_channels[0]"),
    ("review_threshold-negative", _threshold(-1), f"{S}.review_threshold_minor"),
    ("review_threshold-above-1e15", _threshold(10**15 + 1), f"{S}.review_threshold_minor"),
    ("too-many-limits", _limit(64, interval=t.DAILY, amount_minor=1), f"{S}.spending_limits"),
    ("too-many-mccs", _list("allowed_mccs", ["5812"] * 1001), f"{S}.allowed_mccs"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in CONTROLS_REFUSALS], ids=[c[0] for c in CONTROLS_REFUSALS])
def test_validate_issue_card_names_the_bad_spend_control(mutate, field):
    req = _issue_request()
    mutate(req.spend_controls)
    _expect_invalid(lambda: validation.validate_issue_card(req), field)


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in CONTROLS_REFUSALS], ids=[c[0] for c in CONTROLS_REFUSALS])
def test_validate_update_controls_applies_the_same_rules(mutate, field):
    req = card_pb2.UpdateSpendControlsRequest(card_id="card_1", spend_controls=_controls())
    mutate(req.spend_controls)
    _expect_invalid(lambda: validation.validate_update_controls(req), field)


@pytest.mark.parametrize(
    "mutate",
    [
        _limit(63, interval=t.LIFETIME, amount_minor=1),
        _list("allowed_mccs", ["5812"] * 1000),
        _threshold(10**15),
        _threshold(0),
        _limit(0, interval=t.DAILY, max_count=10**9),
        _limit(0, interval=t.DAILY, amount_minor=10**15),
        _limit(0, interval=t.PER_AUTHORIZATION, amount_minor=1),
        _limit(0, interval=t.MONTHLY, max_count=1, mccs=["0742"]),
    ],
    ids=["64-limits", "1000-mccs", "threshold-1e15", "threshold-off", "count-1e9", "amount-1e15",
         "per-auth-amount-only", "count-only-scoped"],
)  # fmt: skip
def test_validate_spend_controls_accepts_values_at_their_bounds(mutate):
    controls = _controls()
    mutate(controls)
    validation.validate_spend_controls("spend_controls", controls)


def test_validate_spend_controls_accepts_empty_controls():
    validation.validate_spend_controls("spend_controls", t.SpendControls())


# --- IssueCard, UpdateSpendControls, card actions -----------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("idempotency_key", ""),
        ("idempotency_key", ID_65),
        ("idempotency_key", "key 1"),
        ("customer_ref", ""),
        ("customer_ref", "cust/1"),
        ("account_ref", ""),
        ("account_ref", ID_65),
        ("currency", "usd"),
        ("currency", "XXX"),
        ("currency", ""),
    ],
    ids=["idem-missing", "idem-65", "idem-space", "customer-missing", "customer-slash", "account-missing",
         "account-65", "currency-lower", "currency-XXX", "currency-empty"],
)  # fmt: skip
def test_validate_issue_card_names_the_bad_top_level_field(field, value):
    req = _issue_request()
    setattr(req, field, value)
    _expect_invalid(lambda: validation.validate_issue_card(req), field)


def test_validate_issue_card_accepts_a_valid_request_and_missing_controls():
    validation.validate_issue_card(_issue_request())
    req = _issue_request()
    req.ClearField("spend_controls")
    validation.validate_issue_card(req)


@pytest.mark.parametrize("card_id", ["", ID_65, "card 1"], ids=["missing", "65-chars", "space"])
def test_validate_update_controls_checks_card_id(card_id):
    req = card_pb2.UpdateSpendControlsRequest(card_id=card_id, spend_controls=_controls())
    _expect_invalid(lambda: validation.validate_update_controls(req), "card_id")


def test_validate_card_action_reason_256_accepted_257_refused():
    validation.validate_card_action(card_pb2.CardActionRequest(card_id="card_1", reason=TEXT_256))
    _expect_invalid(
        lambda: validation.validate_card_action(card_pb2.CardActionRequest(card_id="card_1", reason=TEXT_257)),
        "reason",
    )
    _expect_invalid(lambda: validation.validate_card_action(card_pb2.CardActionRequest(card_id="")), "card_id")


# --- TenantService ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant_id", "name", "field"),
    [
        ("", "Acme", "tenant_id"),
        (ID_65, "Acme", "tenant_id"),
        ("acme corp", "Acme", "tenant_id"),
        ("acmé", "Acme", "tenant_id"),
        ("acme", "", "name"),
        ("acme", TEXT_257, "name"),
    ],
    ids=["id-missing", "id-65", "id-space", "id-e-acute", "name-empty", "name-257"],
)
def test_validate_create_tenant(tenant_id, name, field):
    req = tenant_pb2.CreateTenantRequest(tenant_id=tenant_id, name=name)
    _expect_invalid(lambda: validation.validate_create_tenant(req), field)


def test_validate_create_tenant_accepts_boundaries():
    validation.validate_create_tenant(tenant_pb2.CreateTenantRequest(tenant_id=ID_64, name=TEXT_256))


@pytest.mark.parametrize(
    ("tenant_id", "role", "label", "field"),
    [
        ("acme", t.ROLE_UNSPECIFIED, "", "role"),
        ("acme", 9, "", "role"),
        ("", t.ADMIN, "", "tenant_id"),
        ("acme/x", t.ADMIN, "", "tenant_id"),
        ("acme", t.PROCESSOR, TEXT_257, "label"),
    ],
    ids=["role-unspecified", "role-unknown", "tenant-missing", "tenant-slash", "label-257"],
)
def test_validate_create_api_key(tenant_id, role, label, field):
    req = tenant_pb2.CreateApiKeyRequest(tenant_id=tenant_id, role=role, label=label)
    _expect_invalid(lambda: validation.validate_create_api_key(req), field)


def test_validate_create_api_key_accepts_every_role():
    for role in (t.PROCESSOR, t.OPERATOR, t.ADMIN):
        validation.validate_create_api_key(tenant_pb2.CreateApiKeyRequest(tenant_id="acme", role=role))
