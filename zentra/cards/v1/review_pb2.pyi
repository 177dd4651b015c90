import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_STATUS_UNSPECIFIED: _ClassVar[ReviewStatus]
    REVIEW_STATUS_OPEN: _ClassVar[ReviewStatus]
    REVIEW_STATUS_RESOLVED: _ClassVar[ReviewStatus]

class ReviewKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_KIND_UNSPECIFIED: _ClassVar[ReviewKind]
    REVIEW_KIND_AUTHORIZATION: _ClassVar[ReviewKind]
    REVIEW_KIND_CLEARING_MISMATCH: _ClassVar[ReviewKind]
    REVIEW_KIND_FORCE_POST: _ClassVar[ReviewKind]
    REVIEW_KIND_LATE_CAPTURE: _ClassVar[ReviewKind]

class Resolution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_UNSPECIFIED: _ClassVar[Resolution]
    RESOLUTION_APPROVED: _ClassVar[Resolution]
    RESOLUTION_REJECTED: _ClassVar[Resolution]
    RESOLUTION_ACKNOWLEDGED: _ClassVar[Resolution]
REVIEW_STATUS_UNSPECIFIED: ReviewStatus
REVIEW_STATUS_OPEN: ReviewStatus
REVIEW_STATUS_RESOLVED: ReviewStatus
REVIEW_KIND_UNSPECIFIED: ReviewKind
REVIEW_KIND_AUTHORIZATION: ReviewKind
REVIEW_KIND_CLEARING_MISMATCH: ReviewKind
REVIEW_KIND_FORCE_POST: ReviewKind
REVIEW_KIND_LATE_CAPTURE: ReviewKind
RESOLUTION_UNSPECIFIED: Resolution
RESOLUTION_APPROVED: Resolution
RESOLUTION_REJECTED: Resolution
RESOLUTION_ACKNOWLEDGED: Resolution

class ListReviewsRequest(_message.Message):
    __slots__ = ("status", "kind", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: ReviewStatus
    kind: ReviewKind
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[ReviewStatus, str]] = ..., kind: _Optional[_Union[ReviewKind, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReviewsResponse(_message.Message):
    __slots__ = ("reviews", "next_page_token")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[Review]
    next_page_token: str
    def __init__(self, reviews: _Optional[_Iterable[_Union[Review, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResolveReviewRequest(_message.Message):
    __slots__ = ("review_id", "resolution", "note")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    resolution: Resolution
    note: str
    def __init__(self, review_id: _Optional[str] = ..., resolution: _Optional[_Union[Resolution, str]] = ..., note: _Optional[str] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("review_id", "kind", "status", "authorization_id", "clearing_id", "card_id", "amount_minor", "currency", "delta_minor", "detail", "owner", "opened_at", "resolution", "note", "resolved_by", "resolved_at", "ledger_transaction_ids")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLEARING_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DELTA_MINOR_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    LEDGER_TRANSACTION_IDS_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    kind: ReviewKind
    status: ReviewStatus
    authorization_id: str
    clearing_id: str
    card_id: str
    amount_minor: int
    currency: str
    delta_minor: int
    detail: str
    owner: str
    opened_at: _timestamp_pb2.Timestamp
    resolution: Resolution
    note: str
    resolved_by: str
    resolved_at: _timestamp_pb2.Timestamp
    ledger_transaction_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, review_id: _Optional[str] = ..., kind: _Optional[_Union[ReviewKind, str]] = ..., status: _Optional[_Union[ReviewStatus, str]] = ..., authorization_id: _Optional[str] = ..., clearing_id: _Optional[str] = ..., card_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., delta_minor: _Optional[int] = ..., detail: _Optional[str] = ..., owner: _Optional[str] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolution: _Optional[_Union[Resolution, str]] = ..., note: _Optional[str] = ..., resolved_by: _Optional[str] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ledger_transaction_ids: _Optional[_Iterable[str]] = ...) -> None: ...
