"""ReviewService: the review queue for operators. Reviews are opened by the ledger writer
(REVIEW decisions, clearing mismatches beyond tolerance, force posts, late captures); here they
are listed and resolved.

Resolving an AUTHORIZATION review as APPROVED also writes a one-time override to Redis, after
the Postgres commit: a hash on the card's shard that authorize.lua consumes once, letting the
same card, merchant and amount (or less) past the review threshold only. If that write fails
the call answers UNAVAILABLE, and retrying it (APPROVED again) writes the override again."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import redis.asyncio as aioredis
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError

from authz_server import validation
from authz_server.auth import Principal
from authz_server.clock import Clock
from authz_server.errors import FailedPrecondition, InvalidArgument, Unavailable
from authz_server.redis_state.keys import Keyspace
from authz_server.services.rpc import RpcContext, rpc
from authz_server.store import reviews as store
from authz_server.store.reviews import Position, ReviewedPurchase, ReviewRow
from zentra.cards.v1 import review_pb2, review_pb2_grpc

_SVC = "/zentra.cards.v1.ReviewService/"

PAGE_SIZE_DEFAULT = 50  # reviews per page when the caller does not say
PAGE_SIZE_MAX = 500  # reviews per page at most: one page is one bounded Postgres query
PAGE_TOKEN_LENGTH_MAX = 512  # characters; our tokens are far shorter, anything longer is not ours
# How long an approved review lets the same purchase through, counted from the resolution:
# long enough for the cardholder to retry at the till, short enough that it cannot linger.
OVERRIDE_TTL_S = 1800
# Every protobuf field on the wire costs a tag and a length prefix besides its bytes.
_FIELD_OVERHEAD_BYTES = 8
_PAGE_TOKEN_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_KIND_OF_NAME = {
    "AUTHORIZATION": review_pb2.REVIEW_KIND_AUTHORIZATION,
    "CLEARING_MISMATCH": review_pb2.REVIEW_KIND_CLEARING_MISMATCH,
    "FORCE_POST": review_pb2.REVIEW_KIND_FORCE_POST,
    "LATE_CAPTURE": review_pb2.REVIEW_KIND_LATE_CAPTURE,
}
_NAME_OF_KIND: dict[int, str] = {number: name for name, number in _KIND_OF_NAME.items()}
_STATUS_OF_NAME = {"OPEN": review_pb2.REVIEW_STATUS_OPEN, "RESOLVED": review_pb2.REVIEW_STATUS_RESOLVED}
_NAME_OF_STATUS: dict[int, str] = {number: name for name, number in _STATUS_OF_NAME.items()}
_RESOLUTION_OF_NAME = {
    "APPROVED": review_pb2.RESOLUTION_APPROVED,
    "REJECTED": review_pb2.RESOLUTION_REJECTED,
    "ACKNOWLEDGED": review_pb2.RESOLUTION_ACKNOWLEDGED,
}
_NAME_OF_RESOLUTION: dict[int, str] = {number: name for name, number in _RESOLUTION_OF_NAME.items()}
# The resolutions each kind of review takes: a purchase is approved or rejected; money that
# already moved (a clearing) can only be acknowledged.
RESOLUTIONS_OF_KIND: dict[str, frozenset[str]] = {
    "AUTHORIZATION": frozenset({"APPROVED", "REJECTED"}),
    "CLEARING_MISMATCH": frozenset({"ACKNOWLEDGED"}),
    "FORCE_POST": frozenset({"ACKNOWLEDGED"}),
    "LATE_CAPTURE": frozenset({"ACKNOWLEDGED"}),
}
# Review ids are "<source>:<source id>", the source id being an authorization or clearing id.
_REVIEW_ID_SOURCES = ("authorization", "clearing")


def _timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def review_to_proto(review: ReviewRow) -> review_pb2.Review:
    message = review_pb2.Review(
        review_id=review.review_id,
        kind=_KIND_OF_NAME[review.kind],
        status=_STATUS_OF_NAME[review.status],
        authorization_id=review.authorization_id or "",
        clearing_id=review.clearing_id or "",
        card_id=review.card_id,
        amount_minor=review.amount_minor,
        currency=review.currency,
        delta_minor=review.delta_minor,
        detail=review.detail,
        owner=review.owner,
        opened_at=_timestamp(review.opened_at),
        resolution=_RESOLUTION_OF_NAME[review.resolution] if review.resolution else review_pb2.RESOLUTION_UNSPECIFIED,
        note=review.note or "",
        resolved_by=review.resolved_by or "",
        ledger_transaction_ids=review.ledger_transaction_ids,
    )
    if review.resolved_at is not None:
        message.resolved_at.CopyFrom(_timestamp(review.resolved_at))
    return message


# --- requests --------------------------------------------------------------------------------


def require_review_id(value: str) -> str:
    """A review id as the ledger writer makes them: "authorization:<id>" or "clearing:<id>"."""
    if not value:
        raise InvalidArgument("review_id", "is required")
    source, colon, source_id = value.partition(":")
    if not colon or source not in _REVIEW_ID_SOURCES:
        raise InvalidArgument("review_id", "must be 'authorization:<authorization id>' or 'clearing:<clearing id>'")
    try:
        validation.require_id("review_id", source_id)
    except InvalidArgument as error:
        raise InvalidArgument("review_id", f"the id after '{source}:' {error.rule}") from error
    return value


def _filter(field: str, value: int, names: dict[int, str], enum: EnumTypeWrapper) -> str | None:
    """A status or kind filter: None for *_UNSPECIFIED (any), else the value's name."""
    if value == 0:
        return None
    if value not in names:
        raise InvalidArgument(field, f"must be one of {', '.join(enum.keys())}")
    return names[value]


