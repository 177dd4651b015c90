"""Protects the review queue through the real gRPC API: every kind of review the ledger writer
opens is listed with its facts, filtered and paged exactly once in order, resolved once with the
actor, time and event recorded, refused with the right status, and an approved authorization
review leaves the one-time override in Redis (rewritten on a retry, never past 30 minutes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from authz_server.clock import SettableClock
from authz_server.services import reviews as review_service
from authz_server.store.reviews import Position, ReviewRow
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import Ledger, ThreadedServer
from zentra.cards.v1 import authorization_pb2, clearing_pb2, clearing_pb2_grpc, review_pb2, review_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

THRESHOLD = t.SpendControls(
    review_threshold_minor=5000, spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=100_000)]
)
OPEN, RESOLVED = review_pb2.REVIEW_STATUS_OPEN, review_pb2.REVIEW_STATUS_RESOLVED
AUTHORIZATION = review_pb2.REVIEW_KIND_AUTHORIZATION
MISMATCH = review_pb2.REVIEW_KIND_CLEARING_MISMATCH
FORCE_POST = review_pb2.REVIEW_KIND_FORCE_POST
LATE_CAPTURE = review_pb2.REVIEW_KIND_LATE_CAPTURE
APPROVED, REJECTED = review_pb2.RESOLUTION_APPROVED, review_pb2.RESOLUTION_REJECTED
ACKNOWLEDGED = review_pb2.RESOLUTION_ACKNOWLEDGED


# --- helpers ----------------------------------------------------------------------------------


def key_id(secret: str) -> str:
    return secret.split(".", 1)[0]


def stub(api: Api) -> review_pb2_grpc.ReviewServiceStub:
    return review_pb2_grpc.ReviewServiceStub(api.channel)


def list_page(api: Api, secret: str, **request: object) -> review_pb2.ListReviewsResponse:
    return stub(api).ListReviews(review_pb2.ListReviewsRequest(**request), metadata=bearer(secret))  # type: ignore[arg-type]


def list_all(api: Api, secret: str, page_size: int = 0, **filters: int) -> tuple[list[review_pb2.Review], int]:
    """Every review of a listing, following next_page_token; and how many pages it took."""
    reviews: list[review_pb2.Review] = []
    token, pages = "", 0
    while True:
        page = list_page(api, secret, page_size=page_size, page_token=token, **filters)
        pages += 1
        assert pages < 1000, "the listing does not end"
        reviews += page.reviews
        token = page.next_page_token
        if not token:
            return reviews, pages


def resolve(api: Api, secret: str, review_id: str, resolution: int, note: str = "") -> review_pb2.Review:
    request = review_pb2.ResolveReviewRequest(review_id=review_id, resolution=resolution, note=note)  # type: ignore[arg-type]
    return stub(api).ResolveReview(request, metadata=bearer(secret))


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def clearing(card_id: str, amount: int, authorization_id: str = "") -> clearing_pb2.ClearingRecord:
    return clearing_pb2.ClearingRecord(
        clearing_id=new_id("clr"),
        authorization_id=authorization_id,
        card_id=card_id,
        amount_minor=amount,
        currency="USD",
        merchant=t.Merchant(id="m-1", name="Cafe", mcc="5812", country="US", city="Boston"),
        kind=clearing_pb2.CAPTURE,
        is_final=True,
    )


def post(api: Api, secret: str, record: clearing_pb2.ClearingRecord) -> clearing_pb2.ClearingResult:
    return clearing_pb2_grpc.ClearingServiceStub(api.channel).PostClearing(record, metadata=bearer(secret))


def at(clock: SettableClock) -> datetime:
    return datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)


def review_row(ledger: Ledger, tenant_id: str, review_id: str) -> dict[str, object]:
    [row] = ledger.fetch("SELECT * FROM reviews WHERE tenant_id = $1 AND review_id = $2", tenant_id, review_id)
    return dict(row)


def resolved_events(ledger: Ledger, tenant_id: str) -> list[tuple[str, dict[str, object]]]:
    rows = ledger.fetch(
        "SELECT subject, payload FROM events WHERE tenant_id = $1 AND type = 'review.resolved' ORDER BY sequence",
        tenant_id,
    )
    return [(r["subject"], json.loads(r["payload"])) for r in rows]


def override_of(server: ThreadedServer, tenant_id: str, card_id: str) -> tuple[dict[str, str], int]:
    """The card's override hash (decoded) and its TTL in seconds (-2: no such key)."""
    keys = server.server.keyspace
    key = keys.override(keys.shard_of(card_id), tenant_id, card_id)
    fields = server.call(server.server.redis.hgetall(key))
    return {k.decode(): v.decode() for k, v in fields.items()}, server.call(server.server.redis.ttl(key))


