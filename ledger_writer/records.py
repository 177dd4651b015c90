"""Decision records as the ledger writer reads them from the shard streams.

authorize.lua and tombstone.lua append two kinds of entry: `decision` (every answer, of any
outcome) and `void` (a fail-closed answer replaced its own attempt's decision). Parsing is
strict: an entry that does not parse is a poison message for the dead-letter stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DECISION_RECORD_SCHEMA = 1
KIND_DECISION = "decision"
KIND_VOID = "void"
KIND_REVERSAL = "reversal"
KIND_CLEARING = "clearing"
KIND_EXPIRY = "expiry"
EXPIRY_RECORD_SCHEMA = 1
REVERSAL_RECORD_SCHEMA = 1
CLEARING_RECORD_SCHEMA = 1


class RecordError(ValueError):
    """The entry is not a decision record we can post; it goes to the dead-letter stream."""


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    name: str
    mcc: str
    country: str
    city: str


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One stream entry: the request's facts plus the outcome the script recorded."""

    kind: str  # KIND_DECISION or KIND_VOID
    tenant_id: str
    authorization_id: str
    card_id: str
    amount_minor: int
    currency: str
    merchant: Merchant
    channel: int
    actor_key_id: str
    shard: int
    decision: int
    reason: int
    policy_version: int
    decided_at: datetime
    exceeded_limit: str
    attempt: str
    reserved_buckets: str
    fingerprint: bytes
    advice: bool = False  # the network approved it in stand-in (never declined, always reserved)
    incremental_of: str = ""  # an increment: the original authorization whose hold it joined
    hold_expires_at: datetime | None = None  # approvals: when the sweeper releases what is left
    override_review_id: str = ""  # approved past the review threshold by this resolved review


def _text(fields: dict[bytes, bytes], name: str) -> str:
    try:
        return fields[name.encode()].decode()
    except KeyError:
        raise RecordError(f"field {name!r} missing") from None
    except UnicodeDecodeError:
        raise RecordError(f"field {name!r} is not UTF-8") from None


