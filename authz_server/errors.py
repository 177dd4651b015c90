"""Typed domain errors. Expected outcomes (declines) are values, not exceptions; these are
the refusals of a call. They are converted to gRPC status codes in one place
(services/rpc.py), with messages that name the field and the rule."""

from __future__ import annotations

import grpc


class DomainError(Exception):
    """Base of every error a caller may see; `code` is its gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(DomainError):
    """A request field breaks a validation rule. Nothing was recorded or reserved."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(DomainError):
    """A dependency (Redis, Postgres) did not answer in time; the call may be retried."""

    code = grpc.StatusCode.UNAVAILABLE
