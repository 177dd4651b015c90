"""Protects DESIGN §3 "Authentication and tenancy" through the real gRPC API: who may call what,
and that one tenant can neither see, change nor collide with another tenant's cards and ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest

from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import ADMIN_TOKEN, ThreadedServer
from zentra.cards.v1 import (
    authorization_pb2,
    card_pb2,
    clearing_pb2,
    clearing_pb2_grpc,
    ledger_pb2,
    ledger_pb2_grpc,
    review_pb2,
    review_pb2_grpc,
    tenant_pb2,
)
from zentra.cards.v1 import types_pb2 as t

SVC = "/zentra.cards.v1."

# --- helpers --------------------------------------------------------------------------------


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def usage(server: ThreadedServer, tenant_id: str, card_id: str) -> dict[bytes, bytes]:
    keys = server.server.keyspace
    return server.call(server.server.redis.hgetall(keys.usage(keys.shard_of(card_id), tenant_id, card_id)))


def replay_exists(server: ThreadedServer, tenant_id: str, authorization_id: str) -> bool:
    key = server.server.keyspace.replay(tenant_id, authorization_id)
    return bool(server.call(server.server.redis.exists(key)))


def stream_length(server: ThreadedServer, card_id: str) -> int:
    keys = server.server.keyspace
    return server.call(server.server.redis.xlen(keys.stream(keys.shard_of(card_id))))


def fetchval(server: ThreadedServer, sql: str, *args: object) -> object:
    return server.call(server.server.pool.fetchval(sql, *args))


def get_card(api: Api, secret: str, card_id: str) -> card_pb2.Card:
    return api.cards.GetCard(card_pb2.GetCardRequest(card_id=card_id), metadata=bearer(secret))


# --- the role matrix ------------------------------------------------------------------------


@dataclass
class Scene:
    """One tenant with a card, and the things a role-matrix case may touch."""

    api: Api
    server: ThreadedServer
    tenant: TenantKeys
    card: card_pb2.Card
    new_tenant_id: str
    authorize_request: authorization_pb2.AuthorizeRequest

    def secret(self, caller: str) -> str:
        return ADMIN_TOKEN if caller == "BOOTSTRAP" else getattr(self.tenant, caller.lower())

    def card_now(self) -> card_pb2.Card:
        return get_card(self.api, self.tenant.admin, self.card.card_id)


@dataclass(frozen=True)
class Method:
    """An RPC as the matrix exercises it: how to set up, call, and check it did or did not act."""

    name: str
    allowed: frozenset[str]
    call: Callable[[Scene, tuple[tuple[str, str], ...]], object]
    acted: Callable[[Scene, object], None]  # the call was allowed: check its effect
    untouched: Callable[[Scene], None]  # the call was refused: check nothing changed
    prepare: Callable[[Scene], None] = lambda scene: None


def _card_action(action: str) -> Callable[[Scene, tuple[tuple[str, str], ...]], object]:
    def call(scene: Scene, metadata: tuple[tuple[str, str], ...]) -> object:
        request = card_pb2.CardActionRequest(card_id=scene.card.card_id, reason="matrix")
        return getattr(scene.api.cards, action)(request, metadata=metadata)

    return call


def _card_is(state: int, version: int) -> Callable[..., None]:
    def check(scene: Scene, *_: object) -> None:
        now = scene.card_now()
        assert (now.state, now.policy_version) == (state, version), (
            f"expected the card {t.CardState.Name(state)} at policy_version {version}, "
            f"found {t.CardState.Name(now.state)} at {now.policy_version}"
        )

    return check


def _freeze(scene: Scene) -> None:
    scene.card = scene.api.cards.FreezeCard(
        card_pb2.CardActionRequest(card_id=scene.card.card_id), metadata=bearer(scene.tenant.admin)
    )


NEW_CONTROLS = t.SpendControls(allowed_countries=["US"], review_threshold_minor=5000)


def _tenant_rows(scene: Scene) -> object:
    return fetchval(scene.server, "SELECT count(*) FROM tenants WHERE tenant_id = $1", scene.new_tenant_id)


def _key_rows(scene: Scene) -> object:
    return fetchval(scene.server, "SELECT count(*) FROM api_keys WHERE tenant_id = $1", scene.tenant.tenant_id)


def _card_rows(scene: Scene) -> object:
    return fetchval(scene.server, "SELECT count(*) FROM cards WHERE tenant_id = $1", scene.tenant.tenant_id)


def _nothing_authorized(scene: Scene) -> None:
    request = scene.authorize_request
    assert usage(scene.server, scene.tenant.tenant_id, scene.card.card_id) == {}, "a refused caller reserves nothing"
    assert not replay_exists(scene.server, scene.tenant.tenant_id, request.authorization_id), (
        "a refused caller leaves no replay record"
    )


def _approved(scene: Scene, response: object) -> None:
    assert isinstance(response, authorization_pb2.AuthorizeResponse)
    assert (response.decision, response.reason) == (t.APPROVE, t.APPROVED)
    assert usage(scene.server, scene.tenant.tenant_id, scene.card.card_id) != {}


def _authorized_by_the_processor(scene: Scene) -> None:
    """GetAuthorization's subject: made by the tenant's PROCESSOR key, which may therefore read it."""
    response = scene.api.authz.Authorize(scene.authorize_request, metadata=bearer(scene.tenant.processor))
    assert response.decision == t.APPROVE


def _the_authorization(scene: Scene, response: object) -> None:
    assert isinstance(response, authorization_pb2.Authorization)
    request = scene.authorize_request
    assert (response.authorization_id, response.decision, response.amount_minor) == (
        request.authorization_id, t.APPROVE, request.amount_minor,
    ), f"GetAuthorization answered {response}, not the authorization"  # fmt: skip


def _reversed(scene: Scene, response: object) -> None:
    assert isinstance(response, authorization_pb2.ReverseResponse)
    assert (response.released_minor, response.remaining_hold_minor) == (scene.authorize_request.amount_minor, 0)
    assert usage(scene.server, scene.tenant.tenant_id, scene.card.card_id).get(b"D|a") == b"0", "the hold is released"


def _still_held(scene: Scene) -> None:
    held = usage(scene.server, scene.tenant.tenant_id, scene.card.card_id).get(b"D|a")
    assert held == str(scene.authorize_request.amount_minor).encode(), "a refused Reverse releases nothing"


def _refund(scene: Scene) -> clearing_pb2.ClearingRecord:
    return clearing_pb2.ClearingRecord(
        clearing_id=f"clr-{scene.card.card_id}",
        card_id=scene.card.card_id,
        amount_minor=250,
        currency=scene.card.currency,
        merchant=t.Merchant(mcc="5812", country="US"),
        kind=clearing_pb2.REFUND,
    )


def _clearing_stored(scene: Scene) -> bool:
    keys = scene.server.server.keyspace
    key = keys.clearing(scene.tenant.tenant_id, f"clr-{scene.card.card_id}")
    return bool(scene.server.call(scene.server.server.redis.exists(key)))


def _refunded(scene: Scene, response: object) -> None:
    if isinstance(response, clearing_pb2.ClearingSummary):
        assert (response.records, response.refunds) == (1, 1), f"IngestClearingFile answered {response}"
    else:
        assert isinstance(response, clearing_pb2.ClearingResult) and response.outcome == clearing_pb2.REFUNDED
    assert _clearing_stored(scene)


def _nothing_cleared(scene: Scene) -> None:
    assert not _clearing_stored(scene), "a refused clearing posts nothing"


def _balances(scene: Scene, response: object) -> None:
    assert isinstance(response, ledger_pb2.AccountBalances)
    assert response.account_ref == scene.card.account_ref, f"GetAccountBalances answered {response}"


def _review_id(scene: Scene) -> str:
    return f"clearing:clr-{scene.card.card_id}"


def _open_review(scene: Scene) -> None:
    """A force-post review of the scene's card, as the ledger writer opens them (inserted
    directly: the matrix is about who may resolve it, tests/integration/test_reviews.py about
    how reviews come to be)."""
    scene.server.call(
        scene.server.server.pool.execute(
            """INSERT INTO reviews (tenant_id, review_id, kind, clearing_id, card_id, amount_minor, currency, detail,
                   opened_at)
               VALUES ($1, $2, 'FORCE_POST', $3, $4, 700, $5, 'force post', now())""",
            scene.tenant.tenant_id,
            _review_id(scene),
            f"clr-{scene.card.card_id}",
            scene.card.card_id,
            scene.card.currency,
        )
    )


def _review_status(scene: Scene) -> object:
    return fetchval(
        scene.server,
        "SELECT status FROM reviews WHERE tenant_id = $1 AND review_id = $2",
        scene.tenant.tenant_id,
        _review_id(scene),
    )


def _resolved(scene: Scene, response: object) -> None:
    assert isinstance(response, review_pb2.Review), f"ResolveReview answered {response}"
    assert (response.review_id, response.status) == (_review_id(scene), review_pb2.REVIEW_STATUS_RESOLVED)
    assert _review_status(scene) == "RESOLVED", "the resolution is recorded"


def _review_still_open(scene: Scene) -> None:
    assert _review_status(scene) == "OPEN", "a refused ResolveReview resolves nothing"


def _listed(scene: Scene, response: object) -> None:
    assert isinstance(response, review_pb2.ListReviewsResponse), f"ListReviews answered {response}"
    assert [r.review_id for r in response.reviews] == [_review_id(scene)], "the tenant's one review is listed"


METHODS = [
    Method(
        "TenantService/CreateTenant",
        frozenset({"BOOTSTRAP"}),
        lambda s, md: s.api.tenants.CreateTenant(
            tenant_pb2.CreateTenantRequest(tenant_id=s.new_tenant_id, name="New"), metadata=md
        ),
        lambda s, r: None if _tenant_rows(s) == 1 else pytest.fail("the tenant was not created"),
        lambda s: None if _tenant_rows(s) == 0 else pytest.fail("a refused CreateTenant created the tenant"),
    ),
    Method(
        "TenantService/CreateApiKey",
        frozenset({"BOOTSTRAP"}),
        lambda s, md: s.api.tenants.CreateApiKey(
            tenant_pb2.CreateApiKeyRequest(tenant_id=s.tenant.tenant_id, role=t.ADMIN), metadata=md
        ),
        lambda s, r: None if _key_rows(s) == 4 else pytest.fail("the key was not stored"),
        lambda s: None if _key_rows(s) == 3 else pytest.fail("a refused CreateApiKey stored a key"),
    ),
    Method(
        "CardService/IssueCard",
        frozenset({"ADMIN"}),
        lambda s, md: s.api.cards.IssueCard(
            card_pb2.IssueCardRequest(
                idempotency_key=new_id("issue"), customer_ref="c-1", account_ref="a-1", currency="EUR"
            ),
            metadata=md,
        ),
        lambda s, r: None if _card_rows(s) == 2 else pytest.fail("the card was not issued"),
        lambda s: None if _card_rows(s) == 1 else pytest.fail("a refused IssueCard issued a card"),
    ),
    Method(
        "CardService/GetCard",
        frozenset({"ADMIN", "OPERATOR"}),
        lambda s, md: s.api.cards.GetCard(card_pb2.GetCardRequest(card_id=s.card.card_id), metadata=md),
        lambda s, r: None if r == s.card else pytest.fail(f"GetCard answered {r}, not the card"),
        lambda s: None,  # a read changes nothing either way
    ),
    Method(
        "CardService/UpdateSpendControls",
        frozenset({"ADMIN"}),
        lambda s, md: s.api.cards.UpdateSpendControls(
            card_pb2.UpdateSpendControlsRequest(card_id=s.card.card_id, spend_controls=NEW_CONTROLS), metadata=md
        ),
        _card_is(t.ACTIVE, 2),
        _card_is(t.ACTIVE, 1),
    ),
    Method("CardService/FreezeCard", frozenset({"ADMIN", "OPERATOR"}), _card_action("FreezeCard"),
           _card_is(t.FROZEN, 2), _card_is(t.ACTIVE, 1)),
    Method("CardService/UnfreezeCard", frozenset({"ADMIN", "OPERATOR"}), _card_action("UnfreezeCard"),
           _card_is(t.ACTIVE, 3), _card_is(t.FROZEN, 2), prepare=_freeze),
    Method("CardService/CloseCard", frozenset({"ADMIN"}), _card_action("CloseCard"),
           _card_is(t.CLOSED, 2), _card_is(t.ACTIVE, 1)),
    Method(
        "AuthorizationService/Authorize",
        frozenset({"ADMIN", "PROCESSOR"}),
        lambda s, md: s.api.authz.Authorize(s.authorize_request, metadata=md),
        _approved,
        _nothing_authorized,
    ),
    Method(
        "AuthorizationService/GetAuthorization",
        frozenset({"ADMIN", "OPERATOR", "PROCESSOR"}),
        lambda s, md: s.api.authz.GetAuthorization(
            authorization_pb2.GetAuthorizationRequest(authorization_id=s.authorize_request.authorization_id),
            metadata=md,
        ),
        _the_authorization,
        lambda s: None,  # a read changes nothing either way
        prepare=_authorized_by_the_processor,
    ),
    Method(
        "AuthorizationService/Reverse",
        frozenset({"ADMIN", "PROCESSOR"}),
        lambda s, md: s.api.authz.Reverse(
            authorization_pb2.ReverseRequest(
                reversal_id=new_id("rev"), authorization_id=s.authorize_request.authorization_id
            ),
            metadata=md,
        ),
        _reversed,
        _still_held,
        prepare=_authorized_by_the_processor,
    ),
    Method(
        "ClearingService/PostClearing",
        frozenset({"ADMIN", "PROCESSOR"}),
        lambda s, md: clearing_pb2_grpc.ClearingServiceStub(s.api.channel).PostClearing(_refund(s), metadata=md),
        _refunded,
        _nothing_cleared,
    ),
    Method(
        "ClearingService/IngestClearingFile",
        frozenset({"ADMIN", "PROCESSOR"}),
        lambda s, md: clearing_pb2_grpc.ClearingServiceStub(s.api.channel).IngestClearingFile(
            iter([_refund(s)]), metadata=md
        ),
        _refunded,
        _nothing_cleared,
    ),
    Method(
        "LedgerService/GetAccountBalances",
        frozenset({"ADMIN", "OPERATOR"}),
        lambda s, md: ledger_pb2_grpc.LedgerServiceStub(s.api.channel).GetAccountBalances(
            ledger_pb2.GetAccountBalancesRequest(account_ref=s.card.account_ref), metadata=md
        ),
        _balances,
        lambda s: None,  # a read changes nothing either way
    ),
    Method(
        "ReviewService/ListReviews",
        frozenset({"ADMIN", "OPERATOR"}),
        lambda s, md: review_pb2_grpc.ReviewServiceStub(s.api.channel).ListReviews(
            review_pb2.ListReviewsRequest(), metadata=md
        ),
        _listed,
        lambda s: None,  # a read changes nothing either way
        prepare=_open_review,
    ),
    Method(
        "ReviewService/ResolveReview",
        frozenset({"ADMIN", "OPERATOR"}),
        lambda s, md: review_pb2_grpc.ReviewServiceStub(s.api.channel).ResolveReview(
            review_pb2.ResolveReviewRequest(review_id=_review_id(s), resolution=review_pb2.RESOLUTION_ACKNOWLEDGED),
            metadata=md,
        ),
        _resolved,
        _review_still_open,
        prepare=_open_review,
    ),
]  # fmt: skip
CALLERS = ["PROCESSOR", "OPERATOR", "ADMIN", "BOOTSTRAP"]
MATRIX = [(method, caller) for method in METHODS for caller in CALLERS]


@pytest.mark.parametrize(
    ("method", "caller"),
    MATRIX,
    ids=[f"{m.name.split('/')[1]}-by-{c}-{'allowed' if c in m.allowed else 'denied'}" for m, c in MATRIX],
)
def test_role_matrix(api, server, tenant, method, caller):
    card = api.issue_card(tenant)
    scene = Scene(api, server, tenant, card, new_id("tenant"), api.authorize_request(card.card_id, 1000))
    method.prepare(scene)
    metadata = bearer(scene.secret(caller))
    if caller in method.allowed:
        response = method.call(scene, metadata)
        method.acted(scene, response)
    else:
        error = rpc_error(lambda: method.call(scene, metadata))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (
            f"DESIGN §3: {caller} may not call {method.name}; got {error.code()}: {error.details()}"
        )
        assert method.name.split("/")[1] in error.details(), "the refusal names the method"
        method.untouched(scene)


def test_role_matrix_covers_every_method_the_server_guards():
    from authz_server.auth import METHOD_ROLES

    assert {SVC + m.name for m in METHODS} == set(METHOD_ROLES), (
        "every RPC in the roles table must have a row in this matrix"
    )


# --- authentication ------------------------------------------------------------------------


def _alter_last_char(secret: str) -> str:
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


BAD_CREDENTIALS: list[tuple[str, Callable[[TenantKeys], tuple[tuple[str, str], ...] | None]]] = [
    ("no-metadata", lambda k: None),
    ("other-metadata-only", lambda k: (("x-api-key", k.admin),)),
    ("basic-scheme", lambda k: (("authorization", f"Basic {k.admin}"),)),
    ("bearer-without-token", lambda k: (("authorization", "Bearer "),)),
    ("garbage-bearer", lambda k: bearer("garbage")),
    ("unknown-key", lambda k: bearer("key_0123456789abcdef.not-a-real-secret")),
    ("wrong-secret-for-real-key-id", lambda k: bearer(k.admin.split(".", 1)[0] + ".wrong-secret")),
    ("real-secret-one-char-off", lambda k: bearer(_alter_last_char(k.admin))),
    ("real-secret-with-suffix", lambda k: bearer(k.admin + "x")),
    ("admin-token-one-char-off", lambda k: bearer(_alter_last_char(ADMIN_TOKEN))),
]
CALLS: list[tuple[str, Callable[[Api, card_pb2.Card, TenantKeys], Callable[..., object]]]] = [
    ("CreateTenant", lambda a, c, k: lambda md: a.tenants.CreateTenant(
        tenant_pb2.CreateTenantRequest(tenant_id=new_id("tenant"), name="X"), metadata=md)),
    ("GetCard", lambda a, c, k: lambda md: a.cards.GetCard(card_pb2.GetCardRequest(card_id=c.card_id), metadata=md)),
    ("FreezeCard", lambda a, c, k: lambda md: a.cards.FreezeCard(
        card_pb2.CardActionRequest(card_id=c.card_id), metadata=md)),
    ("Authorize", lambda a, c, k: lambda md: a.authz.Authorize(a.authorize_request(c.card_id), metadata=md)),
]  # fmt: skip


@pytest.mark.parametrize(("credentials",), [(c[1],) for c in BAD_CREDENTIALS], ids=[c[0] for c in BAD_CREDENTIALS])
@pytest.mark.parametrize(("make_call",), [(c[1],) for c in CALLS], ids=[c[0] for c in CALLS])
def test_bad_credentials_are_unauthenticated_and_change_nothing(api, server, tenant, credentials, make_call):
    card = api.issue_card(tenant)
    call = make_call(api, card, tenant)
    error = rpc_error(lambda: call(credentials(tenant)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (
        f"expected UNAUTHENTICATED, got {error.code()}: {error.details()}"
    )
    assert tenant.admin not in error.details() and ADMIN_TOKEN not in error.details(), "secrets are never echoed"
    after = get_card(api, tenant.admin, card.card_id)
    assert (after.state, after.policy_version) == (t.ACTIVE, 1), "an unauthenticated call changes no card"
    assert usage(server, tenant.tenant_id, card.card_id) == {}, "an unauthenticated call reserves nothing"


def test_valid_secret_still_works_after_failed_attempts(api, tenant):
    card = api.issue_card(tenant)
    for wrong in (tenant.processor.split(".", 1)[0] + ".nope", _alter_last_char(tenant.processor)):
        rpc_error(lambda wrong=wrong: api.authorize(wrong, card.card_id))
    response = api.authorize(tenant.processor, card.card_id)
    assert response.decision == t.APPROVE, "failed guesses must not lock out or poison the real key"


# --- another tenant's card ------------------------------------------------------------------


def test_authorize_on_another_tenants_card_is_card_not_found(api, server, tenant):
    other = api.new_tenant()
    card = api.issue_card(tenant)

    for secret in (other.processor, other.admin):
        response = api.authorize(secret, card.card_id, 1000)
        assert (response.decision, response.reason, response.response_code) == (
            t.DECLINE,
            t.CARD_NOT_FOUND,
            "14",
        ), "a card of another tenant is indistinguishable from a missing one"
        assert response.policy_version == 0, "nothing of the other tenant's card (its version) may leak"

    assert usage(server, tenant.tenant_id, card.card_id) == {}, "the owner's card usage must be untouched"
    own = api.authorize(tenant.processor, card.card_id, 1000)
    assert (own.decision, own.replayed) == (t.APPROVE, False), "the owner's next purchase is decided as usual"


def test_other_tenant_cannot_replay_an_owners_answer(api, server, tenant):
    other = api.new_tenant()
    card = api.issue_card(tenant)
    request = api.authorize_request(card.card_id, 1000)
    owner = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    assert owner.decision == t.APPROVE

    stranger = api.authz.Authorize(request, metadata=bearer(other.processor))
    assert (stranger.decision, stranger.reason, stranger.replayed) == (t.DECLINE, t.CARD_NOT_FOUND, False), (
        "the same request under another tenant is that tenant's own (unknown card), never the owner's answer"
    )
    again = api.authz.Authorize(request, metadata=bearer(tenant.processor))
    assert (again.decision, again.replayed) == (t.APPROVE, True), "the owner's replay record is intact"


CARD_CALLS: list[tuple[str, Callable[[Api, str, str], object]]] = [
    ("GetCard", lambda a, secret, card_id: get_card(a, secret, card_id)),
    ("FreezeCard", lambda a, secret, card_id: a.cards.FreezeCard(
        card_pb2.CardActionRequest(card_id=card_id, reason="x"), metadata=bearer(secret))),
    ("UnfreezeCard", lambda a, secret, card_id: a.cards.UnfreezeCard(
        card_pb2.CardActionRequest(card_id=card_id, reason="x"), metadata=bearer(secret))),
    ("CloseCard", lambda a, secret, card_id: a.cards.CloseCard(
        card_pb2.CardActionRequest(card_id=card_id, reason="x"), metadata=bearer(secret))),
    ("UpdateSpendControls", lambda a, secret, card_id: a.cards.UpdateSpendControls(
        card_pb2.UpdateSpendControlsRequest(card_id=card_id, spend_controls=NEW_CONTROLS), metadata=bearer(secret))),
]  # fmt: skip


@pytest.mark.parametrize(("call",), [(c[1],) for c in CARD_CALLS], ids=[c[0] for c in CARD_CALLS])
def test_card_calls_on_another_tenants_card_are_not_found(api, server, tenant, call):
    other = api.new_tenant()
    controls = t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=10_000)])
    card = api.issue_card(tenant, controls=controls)
    missing_id = "card_" + "0" * 20

    error = rpc_error(lambda: call(api, other.admin, card.card_id))
    missing = rpc_error(lambda: call(api, other.admin, missing_id))

    assert error.code() == grpc.StatusCode.NOT_FOUND, f"expected NOT_FOUND, got {error.code()}: {error.details()}"
    assert (error.code(), error.details().replace(card.card_id, "<id>")) == (
        missing.code(),
        missing.details().replace(missing_id, "<id>"),
    ), "another tenant's card must be indistinguishable from a missing one"
    after = get_card(api, tenant.admin, card.card_id)
    assert after == card, "the owner's card (state, controls, policy_version) must be unchanged"
    versions = fetchval(server, "SELECT count(*) FROM card_versions WHERE card_id = $1", card.card_id)
    assert versions == 1, "no card version may be recorded for another tenant's call"


def test_authorization_id_is_unique_per_tenant_only(api, server, tenant):
    other = api.new_tenant()
    card_a = api.issue_card(tenant)
    card_b = api.issue_card(other)
    shared_id = new_id("auth")

    first = api.authorize(tenant.processor, card_a.card_id, 1000, authorization_id=shared_id)
    second = api.authorize(other.processor, card_b.card_id, 2500, authorization_id=shared_id)

    assert (first.decision, first.replayed) == (t.APPROVE, False)
    assert (second.decision, second.replayed) == (t.APPROVE, False), (
        "tenant B's use of an id tenant A used is B's own, not ALREADY_EXISTS or a replay"
    )
    assert replay_exists(server, tenant.tenant_id, shared_id) and replay_exists(server, other.tenant_id, shared_id)
    assert usage(server, other.tenant_id, card_b.card_id) != {}, "B's approval reserved on B's card"
    replay_a = api.authorize(tenant.processor, card_a.card_id, 1000, authorization_id=shared_id)
    assert (replay_a.decision, replay_a.replayed) == (t.APPROVE, True), "A's record is still A's"


def test_card_is_issued_to_the_callers_tenant(api, tenant):
    card = api.issue_card(tenant)
    assert card.tenant_id == tenant.tenant_id, "the tenant is the key's, never a request field"
    assert get_card(api, tenant.operator, card.card_id).tenant_id == tenant.tenant_id


# --- TenantService --------------------------------------------------------------------------


def test_create_tenant_duplicate_is_already_exists(api, server, tenant):
    request = tenant_pb2.CreateTenantRequest(tenant_id=tenant.tenant_id, name="Impostor")
    error = rpc_error(lambda: api.tenants.CreateTenant(request, metadata=bearer(ADMIN_TOKEN)))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS, f"got {error.code()}: {error.details()}"
    name = fetchval(server, "SELECT name FROM tenants WHERE tenant_id = $1", tenant.tenant_id)
    assert name == "Test", "the duplicate must not rename the existing tenant"


def test_create_api_key_for_unknown_tenant_is_not_found(api, server):
    unknown = new_id("tenant")
    request = tenant_pb2.CreateApiKeyRequest(tenant_id=unknown, role=t.ADMIN)
    error = rpc_error(lambda: api.tenants.CreateApiKey(request, metadata=bearer(ADMIN_TOKEN)))
    assert error.code() == grpc.StatusCode.NOT_FOUND, f"got {error.code()}: {error.details()}"
    assert fetchval(server, "SELECT count(*) FROM api_keys WHERE tenant_id = $1", unknown) == 0


def test_api_key_secret_is_stored_hashed_only(api, server, tenant):
    key = api.tenants.CreateApiKey(
        tenant_pb2.CreateApiKeyRequest(tenant_id=tenant.tenant_id, role=t.OPERATOR, label="ops"),
        metadata=bearer(ADMIN_TOKEN),
    )
    assert (key.tenant_id, key.role, key.label) == (tenant.tenant_id, t.OPERATOR, "ops")
    assert key.secret.startswith(key.key_id + "."), "the secret carries its key id"

    row = server.call(server.server.pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key.key_id))
    assert row is not None, "the key must be stored"
    secret_hash = bytes(row["secret_hash"])
    assert len(secret_hash) == 32, "only a 32-byte hash of the secret is stored"
    assert secret_hash != key.secret.encode() and key.secret.encode() not in secret_hash
    random_part = key.secret.split(".", 1)[1]
    for column, value in row.items():
        text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
        raw = bytes(value) if isinstance(value, bytes | bytearray) else str(value).encode()
        assert random_part not in text and random_part.encode() not in raw, (
            f"column {column} must not contain the secret in clear"
        )

    card = api.issue_card(tenant)
    assert get_card(api, key.secret, card.card_id).card_id == card.card_id, "the new key works for its tenant"