def _payload(fields: dict[bytes, bytes], schema: int) -> dict[str, Any]:
    """The entry's JSON payload, of the schema version this writer reads."""
    try:
        payload = json.loads(_text(fields, "p"))
    except json.JSONDecodeError as error:
        raise RecordError(f"payload is not JSON: {error}") from None
    if not isinstance(payload, dict) or payload.get("schema") != schema:
        raise RecordError(f"payload schema is not {schema}")
    return payload


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RecordError(f"field {name!r} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise RecordError(f"field {name!r} is not an integer") from None


@dataclass(frozen=True, slots=True)
class ReversalRecord:
    """A release of (part of) an approval's hold, as lua/reverse.lua recorded it."""

    tenant_id: str
    reversal_id: str
    authorization_id: str
    card_id: str
    currency: str
    requested_minor: int  # 0 = the whole remaining hold
    released_minor: int
    remaining_hold_minor: int
    actor_key_id: str
    reversed_at: datetime


@dataclass(frozen=True, slots=True)
class ClearingEntry:
    """A clearing record as lua/clear.lua matched and recorded it."""

    tenant_id: str
    clearing_id: str
    authorization_id: str  # "" when the network sent none
    card_id: str
    amount_minor: int
    currency: str
    merchant: Merchant
    kind: int  # clearing_pb2.ClearingKind
    is_final: bool
    mode: str  # auth, force, late, refund
    outcome: int  # clearing_pb2.ClearingOutcome
    from_hold_minor: int
    from_balance_minor: int
    released_minor: int
    delta_minor: int
    review: bool
    remaining_hold_minor: int | None  # None unless matched against a live hold
    actor_key_id: str
    cleared_at: datetime
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class ExpiryRecord:
    """What the sweeper released of an expired hold (lua/expire.lua)."""

    tenant_id: str
    authorization_id: str
    card_id: str
    released_minor: int
    expired_at: datetime


Record = DecisionRecord | ReversalRecord | ClearingEntry | ExpiryRecord


def parse_expiry(fields: dict[bytes, bytes]) -> ExpiryRecord:
    payload = _payload(fields, EXPIRY_RECORD_SCHEMA)
    try:
        record = ExpiryRecord(
            tenant_id=str(payload["tenant_id"]),
            authorization_id=str(payload["authorization_id"]),
            card_id=str(payload["card_id"]),
            released_minor=_int(_text(fields, "amt"), "amt"),
            expired_at=datetime.fromtimestamp(_int(_text(fields, "t"), "t") / 1000, tz=UTC),
        )
    except (KeyError, TypeError) as error:
        raise RecordError(f"expiry payload lacks {error}") from None
    if record.released_minor <= 0:
        raise RecordError(f"expiry of {record.authorization_id}: released {record.released_minor} is not positive")
    return record


def parse_clearing(fields: dict[bytes, bytes]) -> ClearingEntry:
    payload = _payload(fields, CLEARING_RECORD_SCHEMA)
    try:
        merchant = payload["merchant"]
        hold = _text(fields, "hold")
        entry = ClearingEntry(
            tenant_id=str(payload["tenant_id"]),
            clearing_id=str(payload["clearing_id"]),
            authorization_id=str(payload["authorization_id"]),
            card_id=str(payload["card_id"]),
            amount_minor=_int(payload["amount_minor"], "amount_minor"),
            currency=str(payload["currency"]),
            merchant=Merchant(
                str(merchant["id"]),
                str(merchant["name"]),
                str(merchant["mcc"]),
                str(merchant["country"]),
                str(merchant["city"]),
            ),
            kind=_int(payload["kind"], "kind"),
            is_final=bool(payload["is_final"]),
            mode=str(payload["mode"]),
            outcome=_int(_text(fields, "o"), "o"),
            from_hold_minor=_int(_text(fields, "fh"), "fh"),
            from_balance_minor=_int(_text(fields, "fb"), "fb"),
            released_minor=_int(_text(fields, "rl"), "rl"),
            delta_minor=_int(_text(fields, "dt"), "dt"),
            review=_text(fields, "rv") == "1",
            remaining_hold_minor=_int(hold, "hold") if hold else None,
            actor_key_id=str(payload["actor_key_id"]),
            cleared_at=datetime.fromtimestamp(_int(_text(fields, "t"), "t") / 1000, tz=UTC),
            fingerprint=fields.get(b"f", b""),
        )
    except (KeyError, TypeError) as error:
        raise RecordError(f"clearing payload lacks {error}") from None
    if entry.from_hold_minor + entry.from_balance_minor != entry.amount_minor and entry.kind == 1:
        raise RecordError(f"clearing {entry.clearing_id}: settled parts do not add up to the amount")
    return entry


def parse_reversal(fields: dict[bytes, bytes]) -> ReversalRecord:
    payload = _payload(fields, REVERSAL_RECORD_SCHEMA)
    try:
        record = ReversalRecord(
            tenant_id=str(payload["tenant_id"]),
            reversal_id=str(payload["reversal_id"]),
            authorization_id=str(payload["authorization_id"]),
            card_id=str(payload["card_id"]),
            currency=str(payload["currency"]),
            requested_minor=_int(payload["requested_minor"], "requested_minor"),
            released_minor=_int(_text(fields, "amt"), "amt"),
            remaining_hold_minor=_int(_text(fields, "rem"), "rem"),
            actor_key_id=str(payload["actor_key_id"]),
            reversed_at=datetime.fromtimestamp(_int(_text(fields, "t"), "t") / 1000, tz=UTC),
        )
    except (KeyError, TypeError) as error:
        raise RecordError(f"reversal payload lacks {error}") from None
    if record.released_minor <= 0 or record.remaining_hold_minor < 0:
        raise RecordError(f"reversal {record.reversal_id}: released {record.released_minor} is not positive")
    return record


def parse_entry(fields: dict[bytes, bytes]) -> Record:
    """The record in a stream entry's fields; raises RecordError if malformed."""
    kind = _text(fields, "k")
    if kind == KIND_REVERSAL:
        return parse_reversal(fields)
    if kind == KIND_CLEARING:
        return parse_clearing(fields)
    if kind == KIND_EXPIRY:
        return parse_expiry(fields)
    if kind not in (KIND_DECISION, KIND_VOID):
        raise RecordError(f"unknown entry kind {kind!r}")
    payload = _payload(fields, DECISION_RECORD_SCHEMA)
    try:
        merchant = payload["merchant"]
        record = DecisionRecord(
            kind=kind,
            tenant_id=str(payload["tenant_id"]),
            authorization_id=str(payload["authorization_id"]),
            card_id=str(payload["card_id"]),
            amount_minor=_int(payload["amount_minor"], "amount_minor"),
            currency=str(payload["currency"]),
            merchant=Merchant(
                str(merchant["id"]),
                str(merchant["name"]),
                str(merchant["mcc"]),
                str(merchant["country"]),
                str(merchant["city"]),
            ),
            channel=_int(payload["channel"], "channel"),
            actor_key_id=str(payload["actor_key_id"]),
            shard=_int(payload["shard"], "shard"),
            decision=_int(_text(fields, "d"), "d"),
            reason=_int(_text(fields, "r"), "r"),
            policy_version=_int(_text(fields, "v"), "v"),
            decided_at=datetime.fromtimestamp(_int(_text(fields, "t"), "t") / 1000, tz=UTC),
            exceeded_limit=_text(fields, "x"),
            attempt=_text(fields, "n"),
            reserved_buckets=_text(fields, "b"),
            fingerprint=fields.get(b"f", b""),
            hold_expires_at=(
                datetime.fromtimestamp(_int(fields[b"e"].decode(), "e") / 1000, tz=UTC) if fields.get(b"e") else None
            ),
            override_review_id=fields.get(b"ov", b"").decode(),
            advice=payload.get("advice") is True,
            incremental_of=fields.get(b"inc", b"").decode(),
        )
    except (KeyError, TypeError) as error:
        raise RecordError(f"payload lacks {error}") from None
    if record.decision not in (1, 2, 3):
        raise RecordError(f"decision {record.decision} is not APPROVE, DECLINE or REVIEW")
    if not 0 < record.amount_minor <= 10**13:
        raise RecordError(f"amount_minor {record.amount_minor} is out of range")
    if not record.tenant_id or not record.authorization_id:
        raise RecordError("tenant_id and authorization_id are required")
    return record