def _page_size(value: int) -> int:
    if not 0 <= value <= PAGE_SIZE_MAX:
        raise InvalidArgument("page_size", f"must be between 0 (meaning {PAGE_SIZE_DEFAULT}) and {PAGE_SIZE_MAX}")
    return value or PAGE_SIZE_DEFAULT


def _resolution(value: int) -> str:
    if value not in _NAME_OF_RESOLUTION:
        raise InvalidArgument("resolution", "must be APPROVED, REJECTED or ACKNOWLEDGED")
    return _NAME_OF_RESOLUTION[value]


# --- page tokens ------------------------------------------------------------------------------
# A token is the position of the last review listed plus the filters it was listed with, so a
# token cannot silently continue a different listing. Base64 keeps it opaque to callers.


def encode_page_token(status: str | None, kind: str | None, last: ReviewRow) -> str:
    micros = (last.opened_at - _EPOCH) // timedelta(microseconds=1)
    raw = json.dumps([_PAGE_TOKEN_VERSION, status, kind, micros, last.review_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_page_token(token: str, status: str | None, kind: str | None) -> Position | None:
    """The position a token stands for (None for the empty token, the first page)."""
    if not token:
        return None
    not_ours = InvalidArgument("page_token", "is not a next_page_token of ListReviews")
    if len(token) > PAGE_TOKEN_LENGTH_MAX:
        raise not_ours
    try:
        fields = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise not_ours from error
    if not (
        isinstance(fields, list)
        and len(fields) == 5
        and fields[0] == _PAGE_TOKEN_VERSION
        and isinstance(fields[3], int)
        and isinstance(fields[4], str)
    ):
        raise not_ours
    if fields[1] != status or fields[2] != kind:
        raise InvalidArgument("page_token", "belongs to a listing with another status or kind filter")
    try:
        opened_at = _EPOCH + timedelta(microseconds=fields[3])
    except OverflowError as error:
        raise not_ours from error
    return Position(opened_at, fields[4])


def page_of(rows: list[ReviewRow], page_size: int, bytes_max: int) -> tuple[list[review_pb2.Review], int]:
    """The first rows as one page: at most page_size, and no more than fit in bytes_max (but
    always at least one, so a listing always moves on). Returns the page and how many rows it holds."""
    page: list[review_pb2.Review] = []
    size_bytes = 0
    for row in rows[:page_size]:
        review = review_to_proto(row)
        review_bytes = review.ByteSize() + _FIELD_OVERHEAD_BYTES
        if page and size_bytes + review_bytes > bytes_max:
            break  # the rest come on the next page
        page.append(review)
        size_bytes += review_bytes
    return page, len(page)


# --- the resolution rules -------------------------------------------------------------------------


def resolution_check(resolution: str) -> store.ResolutionCheck:
    """Whether a review may take `resolution` now: True resolves it; False answers it as it is
    (APPROVED again on a review resolved APPROVED, so the override can be written again);
    anything else is FAILED_PRECONDITION naming the rule."""

    def check(review: ReviewRow) -> bool:
        if review.status == "RESOLVED":
            if review.resolution == "APPROVED" and resolution == "APPROVED":
                return False
            raise FailedPrecondition(
                f"review {review.review_id!r} is already resolved ({review.resolution} by {review.resolved_by}); "
                "only an OPEN review can be resolved"
            )
        allowed = RESOLUTIONS_OF_KIND[review.kind]
        if resolution not in allowed:
            article = "an" if review.kind[0] in "AEIOU" else "a"
            raise FailedPrecondition(
                f"resolution {resolution} does not fit {article} {review.kind} review, "
                f"which takes {' or '.join(sorted(allowed))}"
            )
        return True

    return check


def override_ttl_s(resolved_at: datetime, now: datetime) -> int:
    """Seconds left of an approval's override: OVERRIDE_TTL_S from the resolution, never more."""
    return OVERRIDE_TTL_S - int((now - resolved_at).total_seconds())


class ReviewService(review_pb2_grpc.ReviewServiceServicer):
    def __init__(
        self,
        rpc_context: RpcContext,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        keyspace: Keyspace,
        clock: Clock,
        admin_timeout_s: float,
        response_bytes_max: int,
    ) -> None:
        assert admin_timeout_s > 0, f"admin_timeout_s must be > 0, got {admin_timeout_s}"
        assert response_bytes_max > 0, f"response_bytes_max must be > 0, got {response_bytes_max}"
        self.rpc_context = rpc_context
        self._pool = pool
        self._redis = redis
        self._keys = keyspace
        self._clock = clock
        self._timeout_s = admin_timeout_s
        self._response_bytes_max = response_bytes_max

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now_ms() / 1000, tz=UTC)

    @rpc(_SVC + "ListReviews")
    async def ListReviews(
        self,
        request: review_pb2.ListReviewsRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> review_pb2.ListReviewsResponse:
        """The caller's tenant's reviews with the given status and kind (UNSPECIFIED: any),
        oldest first by (opened_at, review_id), at most page_size (0: 50, at most 500) and fewer
        when the answer would pass half the message size limit. Paging with next_page_token
        lists every review that existed when the listing started (and still matches the filter
        when its page is read) exactly once, in order; an empty next_page_token is the end. A
        malformed field, or a page_token of a listing with other filters, is INVALID_ARGUMENT
        naming the field; Postgres not answering is UNAVAILABLE."""
        status = _filter("status", request.status, _NAME_OF_STATUS, review_pb2.ReviewStatus)
        kind = _filter("kind", request.kind, _NAME_OF_KIND, review_pb2.ReviewKind)
        page_size = _page_size(request.page_size)
        after = decode_page_token(request.page_token, status, kind)
        async with asyncio.timeout(self._timeout_s):
            rows = await store.list_reviews(self._pool, principal.tenant_id, status, kind, after, page_size + 1)
        reviews, listed = page_of(rows, page_size, self._response_bytes_max)
        response = review_pb2.ListReviewsResponse(reviews=reviews)
        if listed < len(rows):
            response.next_page_token = encode_page_token(status, kind, rows[listed - 1])
        return response

    @rpc(_SVC + "ResolveReview")
    async def ResolveReview(
        self,
        request: review_pb2.ResolveReviewRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> review_pb2.Review:
        """Resolves an OPEN review of the caller's tenant: on return the review is RESOLVED with
        this resolution, note, the caller's API key id as resolved_by and resolved_at, and its
        review.resolved event is recorded (same transaction). APPROVED/REJECTED fit only
        AUTHORIZATION reviews, ACKNOWLEDGED only the others; otherwise, or when the review is
        already resolved, FAILED_PRECONDITION. APPROVED on an AUTHORIZATION review also writes
        the one-time override before answering; APPROVED again on a review resolved APPROVED
        answers it unchanged and writes the override again for what is left of its 30 minutes.
        Unknown (or another tenant's) review is NOT_FOUND; a malformed field is
        INVALID_ARGUMENT naming it; UNAVAILABLE means retry (the resolution may be recorded)."""
        review_id = require_review_id(request.review_id)
        resolution = _resolution(request.resolution)
        note = validation.check_text("note", request.note)
        now = self._now()
        async with asyncio.timeout(self._timeout_s):
            review = await store.resolve_review(
                self._pool, principal.tenant_id, review_id, resolution, note, principal.key_id, now,
                resolution_check(resolution),
            )  # fmt: skip
        if review.kind == "AUTHORIZATION" and review.resolution == "APPROVED":
            assert review.resolved_at is not None, review
            await self._grant_override(principal.tenant_id, review, override_ttl_s(review.resolved_at, now))
        return review_to_proto(review)

    async def _grant_override(self, tenant_id: str, review: ReviewRow, ttl_s: int) -> None:
        """Writes (or writes again) the approved purchase's override for `ttl_s` seconds; once
        the 30 minutes are over there is nothing to write. Failure is UNAVAILABLE: the
        resolution is recorded, and a retry of the call writes the override."""
        if ttl_s <= 0:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                purchase = await store.reviewed_purchase(self._pool, tenant_id, review)
                await self._write_override(tenant_id, review.review_id, purchase, ttl_s)
        except (RedisError, OSError, TimeoutError) as error:
            raise Unavailable(
                f"review {review.review_id!r} is resolved APPROVED but its override could not be written; "
                "retry ResolveReview with APPROVED"
            ) from error

    async def _write_override(self, tenant_id: str, review_id: str, purchase: ReviewedPurchase, ttl_s: int) -> None:
        """The override hash, replaced whole and with its expiry in one MULTI, so it never
        exists without its TTL nor mixes fields of two reviews. One override per card: a later
        approval on the same card replaces an unused earlier one."""
        assert 0 < ttl_s <= OVERRIDE_TTL_S, ttl_s
        key = self._keys.override(self._keys.shard_of(purchase.card_id), tenant_id, purchase.card_id)
        if await self._redis.hget(key, "review_id") == review_id.encode():
            # Written already (and perhaps used: authorize.lua marks it): a retry re-arms nothing.
            await self._redis.expire(key, ttl_s)
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(
                key,
                mapping={
                    "merchant_id": purchase.merchant_id,
                    "mcc": purchase.mcc,
                    "country": purchase.country,
                    "max_minor": purchase.amount_minor,
                    "currency": purchase.currency,
                    "review_id": review_id,
                },
            )
            pipe.expire(key, ttl_s)
            await pipe.execute()


__all__ = ["OVERRIDE_TTL_S", "PAGE_SIZE_MAX", "ReviewService", "review_to_proto"]
