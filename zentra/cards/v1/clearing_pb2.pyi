from zentra.cards.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClearingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLEARING_KIND_UNSPECIFIED: _ClassVar[ClearingKind]
    CAPTURE: _ClassVar[ClearingKind]
    REFUND: _ClassVar[ClearingKind]

class ClearingOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLEARING_OUTCOME_UNSPECIFIED: _ClassVar[ClearingOutcome]
    MATCHED: _ClassVar[ClearingOutcome]
    MISMATCHED: _ClassVar[ClearingOutcome]
    FORCE_POSTED: _ClassVar[ClearingOutcome]
    LATE_CAPTURE: _ClassVar[ClearingOutcome]
    REFUNDED: _ClassVar[ClearingOutcome]
CLEARING_KIND_UNSPECIFIED: ClearingKind
CAPTURE: ClearingKind
REFUND: ClearingKind
CLEARING_OUTCOME_UNSPECIFIED: ClearingOutcome
MATCHED: ClearingOutcome
MISMATCHED: ClearingOutcome
FORCE_POSTED: ClearingOutcome
LATE_CAPTURE: ClearingOutcome
REFUNDED: ClearingOutcome

class ClearingRecord(_message.Message):
    __slots__ = ("clearing_id", "authorization_id", "card_id", "amount_minor", "currency", "merchant", "kind", "is_final", "line")
    CLEARING_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    clearing_id: str
    authorization_id: str
    card_id: str
    amount_minor: int
    currency: str
    merchant: _types_pb2.Merchant
    kind: ClearingKind
    is_final: bool
    line: int
    def __init__(self, clearing_id: _Optional[str] = ..., authorization_id: _Optional[str] = ..., card_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., merchant: _Optional[_Union[_types_pb2.Merchant, _Mapping]] = ..., kind: _Optional[_Union[ClearingKind, str]] = ..., is_final: _Optional[bool] = ..., line: _Optional[int] = ...) -> None: ...

class ClearingResult(_message.Message):
    __slots__ = ("clearing_id", "authorization_id", "outcome", "from_hold_minor", "from_balance_minor", "released_minor", "delta_minor", "review_id", "replayed")
    CLEARING_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FROM_HOLD_MINOR_FIELD_NUMBER: _ClassVar[int]
    FROM_BALANCE_MINOR_FIELD_NUMBER: _ClassVar[int]
    RELEASED_MINOR_FIELD_NUMBER: _ClassVar[int]
    DELTA_MINOR_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    clearing_id: str
    authorization_id: str
    outcome: ClearingOutcome
    from_hold_minor: int
    from_balance_minor: int
    released_minor: int
    delta_minor: int
    review_id: str
    replayed: bool
    def __init__(self, clearing_id: _Optional[str] = ..., authorization_id: _Optional[str] = ..., outcome: _Optional[_Union[ClearingOutcome, str]] = ..., from_hold_minor: _Optional[int] = ..., from_balance_minor: _Optional[int] = ..., released_minor: _Optional[int] = ..., delta_minor: _Optional[int] = ..., review_id: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ClearingRejection(_message.Message):
    __slots__ = ("line", "clearing_id", "reason")
    LINE_FIELD_NUMBER: _ClassVar[int]
    CLEARING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    line: int
    clearing_id: str
    reason: str
    def __init__(self, line: _Optional[int] = ..., clearing_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ClearingSummary(_message.Message):
    __slots__ = ("records", "matched", "mismatched", "force_posted", "late_captures", "refunds", "duplicates", "rejected", "rejections", "under_review")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    MISMATCHED_FIELD_NUMBER: _ClassVar[int]
    FORCE_POSTED_FIELD_NUMBER: _ClassVar[int]
    LATE_CAPTURES_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    UNDER_REVIEW_FIELD_NUMBER: _ClassVar[int]
    records: int
    matched: int
    mismatched: int
    force_posted: int
    late_captures: int
    refunds: int
    duplicates: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[ClearingRejection]
    under_review: int
    def __init__(self, records: _Optional[int] = ..., matched: _Optional[int] = ..., mismatched: _Optional[int] = ..., force_posted: _Optional[int] = ..., late_captures: _Optional[int] = ..., refunds: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[ClearingRejection, _Mapping]]] = ..., under_review: _Optional[int] = ...) -> None: ...
