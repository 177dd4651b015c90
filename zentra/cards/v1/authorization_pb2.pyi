import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from zentra.cards.v1 import ledger_pb2 as _ledger_pb2
from zentra.cards.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthorizeRequest(_message.Message):
    __slots__ = ("authorization_id", "card_id", "amount_minor", "currency", "merchant", "channel", "advice", "incremental_of")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_OF_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    card_id: str
    amount_minor: int
    currency: str
    merchant: _types_pb2.Merchant
    channel: _types_pb2.Channel
    advice: bool
    incremental_of: str
    def __init__(self, authorization_id: _Optional[str] = ..., card_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., merchant: _Optional[_Union[_types_pb2.Merchant, _Mapping]] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., advice: _Optional[bool] = ..., incremental_of: _Optional[str] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("authorization_id", "decision", "reason", "response_code", "replayed", "policy_version", "decided_at", "exceeded_limit")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    EXCEEDED_LIMIT_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    decision: _types_pb2.Decision
    reason: _types_pb2.Reason
    response_code: str
    replayed: bool
    policy_version: int
    decided_at: _timestamp_pb2.Timestamp
    exceeded_limit: _types_pb2.SpendLimit
    def __init__(self, authorization_id: _Optional[str] = ..., decision: _Optional[_Union[_types_pb2.Decision, str]] = ..., reason: _Optional[_Union[_types_pb2.Reason, str]] = ..., response_code: _Optional[str] = ..., replayed: _Optional[bool] = ..., policy_version: _Optional[int] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exceeded_limit: _Optional[_Union[_types_pb2.SpendLimit, _Mapping]] = ...) -> None: ...

class ReverseRequest(_message.Message):
    __slots__ = ("reversal_id", "authorization_id", "amount_minor")
    REVERSAL_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    reversal_id: str
    authorization_id: str
    amount_minor: int
    def __init__(self, reversal_id: _Optional[str] = ..., authorization_id: _Optional[str] = ..., amount_minor: _Optional[int] = ...) -> None: ...

class ReverseResponse(_message.Message):
    __slots__ = ("reversal_id", "authorization_id", "released_minor", "remaining_hold_minor", "replayed")
    REVERSAL_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASED_MINOR_FIELD_NUMBER: _ClassVar[int]
    REMAINING_HOLD_MINOR_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    reversal_id: str
    authorization_id: str
    released_minor: int
    remaining_hold_minor: int
    replayed: bool
    def __init__(self, reversal_id: _Optional[str] = ..., authorization_id: _Optional[str] = ..., released_minor: _Optional[int] = ..., remaining_hold_minor: _Optional[int] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetAuthorizationRequest(_message.Message):
    __slots__ = ("authorization_id",)
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    def __init__(self, authorization_id: _Optional[str] = ...) -> None: ...

class RuleResult(_message.Message):
    __slots__ = ("rule", "passed", "detail")
    RULE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    rule: str
    passed: bool
    detail: str
    def __init__(self, rule: _Optional[str] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class Authorization(_message.Message):
    __slots__ = ("authorization_id", "card_id", "tenant_id", "amount_minor", "currency", "merchant", "channel", "decision", "reason", "response_code", "policy_version", "decided_at", "rules", "ledger_entries", "posted", "status", "exceeded_limit", "recorded_at", "actor_key_id", "account_ref", "remaining_hold_minor", "incremental_of")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    LEDGER_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    POSTED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXCEEDED_LIMIT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_REF_FIELD_NUMBER: _ClassVar[int]
    REMAINING_HOLD_MINOR_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_OF_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    card_id: str
    tenant_id: str
    amount_minor: int
    currency: str
    merchant: _types_pb2.Merchant
    channel: _types_pb2.Channel
    decision: _types_pb2.Decision
    reason: _types_pb2.Reason
    response_code: str
    policy_version: int
    decided_at: _timestamp_pb2.Timestamp
    rules: _containers.RepeatedCompositeFieldContainer[RuleResult]
    ledger_entries: _containers.RepeatedCompositeFieldContainer[_ledger_pb2.LedgerEntry]
    posted: bool
    status: str
    exceeded_limit: _types_pb2.SpendLimit
    recorded_at: _timestamp_pb2.Timestamp
    actor_key_id: str
    account_ref: str
    remaining_hold_minor: int
    incremental_of: str
    def __init__(self, authorization_id: _Optional[str] = ..., card_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., merchant: _Optional[_Union[_types_pb2.Merchant, _Mapping]] = ..., channel: _Optional[_Union[_types_pb2.Channel, str]] = ..., decision: _Optional[_Union[_types_pb2.Decision, str]] = ..., reason: _Optional[_Union[_types_pb2.Reason, str]] = ..., response_code: _Optional[str] = ..., policy_version: _Optional[int] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rules: _Optional[_Iterable[_Union[RuleResult, _Mapping]]] = ..., ledger_entries: _Optional[_Iterable[_Union[_ledger_pb2.LedgerEntry, _Mapping]]] = ..., posted: _Optional[bool] = ..., status: _Optional[str] = ..., exceeded_limit: _Optional[_Union[_types_pb2.SpendLimit, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor_key_id: _Optional[str] = ..., account_ref: _Optional[str] = ..., remaining_hold_minor: _Optional[int] = ..., incremental_of: _Optional[str] = ...) -> None: ...
