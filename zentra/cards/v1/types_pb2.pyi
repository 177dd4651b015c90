from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    PROCESSOR: _ClassVar[Role]
    OPERATOR: _ClassVar[Role]
    ADMIN: _ClassVar[Role]

class CardState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_STATE_UNSPECIFIED: _ClassVar[CardState]
    ACTIVE: _ClassVar[CardState]
    FROZEN: _ClassVar[CardState]
    CLOSED: _ClassVar[CardState]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CARD_PRESENT: _ClassVar[Channel]
    CONTACTLESS: _ClassVar[Channel]
    ECOMMERCE: _ClassVar[Channel]
    ATM: _ClassVar[Channel]
    MAIL_PHONE: _ClassVar[Channel]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    APPROVE: _ClassVar[Decision]
    DECLINE: _ClassVar[Decision]
    REVIEW: _ClassVar[Decision]

class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[Reason]
    APPROVED: _ClassVar[Reason]
    CARD_NOT_FOUND: _ClassVar[Reason]
    CARD_FROZEN: _ClassVar[Reason]
    CARD_CLOSED: _ClassVar[Reason]
    CURRENCY_MISMATCH: _ClassVar[Reason]
    CHANNEL_NOT_ALLOWED: _ClassVar[Reason]
    MCC_NOT_ALLOWED: _ClassVar[Reason]
    COUNTRY_NOT_ALLOWED: _ClassVar[Reason]
    SPEND_LIMIT_EXCEEDED: _ClassVar[Reason]
    COUNT_LIMIT_EXCEEDED: _ClassVar[Reason]
    REVIEW_REQUIRED: _ClassVar[Reason]
    SYSTEM_UNAVAILABLE: _ClassVar[Reason]

class Interval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERVAL_UNSPECIFIED: _ClassVar[Interval]
    PER_AUTHORIZATION: _ClassVar[Interval]
    DAILY: _ClassVar[Interval]
    WEEKLY: _ClassVar[Interval]
    MONTHLY: _ClassVar[Interval]
    YEARLY: _ClassVar[Interval]
    LIFETIME: _ClassVar[Interval]
ROLE_UNSPECIFIED: Role
PROCESSOR: Role
OPERATOR: Role
ADMIN: Role
CARD_STATE_UNSPECIFIED: CardState
ACTIVE: CardState
FROZEN: CardState
CLOSED: CardState
CHANNEL_UNSPECIFIED: Channel
CARD_PRESENT: Channel
CONTACTLESS: Channel
ECOMMERCE: Channel
ATM: Channel
MAIL_PHONE: Channel
DECISION_UNSPECIFIED: Decision
APPROVE: Decision
DECLINE: Decision
REVIEW: Decision
REASON_UNSPECIFIED: Reason
APPROVED: Reason
CARD_NOT_FOUND: Reason
CARD_FROZEN: Reason
CARD_CLOSED: Reason
CURRENCY_MISMATCH: Reason
CHANNEL_NOT_ALLOWED: Reason
MCC_NOT_ALLOWED: Reason
COUNTRY_NOT_ALLOWED: Reason
SPEND_LIMIT_EXCEEDED: Reason
COUNT_LIMIT_EXCEEDED: Reason
REVIEW_REQUIRED: Reason
SYSTEM_UNAVAILABLE: Reason
INTERVAL_UNSPECIFIED: Interval
PER_AUTHORIZATION: Interval
DAILY: Interval
WEEKLY: Interval
MONTHLY: Interval
YEARLY: Interval
LIFETIME: Interval

class SpendLimit(_message.Message):
    __slots__ = ("interval", "amount_minor", "max_count", "mccs")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    MCCS_FIELD_NUMBER: _ClassVar[int]
    interval: Interval
    amount_minor: int
    max_count: int
    mccs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, interval: _Optional[_Union[Interval, str]] = ..., amount_minor: _Optional[int] = ..., max_count: _Optional[int] = ..., mccs: _Optional[_Iterable[str]] = ...) -> None: ...

class SpendControls(_message.Message):
    __slots__ = ("spending_limits", "allowed_mccs", "blocked_mccs", "allowed_channels", "allowed_countries", "blocked_countries", "review_threshold_minor")
    SPENDING_LIMITS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_MCCS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_MCCS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    REVIEW_THRESHOLD_MINOR_FIELD_NUMBER: _ClassVar[int]
    spending_limits: _containers.RepeatedCompositeFieldContainer[SpendLimit]
    allowed_mccs: _containers.RepeatedScalarFieldContainer[str]
    blocked_mccs: _containers.RepeatedScalarFieldContainer[str]
    allowed_channels: _containers.RepeatedScalarFieldContainer[Channel]
    allowed_countries: _containers.RepeatedScalarFieldContainer[str]
    blocked_countries: _containers.RepeatedScalarFieldContainer[str]
    review_threshold_minor: int
    def __init__(self, spending_limits: _Optional[_Iterable[_Union[SpendLimit, _Mapping]]] = ..., allowed_mccs: _Optional[_Iterable[str]] = ..., blocked_mccs: _Optional[_Iterable[str]] = ..., allowed_channels: _Optional[_Iterable[_Union[Channel, str]]] = ..., allowed_countries: _Optional[_Iterable[str]] = ..., blocked_countries: _Optional[_Iterable[str]] = ..., review_threshold_minor: _Optional[int] = ...) -> None: ...

class Merchant(_message.Message):
    __slots__ = ("id", "name", "mcc", "country", "city")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    mcc: str
    country: str
    city: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., mcc: _Optional[str] = ..., country: _Optional[str] = ..., city: _Optional[str] = ...) -> None: ...
