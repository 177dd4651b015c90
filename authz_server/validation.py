"""Request validation at the edge (DESIGN §3 "Malformed requests"). Each check raises
InvalidArgument naming the field path (e.g. `merchant.mcc`,
`spend_controls.spending_limits[2].max_count`) and the rule; a request that fails is
rejected before anything is read or written."""

from __future__ import annotations

import re

from authz_server.errors import InvalidArgument
from authz_server.policy import Purchase
from authz_server.reference_data import COUNTRIES, CURRENCIES
from zentra.cards.v1 import authorization_pb2, card_pb2, clearing_pb2, tenant_pb2, types_pb2

ID_LENGTH_MAX = 64  # every *_id, idempotency_key, customer_ref, account_ref
TEXT_LENGTH_MAX = 256  # merchant name and city, reasons, labels, tenant names
AMOUNT_MINOR_MAX = 10**13  # largest purchase amount in minor units (DESIGN §3)
LIMIT_AMOUNT_MINOR_MAX = 10**15  # largest amount cap or review threshold
LIMIT_COUNT_MAX = 10**9  # largest count cap
SPENDING_LIMITS_MAX = 64  # spending limits per card
CODE_LIST_MAX = 1000  # entries in one MCC or country list

_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MCC = re.compile(r"[0-9]{4}")
_VALID_CHANNELS = frozenset(v.number for v in types_pb2.Channel.DESCRIPTOR.values) - {types_pb2.CHANNEL_UNSPECIFIED}
_VALID_INTERVALS = frozenset(v.number for v in types_pb2.Interval.DESCRIPTOR.values) - {types_pb2.INTERVAL_UNSPECIFIED}
_VALID_ROLES = frozenset(v.number for v in types_pb2.Role.DESCRIPTOR.values) - {types_pb2.ROLE_UNSPECIFIED}


