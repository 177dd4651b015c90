from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DEBIT: _ClassVar[Direction]
    CREDIT: _ClassVar[Direction]
DIRECTION_UNSPECIFIED: Direction
DEBIT: Direction
CREDIT: Direction

class LedgerEntry(_message.Message):
    __slots__ = ("transaction_id", "account", "account_ref", "direction", "amount_minor", "currency")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_REF_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    account: str
    account_ref: str
    direction: Direction
    amount_minor: int
    currency: str
    def __init__(self, transaction_id: _Optional[str] = ..., account: _Optional[str] = ..., account_ref: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class GetAccountBalancesRequest(_message.Message):
    __slots__ = ("account_ref",)
    ACCOUNT_REF_FIELD_NUMBER: _ClassVar[int]
    account_ref: str
    def __init__(self, account_ref: _Optional[str] = ...) -> None: ...

class AccountBalances(_message.Message):
    __slots__ = ("account_ref", "balances")
    ACCOUNT_REF_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    account_ref: str
    balances: _containers.RepeatedCompositeFieldContainer[CurrencyBalances]
    def __init__(self, account_ref: _Optional[str] = ..., balances: _Optional[_Iterable[_Union[CurrencyBalances, _Mapping]]] = ...) -> None: ...

class CurrencyBalances(_message.Message):
    __slots__ = ("currency", "customer_balance_minor", "reserved_balance_minor", "settlement_minor")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_BALANCE_MINOR_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BALANCE_MINOR_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_MINOR_FIELD_NUMBER: _ClassVar[int]
    currency: str
    customer_balance_minor: int
    reserved_balance_minor: int
    settlement_minor: int
    def __init__(self, currency: _Optional[str] = ..., customer_balance_minor: _Optional[int] = ..., reserved_balance_minor: _Optional[int] = ..., settlement_minor: _Optional[int] = ...) -> None: ...
