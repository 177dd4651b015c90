import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from zentra.cards.v1 import types_pb2 as _types_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IssueCardRequest(_message.Message):
    __slots__ = ("idempotency_key", "customer_ref", "account_ref", "currency", "spend_controls")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_REF_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_REF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SPEND_CONTROLS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    customer_ref: str
    account_ref: str
    currency: str
    spend_controls: _types_pb2.SpendControls
    def __init__(self, idempotency_key: _Optional[str] = ..., customer_ref: _Optional[str] = ..., account_ref: _Optional[str] = ..., currency: _Optional[str] = ..., spend_controls: _Optional[_Union[_types_pb2.SpendControls, _Mapping]] = ...) -> None: ...

class GetCardRequest(_message.Message):
    __slots__ = ("card_id",)
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    def __init__(self, card_id: _Optional[str] = ...) -> None: ...

class UpdateSpendControlsRequest(_message.Message):
    __slots__ = ("card_id", "spend_controls")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    SPEND_CONTROLS_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    spend_controls: _types_pb2.SpendControls
    def __init__(self, card_id: _Optional[str] = ..., spend_controls: _Optional[_Union[_types_pb2.SpendControls, _Mapping]] = ...) -> None: ...

class CardActionRequest(_message.Message):
    __slots__ = ("card_id", "reason")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    reason: str
    def __init__(self, card_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Card(_message.Message):
    __slots__ = ("card_id", "tenant_id", "customer_ref", "account_ref", "currency", "state", "spend_controls", "policy_version", "created_at", "updated_at")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_REF_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_REF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEND_CONTROLS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    tenant_id: str
    customer_ref: str
    account_ref: str
    currency: str
    state: _types_pb2.CardState
    spend_controls: _types_pb2.SpendControls
    policy_version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, card_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., customer_ref: _Optional[str] = ..., account_ref: _Optional[str] = ..., currency: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.CardState, str]] = ..., spend_controls: _Optional[_Union[_types_pb2.SpendControls, _Mapping]] = ..., policy_version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