def drop_override(server: ThreadedServer, tenant_id: str, card_id: str) -> None:
    keys = server.server.keyspace
    server.call(server.server.redis.delete(keys.override(keys.shard_of(card_id), tenant_id, card_id)))


@dataclass
class Produced:
    """One review of each kind, opened one second apart, and what they are about."""

    card_id: str
    authorization: str  # REVIEW decision: review "authorization:<id>"
    mismatch_auth: str
    mismatch: str  # clearing id of the over-capture beyond tolerance
    force: str  # clearing id of the force post
    late_auth: str
    late_reversal: str
    late: str  # clearing id of the late capture

    def review_ids(self) -> list[str]:
        return [
            f"authorization:{self.authorization}",
            f"clearing:{self.mismatch}",
            f"clearing:{self.force}",
            f"clearing:{self.late}",
        ]


def produce_every_kind(api: Api, tenant: TenantKeys, ledger: Ledger, clock: SettableClock) -> Produced:
    card = api.issue_card(tenant, THRESHOLD)
    review = api.authorize(tenant.processor, card.card_id, 6000)
    assert review.decision == t.REVIEW, "at or above the review threshold"
    clock.advance_ms(1000)
    tip = api.authorize(tenant.processor, card.card_id, 1000)
    over = clearing(card.card_id, 1600, tip.authorization_id)
    assert post(api, tenant.processor, over).review_id, "a 60% over-capture is beyond the 20% tolerance"
    clock.advance_ms(1000)
    force = clearing(card.card_id, 700)
    assert post(api, tenant.processor, force).outcome == clearing_pb2.FORCE_POSTED
    clock.advance_ms(1000)
    held = api.authorize(tenant.processor, card.card_id, 900)
    reversal_id = new_id("rev")
    api.authz.Reverse(
        authorization_pb2.ReverseRequest(reversal_id=reversal_id, authorization_id=held.authorization_id),
        metadata=bearer(tenant.processor),
    )
    late = clearing(card.card_id, 900, held.authorization_id)
    assert post(api, tenant.processor, late).outcome == clearing_pb2.LATE_CAPTURE
    ledger.drain()
    return Produced(
        card.card_id, review.authorization_id, tip.authorization_id, over.clearing_id, force.clearing_id,
        held.authorization_id, reversal_id, late.clearing_id,
    )  # fmt: skip


# --- listing ------------------------------------------------------------------------------------


def test_every_kind_is_listed_oldest_first_with_its_facts(
    api: Api, tenant: TenantKeys, ledger: Ledger, clock: SettableClock
) -> None:
    start = at(clock)
    p = produce_every_kind(api, tenant, ledger, clock)
    reviews, _ = list_all(api, tenant.operator)
    assert [r.review_id for r in reviews] == p.review_ids(), "one review per kind, oldest first"
    # The hold comes first; what one ledger writer batch posted shares its time, so the rest is compared as a set.
    facts = [
        (r.kind, r.status, r.authorization_id, r.clearing_id, r.card_id, r.amount_minor, r.currency, r.delta_minor,
         r.owner, r.ledger_transaction_ids[:1] + sorted(r.ledger_transaction_ids[1:]))
        for r in reviews
    ]  # fmt: skip
    assert facts == [
        (AUTHORIZATION, OPEN, p.authorization, "", p.card_id, 6000, "USD", 0, "", []),
        (MISMATCH, OPEN, p.mismatch_auth, p.mismatch, p.card_id, 1600, "USD", 600, "",
         [f"hold:{p.mismatch_auth}", f"clearing:{p.mismatch}"]),
        (FORCE_POST, OPEN, "", p.force, p.card_id, 700, "USD", 0, "", [f"clearing:{p.force}"]),
        (LATE_CAPTURE, OPEN, p.late_auth, p.late, p.card_id, 900, "USD", 0, "",
         [f"hold:{p.late_auth}", f"clearing:{p.late}", f"reversal:{p.late_reversal}"]),
    ], "each review carries its authorization, clearing record, ledger transactions, delta and owner"  # fmt: skip
    opened = [r.opened_at.ToDatetime(tzinfo=UTC) for r in reviews]
    assert opened == [start + timedelta(seconds=i) for i in range(4)], "opened when decided or cleared"
    for r in reviews:
        assert r.detail, f"{r.review_id} says what happened"
        assert (r.resolution, r.note, r.resolved_by, r.HasField("resolved_at")) == (0, "", "", False)


