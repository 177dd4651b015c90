"""How `authzctl` shows an answer: short readable lines by default, the message as JSON for
machines. Amounts stay in minor units, as on the wire; nothing here prints a secret except
an ApiKey's, which exists only in the CreateApiKey answer."""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import Message

from zentra.cards.v1 import authorization_pb2, card_pb2, clearing_pb2, tenant_pb2
from zentra.cards.v1 import types_pb2 as t


def as_json(message: Message) -> str:
    """The message in proto JSON form with the .proto field names (e.g. `authorization_id`)."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


def as_text(message: Message) -> str:
    """Human-readable lines for every response type authzctl receives."""
    if isinstance(message, authorization_pb2.AuthorizeResponse):
        return authorize_text(message)
    if isinstance(message, card_pb2.Card):
        return card_text(message)
    if isinstance(message, tenant_pb2.ApiKey):
        return api_key_text(message)
    if isinstance(message, tenant_pb2.Tenant):
        return tenant_text(message)
    if isinstance(message, clearing_pb2.ClearingSummary):
        return clearing_summary_text(message)
    raise AssertionError(f"no text form for {type(message).__name__}")


def authorize_text(response: authorization_pb2.AuthorizeResponse) -> str:
    """`APPROVE  APPROVED  code=00  authorization_id=…  policy_version=1`, then `(replayed)` when
    it is the stored answer to an earlier identical request, and the failed limit if any."""
    line = (
        f"{t.Decision.Name(response.decision)}  {t.Reason.Name(response.reason)}  "
        f"code={response.response_code}  authorization_id={response.authorization_id}  "
        f"policy_version={response.policy_version}"
    )
    if response.replayed:
        line += "  (replayed)"
    lines = [line]
    if response.HasField("exceeded_limit"):
        lines.append(f"exceeded_limit: {spend_limit_summary(response.exceeded_limit)}")
    return "\n".join(lines)


def card_text(card: card_pb2.Card) -> str:
    """Id, state, currency and version on the first line; refs; then the controls in one line."""
    return "\n".join(
        (
            f"card_id={card.card_id}  state={t.CardState.Name(card.state)}  currency={card.currency}  "
            f"policy_version={card.policy_version}",
            f"tenant_id={card.tenant_id}  customer_ref={card.customer_ref}  account_ref={card.account_ref}",
            f"controls: {spend_controls_summary(card.spend_controls)}",
        )
    )


def spend_controls_summary(controls: t.SpendControls) -> str:
    """A compact one-line summary, e.g. `DAILY amount<=500000; blocked_mccs=7995; review>=150000`,
    or `none` when the card has no controls."""
    parts = [spend_limit_summary(limit) for limit in controls.spending_limits]
    for name in ("allowed_mccs", "blocked_mccs", "allowed_countries", "blocked_countries"):
        values = getattr(controls, name)
        if values:
            parts.append(f"{name}={','.join(values)}")
    if controls.allowed_channels:
        channels = ",".join(t.Channel.Name(channel) for channel in controls.allowed_channels)
        parts.append(f"allowed_channels={channels}")
    if controls.review_threshold_minor:
        parts.append(f"review>={controls.review_threshold_minor}")
    return "; ".join(parts) or "none"


def spend_limit_summary(limit: t.SpendLimit) -> str:
    """E.g. `DAILY amount<=500000 count<=20 mccs=5812,5814` (zero caps are left out)."""
    parts = [t.Interval.Name(limit.interval)]
    if limit.amount_minor:
        parts.append(f"amount<={limit.amount_minor}")
    if limit.max_count:
        parts.append(f"count<={limit.max_count}")
    if limit.mccs:
        parts.append(f"mccs={','.join(limit.mccs)}")
    return " ".join(parts)


def api_key_text(key: tenant_pb2.ApiKey) -> str:
    """The key's identity, then its secret on a line of its own: this is the only time it is shown."""
    return "\n".join(
        (
            f"key_id={key.key_id}  tenant_id={key.tenant_id}  role={t.Role.Name(key.role)}  label={key.label}",
            f"secret={key.secret}",
            "(the secret is shown only now; store it safely)",
        )
    )


def tenant_text(tenant: tenant_pb2.Tenant) -> str:
    return f"tenant_id={tenant.tenant_id}  name={tenant.name}  created_at={tenant.created_at.ToJsonString()}"


# The summary's counts in the order an operator reads them: what came in, how it was posted,
# what was not posted again or at all. Under review overlaps the posted outcomes.
SUMMARY_LINES = (
    ("records", "records"),
    ("matched", "matched"),
    ("mismatched", "mismatched"),
    ("force-posted", "force_posted"),
    ("late captures", "late_captures"),
    ("refunds", "refunds"),
    ("duplicates", "duplicates"),
    ("under review", "under_review"),
    ("rejected", "rejected"),
)


def clearing_summary_text(summary: clearing_pb2.ClearingSummary) -> str:
    """One `label  count` line per count (records, matched, ..., rejected), then each rejected
    row as `line 17  clr-1  amount_minor: 'x' is not an integer` in line order (`-` for a row
    without a clearing_id), then how many were not listed if the list was cut."""
    width = max(len(label) for label, _ in SUMMARY_LINES)
    digits = max(len(str(getattr(summary, field))) for _, field in SUMMARY_LINES)
    lines = [f"{label:<{width}}  {getattr(summary, field):>{digits}}" for label, field in SUMMARY_LINES]
    if summary.rejections:
        lines.append("rejected rows:")
        for rejection in summary.rejections:
            lines.append(f"line {rejection.line}  {rejection.clearing_id or '-'}  {rejection.reason}")
    unlisted = summary.rejected - len(summary.rejections)
    if unlisted > 0:
        lines.append(f"({unlisted} more rejected rows not listed)")
    return "\n".join(lines)


def clearing_summary_json(summary: clearing_pb2.ClearingSummary) -> str:
    """The summary in proto JSON (int64 counts as strings, as proto JSON has them), with every
    count present, zeros included, so a script can read any field without a default."""
    return json_format.MessageToJson(
        summary, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