def require_id(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > ID_LENGTH_MAX:
        raise InvalidArgument(field, f"must be at most {ID_LENGTH_MAX} characters")
    if not _ID.fullmatch(value):
        raise InvalidArgument(field, "must contain only A-Z a-z 0-9 . _ : -")
    return value


def check_text(field: str, value: str) -> str:
    if len(value) > TEXT_LENGTH_MAX:
        raise InvalidArgument(field, f"must be at most {TEXT_LENGTH_MAX} characters")
    if "\x00" in value:
        # Postgres text cannot hold NUL; refusing it here keeps the record storable end to end.
        raise InvalidArgument(field, "must not contain NUL characters")
    return value


def require_currency(field: str, value: str) -> str:
    if value not in CURRENCIES:
        raise InvalidArgument(field, "must be an assigned ISO 4217 currency code in upper case (e.g. USD)")
    return value


def require_country(field: str, value: str) -> str:
    if value not in COUNTRIES:
        raise InvalidArgument(field, "must be an assigned ISO 3166-1 alpha-2 country code in upper case (e.g. US)")
    return value


def require_mcc(field: str, value: str) -> str:
    if not _MCC.fullmatch(value):
        raise InvalidArgument(field, "must be a merchant category code of exactly 4 digits")
    return value


def require_channel(field: str, value: int) -> int:
    if value not in _VALID_CHANNELS:
        raise InvalidArgument(field, "must be a channel other than CHANNEL_UNSPECIFIED")
    return value


def _check_list(field: str, values: object, check: object) -> None:
    items = list(values)  # type: ignore[call-overload]
    if len(items) > CODE_LIST_MAX:
        raise InvalidArgument(field, f"must have at most {CODE_LIST_MAX} entries")
    for i, value in enumerate(items):
        check(f"{field}[{i}]", value)  # type: ignore[operator]


def validate_spend_controls(field: str, msg: types_pb2.SpendControls) -> None:
    """SpendLimit and list rules of DESIGN §3, on IssueCard and UpdateSpendControls."""
    if len(msg.spending_limits) > SPENDING_LIMITS_MAX:
        raise InvalidArgument(f"{field}.spending_limits", f"must have at most {SPENDING_LIMITS_MAX} entries")
    for i, limit in enumerate(msg.spending_limits):
        at = f"{field}.spending_limits[{i}]"
        if limit.interval not in _VALID_INTERVALS:
            raise InvalidArgument(f"{at}.interval", "must be set (PER_AUTHORIZATION, DAILY, ..., LIFETIME)")
        if not 0 <= limit.amount_minor <= LIMIT_AMOUNT_MINOR_MAX:
            raise InvalidArgument(f"{at}.amount_minor", f"must be between 0 and {LIMIT_AMOUNT_MINOR_MAX}")
        if not 0 <= limit.max_count <= LIMIT_COUNT_MAX:
            raise InvalidArgument(f"{at}.max_count", f"must be between 0 and {LIMIT_COUNT_MAX}")
        if limit.amount_minor == 0 and limit.max_count == 0:
            raise InvalidArgument(at, "needs amount_minor > 0 or max_count > 0")
        if limit.interval == types_pb2.PER_AUTHORIZATION and limit.max_count:
            raise InvalidArgument(f"{at}.max_count", "is not allowed on a PER_AUTHORIZATION limit")
        _check_list(f"{at}.mccs", limit.mccs, require_mcc)
    _check_list(f"{field}.allowed_mccs", msg.allowed_mccs, require_mcc)
    _check_list(f"{field}.blocked_mccs", msg.blocked_mccs, require_mcc)
    _check_list(f"{field}.allowed_channels", msg.allowed_channels, require_channel)
    _check_list(f"{field}.allowed_countries", msg.allowed_countries, require_country)
    _check_list(f"{field}.blocked_countries", msg.blocked_countries, require_country)
    if not 0 <= msg.review_threshold_minor <= LIMIT_AMOUNT_MINOR_MAX:
        raise InvalidArgument(f"{field}.review_threshold_minor", f"must be between 0 and {LIMIT_AMOUNT_MINOR_MAX}")


def validate_merchant(req: authorization_pb2.AuthorizeRequest | clearing_pb2.ClearingRecord) -> types_pb2.Merchant:
    """The request's merchant: required, with a 4-digit MCC and an alpha-2 country."""
    if not req.HasField("merchant"):
        raise InvalidArgument("merchant", "is required (with mcc and country)")
    merchant = req.merchant
    if merchant.id:
        require_id("merchant.id", merchant.id)
    check_text("merchant.name", merchant.name)
    require_mcc("merchant.mcc", merchant.mcc)
    require_country("merchant.country", merchant.country)
    check_text("merchant.city", merchant.city)
    return merchant


def validate_authorize(req: authorization_pb2.AuthorizeRequest) -> Purchase:
    """All of AuthorizeRequest, in field order; returns the facts the rules read."""
    require_id("authorization_id", req.authorization_id)
    require_id("card_id", req.card_id)
    if not 0 < req.amount_minor <= AMOUNT_MINOR_MAX:
        raise InvalidArgument("amount_minor", f"must be between 1 and {AMOUNT_MINOR_MAX} minor units")
    require_currency("currency", req.currency)
    merchant = validate_merchant(req)
    require_channel("channel", req.channel)
    if req.incremental_of:
        require_id("incremental_of", req.incremental_of)
        if req.incremental_of == req.authorization_id:
            raise InvalidArgument("incremental_of", "must name another authorization")
        if req.advice:
            raise InvalidArgument("incremental_of", "an advice cannot be incremental")
    return Purchase(
        req.amount_minor,
        req.currency,
        merchant.mcc,
        merchant.country,
        req.channel,
        req.advice,
        bool(req.incremental_of),
    )


def validate_reverse(req: authorization_pb2.ReverseRequest) -> None:
    require_id("reversal_id", req.reversal_id)
    require_id("authorization_id", req.authorization_id)
    if not 0 <= req.amount_minor <= AMOUNT_MINOR_MAX:
        raise InvalidArgument("amount_minor", f"must be between 0 (the whole hold) and {AMOUNT_MINOR_MAX} minor units")


def validate_clearing(req: clearing_pb2.ClearingRecord) -> None:
    """A clearing record, in field order (DESIGN §3 rules for ids, amounts, currency, merchant)."""
    require_id("clearing_id", req.clearing_id)
    if req.authorization_id:
        require_id("authorization_id", req.authorization_id)
    require_id("card_id", req.card_id)
    if not 0 < req.amount_minor <= AMOUNT_MINOR_MAX:
        raise InvalidArgument("amount_minor", f"must be between 1 and {AMOUNT_MINOR_MAX} minor units")
    require_currency("currency", req.currency)
    validate_merchant(req)
    if req.kind not in (clearing_pb2.CAPTURE, clearing_pb2.REFUND):
        raise InvalidArgument("kind", "must be CAPTURE or REFUND")
    if req.line < 0:
        raise InvalidArgument("line", "must not be negative")


def validate_issue_card(req: card_pb2.IssueCardRequest) -> None:
    require_id("idempotency_key", req.idempotency_key)
    require_id("customer_ref", req.customer_ref)
    require_id("account_ref", req.account_ref)
    require_currency("currency", req.currency)
    validate_spend_controls("spend_controls", req.spend_controls)


def validate_update_controls(req: card_pb2.UpdateSpendControlsRequest) -> None:
    require_id("card_id", req.card_id)
    validate_spend_controls("spend_controls", req.spend_controls)


def validate_card_action(req: card_pb2.CardActionRequest) -> None:
    require_id("card_id", req.card_id)
    check_text("reason", req.reason)


def validate_create_tenant(req: tenant_pb2.CreateTenantRequest) -> None:
    require_id("tenant_id", req.tenant_id)
    if not req.name:
        raise InvalidArgument("name", "is required")
    check_text("name", req.name)


def validate_create_api_key(req: tenant_pb2.CreateApiKeyRequest) -> None:
    require_id("tenant_id", req.tenant_id)
    if req.role not in _VALID_ROLES:
        raise InvalidArgument("role", "must be PROCESSOR, OPERATOR or ADMIN")
    check_text("label", req.label)