def test_filters_by_status_and_kind(api: Api, tenant: TenantKeys, ledger: Ledger, clock: SettableClock) -> None:
    p = produce_every_kind(api, tenant, ledger, clock)
    ids = p.review_ids()
    for kind, review_id in zip((AUTHORIZATION, MISMATCH, FORCE_POST, LATE_CAPTURE), ids, strict=True):
        listed, _ = list_all(api, tenant.operator, kind=kind)
        assert [r.review_id for r in listed] == [review_id], f"kind {review_pb2.ReviewKind.Name(kind)}"
    resolve(api, tenant.operator, f"clearing:{p.force}", ACKNOWLEDGED)
    by_status = {status: [r.review_id for r in list_all(api, tenant.operator, status=status)[0]]
                 for status in (0, OPEN, RESOLVED)}  # fmt: skip
    assert by_status == {0: ids, OPEN: [ids[0], ids[1], ids[3]], RESOLVED: [ids[2]]}
    assert list_all(api, tenant.operator, status=OPEN, kind=FORCE_POST)[0] == []
    [resolved] = list_all(api, tenant.admin, status=RESOLVED, kind=FORCE_POST)[0]
    assert resolved.review_id == ids[2]


def test_pages_list_every_review_exactly_once_in_order(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger, clock: SettableClock
) -> None:
    card = api.issue_card(tenant, THRESHOLD)
    for i in range(9):
        if i % 3 == 0:
            clock.advance_ms(1000)  # three reviews share each opened_at: review_id breaks the tie
        assert api.authorize(tenant.processor, card.card_id, 5000 + i).decision == t.REVIEW
    ledger.drain()
    expected, pages = list_all(api, tenant.operator, page_size=500)
    assert len(expected) == 9 and pages == 1
    assert [(r.opened_at.ToMicroseconds(), r.review_id) for r in expected] == sorted(
        (r.opened_at.ToMicroseconds(), r.review_id) for r in expected
    ), "ordered by (opened_at, review_id)"
    paged, pages = list_all(api, tenant.operator, page_size=2)
    assert [r.review_id for r in paged] == [r.review_id for r in expected], "every review once, in order"
    assert pages == 5, "nine reviews in pages of two"
    first = list_page(api, tenant.operator, page_size=2)
    assert len(first.reviews) == 2 and first.next_page_token
    resolve(api, tenant.operator, first.reviews[0].review_id, REJECTED)
    rest = list_page(api, tenant.operator, page_size=500, page_token=first.next_page_token)
    assert [r.review_id for r in rest.reviews] == [r.review_id for r in expected[2:]], (
        "a token continues after the last review it listed, whatever happened to those before"
    )
    assert rest.next_page_token == "", "the last page says so"
    default = list_page(api, tenant.operator)
    assert len(default.reviews) == 9 and default.next_page_token == "", "page_size 0 means 50"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": 501}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"status": 9}, "status"),
        ({"kind": 9}, "kind"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": "W10="}, "page_token"),  # base64 of "[]"
        ({"page_token": "x" * 600}, "page_token"),
    ],
    ids=["page-size-over-max", "page-size-negative", "unknown-status", "unknown-kind", "garbage-token",
         "token-of-wrong-shape", "over-long-token"],
)  # fmt: skip
def test_malformed_list_requests_are_invalid_argument(
    api: Api, tenant: TenantKeys, request_fields: dict[str, object], field: str
) -> None:
    error = rpc_error(lambda: list_page(api, tenant.operator, **request_fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{error.code()}: {error.details()}"
    assert error.details().startswith(f"{field}:"), f"the refusal names the field: {error.details()}"


def test_a_page_token_belongs_to_its_listing(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    card = api.issue_card(tenant, THRESHOLD)
    for _ in range(3):
        api.authorize(tenant.processor, card.card_id, 7000)
    ledger.drain()
    token = list_page(api, tenant.operator, page_size=1, status=OPEN).next_page_token
    assert token
    error = rpc_error(lambda: list_page(api, tenant.operator, page_size=1, status=RESOLVED, page_token=token))
    assert (error.code(), error.details().split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    other = api.new_tenant()
    page = list_page(api, other.operator, page_size=1, status=OPEN, page_token=token)
    assert list(page.reviews) == [], "a token carries a position, never another tenant's reviews"


# --- resolving ----------------------------------------------------------------------------------


def test_resolution_records_actor_time_note_and_event(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger, clock: SettableClock
) -> None:
    p = produce_every_kind(api, tenant, ledger, clock)
    clock.advance_ms(60_000)
    review_id = f"clearing:{p.mismatch}"
    answer = resolve(api, tenant.operator, review_id, ACKNOWLEDGED, note="tip, confirmed with the merchant")
    assert (answer.review_id, answer.status, answer.resolution, answer.note, answer.resolved_by) == (
        review_id, RESOLVED, ACKNOWLEDGED, "tip, confirmed with the merchant", key_id(tenant.operator),
    )  # fmt: skip
    assert answer.resolved_at.ToDatetime(tzinfo=UTC) == at(clock), "resolved at the server's time"
    assert list(answer.ledger_transaction_ids) == [f"hold:{p.mismatch_auth}", f"clearing:{p.mismatch}"]
    row = review_row(ledger, tenant.tenant_id, review_id)
    assert (row["status"], row["resolution"], row["note"], row["resolved_by"], row["resolved_at"]) == (
        "RESOLVED", "ACKNOWLEDGED", "tip, confirmed with the merchant", key_id(tenant.operator), at(clock),
    )  # fmt: skip
    [(subject, payload)] = resolved_events(ledger, tenant.tenant_id)
    assert subject == review_id
    assert {k: payload[k] for k in ("kind", "resolution", "resolved_by", "delta_minor", "clearing_id")} == {
        "kind": "CLEARING_MISMATCH", "resolution": "ACKNOWLEDGED", "resolved_by": key_id(tenant.operator),
        "delta_minor": 600, "clearing_id": p.mismatch,
    }  # fmt: skip
    for review_id in (f"clearing:{p.force}", f"clearing:{p.late}"):
        assert resolve(api, tenant.admin, review_id, ACKNOWLEDGED).resolved_by == key_id(tenant.admin)
    rejected = resolve(api, tenant.admin, f"authorization:{p.authorization}", REJECTED, note="not the cardholder")
    assert (rejected.status, rejected.resolution) == (RESOLVED, REJECTED)
    assert override_of(server, tenant.tenant_id, p.card_id) == ({}, -2), "a rejection grants nothing"
    assert [s for s, _ in resolved_events(ledger, tenant.tenant_id)] == [
        f"clearing:{p.mismatch}", f"clearing:{p.force}", f"clearing:{p.late}", f"authorization:{p.authorization}",
    ], "one review.resolved event per resolution"  # fmt: skip


def test_refusals_change_nothing(api: Api, tenant: TenantKeys, ledger: Ledger, clock: SettableClock) -> None:
    p = produce_every_kind(api, tenant, ledger, clock)
    auth_review, force_review = f"authorization:{p.authorization}", f"clearing:{p.force}"

    def refused(secret: str, review_id: str, resolution: int, note: str = "") -> grpc.RpcError:
        return rpc_error(lambda: resolve(api, secret, review_id, resolution, note))

    wrong = refused(tenant.operator, force_review, APPROVED)
    assert wrong.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not fit a FORCE_POST review, which takes ACKNOWLEDGED" in wrong.details(), wrong.details()
    wrong = refused(tenant.operator, auth_review, ACKNOWLEDGED)
    assert wrong.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not fit an AUTHORIZATION review, which takes APPROVED or REJECTED" in wrong.details(), wrong.details()

    for call in (
        lambda: list_page(api, tenant.processor),
        lambda: resolve(api, tenant.processor, force_review, ACKNOWLEDGED),
    ):
        denied = rpc_error(call)
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED, f"{denied.code()}: {denied.details()}"

    other = api.new_tenant()
    stranger = refused(other.admin, force_review, ACKNOWLEDGED)
    missing = refused(other.admin, "clearing:clr-missing", ACKNOWLEDGED)
    assert (stranger.code(), missing.code()) == (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND)
    assert stranger.details().replace(force_review, "<id>") == missing.details().replace(
        "clearing:clr-missing", "<id>"
    ), "another tenant's review is indistinguishable from a missing one"
    assert list_page(api, other.operator).reviews == [], "another tenant lists none of them"

    malformed = [
        ("", ACKNOWLEDGED, "", "review_id"),
        ("nope", ACKNOWLEDGED, "", "review_id"),
        ("refund:clr-1", ACKNOWLEDGED, "", "review_id"),
        ("clearing:", ACKNOWLEDGED, "", "review_id"),
        ("clearing:has space", ACKNOWLEDGED, "", "review_id"),
        ("clearing:" + "x" * 65, ACKNOWLEDGED, "", "review_id"),
        (force_review, review_pb2.RESOLUTION_UNSPECIFIED, "", "resolution"),
        (force_review, 7, "", "resolution"),
        (force_review, ACKNOWLEDGED, "n" * 257, "note"),
        (force_review, ACKNOWLEDGED, "nul\x00", "note"),
    ]
    for review_id, resolution, note, field in malformed:
        error = refused(tenant.operator, review_id, resolution, note)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{review_id!r}: {error.code()} {error.details()}"
        assert error.details().startswith(f"{field}:"), f"the refusal names {field}: {error.details()}"

    assert resolved_events(ledger, tenant.tenant_id) == [], "no refusal resolved anything"
    reviews, _ = list_all(api, tenant.operator, status=OPEN)
    assert len(reviews) == 4, "every review is still open"

    resolve(api, tenant.operator, force_review, ACKNOWLEDGED, note="first")
    twice = refused(tenant.admin, force_review, ACKNOWLEDGED, note="second")
    assert twice.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"already resolved (ACKNOWLEDGED by {key_id(tenant.operator)})" in twice.details(), twice.details()
    assert review_row(ledger, tenant.tenant_id, force_review)["note"] == "first", "the first resolution stands"
    resolve(api, tenant.operator, auth_review, REJECTED)
    for resolution in (REJECTED, APPROVED):
        again = refused(tenant.operator, auth_review, resolution)
        assert again.code() == grpc.StatusCode.FAILED_PRECONDITION, "a rejected review stays rejected"
    assert len(resolved_events(ledger, tenant.tenant_id)) == 2


# --- the override -------------------------------------------------------------------------------


def test_approval_writes_the_override_and_a_retry_rewrites_it(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger, clock: SettableClock
) -> None:
    p = produce_every_kind(api, tenant, ledger, clock)
    review_id = f"authorization:{p.authorization}"
    approved = resolve(api, tenant.operator, review_id, APPROVED, note="cardholder called")
    assert (approved.status, approved.resolution, approved.resolved_by) == (RESOLVED, APPROVED, key_id(tenant.operator))
    fields, ttl = override_of(server, tenant.tenant_id, p.card_id)
    assert fields == {
        "merchant_id": "m-1", "mcc": "5812", "country": "US", "max_minor": "6000", "currency": "USD",
        "review_id": review_id,
    }, "the override names the reviewed card's merchant and amount"  # fmt: skip
    assert 0 < ttl <= review_service.OVERRIDE_TTL_S == 1800, f"30 minutes at most, got {ttl}"

    drop_override(server, tenant.tenant_id, p.card_id)  # as if the write had been lost
    clock.advance_ms(600_000)
    retried = resolve(api, tenant.admin, review_id, APPROVED, note="retry")
    assert retried == approved, "the retry answers the review as it was resolved"
    fields, ttl = override_of(server, tenant.tenant_id, p.card_id)
    assert fields["review_id"] == review_id and 0 < ttl <= 1200, f"rewritten for what is left of 30 minutes: {ttl}"
    assert len(resolved_events(ledger, tenant.tenant_id)) == 1, "resolved once, one event"

    rejected = rpc_error(lambda: resolve(api, tenant.admin, review_id, REJECTED))
    assert rejected.code() == grpc.StatusCode.FAILED_PRECONDITION, "an approval cannot become a rejection"

    drop_override(server, tenant.tenant_id, p.card_id)
    clock.advance_ms(1_200_000)
    assert resolve(api, tenant.admin, review_id, APPROVED) == approved
    assert override_of(server, tenant.tenant_id, p.card_id) == ({}, -2), "after 30 minutes there is nothing to grant"


def test_override_write_failing_after_commit_is_unavailable_and_a_retry_heals(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = api.issue_card(tenant, THRESHOLD)
    review = api.authorize(tenant.processor, card.card_id, 8000)
    ledger.drain()
    review_id = f"authorization:{review.authorization_id}"

    async def redis_down(*args: object) -> None:
        raise RedisConnectionError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(review_service.ReviewService, "_write_override", redis_down)
        error = rpc_error(lambda: resolve(api, tenant.operator, review_id, APPROVED))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, f"{error.code()}: {error.details()}"
    assert "retry ResolveReview" in error.details()
    assert review_row(ledger, tenant.tenant_id, review_id)["resolution"] == "APPROVED", "the commit stands"
    assert override_of(server, tenant.tenant_id, card.card_id) == ({}, -2)

    healed = resolve(api, tenant.operator, review_id, APPROVED)
    assert (healed.status, healed.resolution) == (RESOLVED, APPROVED)
    fields, ttl = override_of(server, tenant.tenant_id, card.card_id)
    assert (fields["max_minor"], fields["review_id"]) == ("8000", review_id) and 0 < ttl <= 1800


def test_an_approved_review_lets_the_same_purchase_through_once(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger
) -> None:
    card = api.issue_card(tenant, THRESHOLD)
    review = api.authorize(tenant.processor, card.card_id, 6000)
    assert review.decision == t.REVIEW
    ledger.drain()
    resolve(api, tenant.operator, f"authorization:{review.authorization_id}", APPROVED)
    retry = api.authorize(tenant.processor, card.card_id, 6000)
    assert (retry.decision, retry.reason) == (t.APPROVE, t.APPROVED), "the cardholder's retry goes through"
    used, _ = override_of(server, tenant.tenant_id, card.card_id)
    assert used.get("used"), "the override is used up (marked, so that a retried resolution cannot re-arm it)"
    assert api.authorize(tenant.processor, card.card_id, 6000).decision == t.REVIEW, "once only"


# --- paging without a server --------------------------------------------------------------------


def _row(review_id: str, opened_at: datetime, detail: str = "d") -> ReviewRow:
    return ReviewRow(review_id, "FORCE_POST", "OPEN", None, review_id.split(":")[1], "card_1", 700, "USD", 0, detail,
                     "", opened_at, None, None, None, None, ())  # fmt: skip


def test_a_page_stays_within_its_byte_bound_and_always_moves_on() -> None:
    opened = datetime(2026, 3, 18, 12, 0, 0, 123456, tzinfo=UTC)
    rows = [_row(f"clearing:clr-{i}", opened, detail="x" * 200) for i in range(10)]
    one = review_service.review_to_proto(rows[0]).ByteSize() + 8
    page, listed = review_service.page_of(rows, 10, one * 3 + 1)
    assert listed == len(page) == 3, "as many as fit in the byte bound"
    page, listed = review_service.page_of(rows, 10, 1)
    assert listed == 1, "at least one review per page, so a listing always ends"
    page, listed = review_service.page_of(rows, 4, 10**6)
    assert listed == 4, "at most page_size"


def test_a_page_token_round_trips_to_the_microsecond() -> None:
    last = _row("clearing:clr-9", datetime(2026, 3, 18, 12, 0, 0, 123456, tzinfo=UTC))
    token = review_service.encode_page_token("OPEN", None, last)
    assert review_service.decode_page_token(token, "OPEN", None) == Position(last.opened_at, last.review_id)


def test_a_retried_resolution_does_not_rearm_a_used_override(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger
) -> None:
    card = api.issue_card(tenant, t.SpendControls(review_threshold_minor=1000))
    referred = api.authorize(tenant.processor, card.card_id, 1500)
    assert referred.decision == t.REVIEW
    ledger.drain()
    review_id = f"authorization:{referred.authorization_id}"
    resolve = review_pb2.ResolveReviewRequest(review_id=review_id, resolution=review_pb2.RESOLUTION_APPROVED, note="ok")
    stub = review_pb2_grpc.ReviewServiceStub(api.channel)
    stub.ResolveReview(resolve, metadata=bearer(tenant.operator))
    assert api.authorize(tenant.processor, card.card_id, 1500).decision == t.APPROVE
    stub.ResolveReview(resolve, metadata=bearer(tenant.operator))  # a retry of the same resolution
    assert api.authorize(tenant.processor, card.card_id, 1500).decision == t.REVIEW, "approved once, not twice"
