"""Protects who may call what: the Authenticator verifies bearer secrets against hashed keys,
caches them within bounds (TTL, negative cache, Postgres outages), and applies the role table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authz_server import auth
from authz_server.auth import (
    API_KEY_STALE_TRUST_MAX_S,
    BOOTSTRAP,
    BOOTSTRAP_PRINCIPAL,
    METHOD_ROLES,
    UNKNOWN_KEY_TTL_S,
    Authenticator,
    Principal,
    bearer_token,
    hash_secret,
    new_api_key_secret,
)
from authz_server.errors import PermissionDenied, Unauthenticated, Unavailable
from authz_server.store.tenants import ApiKeyRow
from zentra.cards.v1 import types_pb2 as t

ADMIN_TOKEN = "bootstrap-admin-token-0123456789"
CACHE_TTL_S = 30.0
SVC = "/zentra.cards.v1."
ISSUE_CARD = SVC + "CardService/IssueCard"
GET_CARD = SVC + "CardService/GetCard"
AUTHORIZE = SVC + "AuthorizationService/Authorize"
CREATE_TENANT = SVC + "TenantService/CreateTenant"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeKeyStore:
    """Stands in for tenant_store.find_api_key: rows by key id, a call log, and an outage switch."""

    def __init__(self) -> None:
        self.rows: dict[str, ApiKeyRow] = {}
        self.lookups: list[str] = []
        self.down = False

    def add(self, role: int, tenant_id: str = "tenant-a", revoked: bool = False) -> tuple[ApiKeyRow, str]:
        key_id, secret, secret_hash = new_api_key_secret()
        row = ApiKeyRow(key_id, tenant_id, role, "label", secret_hash, datetime.now(UTC), revoked)
        self.rows[key_id] = row
        return row, secret

    async def find_key(self, key_id: str) -> ApiKeyRow | None:
        self.lookups.append(key_id)
        if self.down:
            raise OSError("connection refused")
        return self.rows.get(key_id)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> FakeKeyStore:
    return FakeKeyStore()


@pytest.fixture
def authenticator(store: FakeKeyStore, clock: FakeClock) -> Authenticator:
    return Authenticator(ADMIN_TOKEN, store.find_key, CACHE_TTL_S, monotonic=clock)


def md(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


# --- bearer metadata ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer abc"),), "abc"),
        ((("authorization", "BEARER  abc "),), "abc"),
        ((("x-other", "1"), ("authorization", "Bearer abc")), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer"),), None),
        ((("authorization", "Bearer "),), None),
        ((("authorization", b"Bearer abc"),), None),
        ((), None),
        (None, None),
    ],
    ids=["bearer", "lower-scheme", "extra-spaces", "after-other-metadata", "basic-scheme", "no-token",
         "empty-token", "binary-value", "empty-metadata", "no-metadata"],
)  # fmt: skip
def test_bearer_token(metadata, expected):
    assert bearer_token(metadata) == expected


# --- authentication -------------------------------------------------------------------------


async def test_missing_metadata_is_unauthenticated(authenticator, store):
    with pytest.raises(Unauthenticated, match="Bearer"):
        await authenticator.authorize(GET_CARD, None)
    with pytest.raises(Unauthenticated, match="Bearer"):
        await authenticator.authorize(GET_CARD, (("authorization", "Basic dXNlcjpwdw=="),))
    assert store.lookups == [], "no credentials, no database lookup"


async def test_valid_key_gives_the_keys_tenant_and_role(authenticator, store):
    row, secret = store.add(t.OPERATOR, tenant_id="tenant-x")
    principal = await authenticator.authorize(GET_CARD, md(secret))
    assert principal == Principal("tenant-x", row.key_id, t.OPERATOR)


@pytest.mark.parametrize(
    "secret",
    ["garbage", "key_", "key_abc", "notakey.abc", "." * 10, ADMIN_TOKEN + "x", "k" * 201],
    ids=["garbage", "key-prefix-only", "no-dot", "wrong-prefix", "dots", "admin-token-plus-char", "over-200"],
)
async def test_malformed_secrets_are_refused_without_lookup(authenticator, store, secret):
    with pytest.raises(Unauthenticated, match=r"^invalid credentials$"):
        await authenticator.authorize(GET_CARD, md(secret))
    assert store.lookups == [], f"{secret!r} cannot be a key secret; Postgres must not be asked"


async def test_over_long_secret_with_a_real_key_id_is_refused_without_lookup(authenticator, store):
    _row, secret = store.add(t.ADMIN)
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(GET_CARD, md(secret + "x" * auth.SECRET_LENGTH_MAX))
    assert store.lookups == []


async def test_wrong_secret_for_a_real_key_id_is_refused(authenticator, store):
    row, secret = store.add(t.ADMIN)
    for wrong in (f"{row.key_id}.wrong", secret[:-1] + ("A" if secret[-1] != "A" else "B"), secret + "x"):
        with pytest.raises(Unauthenticated, match=r"^invalid credentials$"):
            await authenticator.authorize(GET_CARD, md(wrong))
    assert (await authenticator.authorize(GET_CARD, md(secret))).key_id == row.key_id, (
        "failed attempts must not poison the cache for the real secret"
    )


async def test_wrong_secret_is_refused_even_when_the_key_is_cached(authenticator, store):
    row, secret = store.add(t.ADMIN)
    await authenticator.authorize(GET_CARD, md(secret))
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(GET_CARD, md(f"{row.key_id}.wrong"))


async def test_revoked_key_is_refused(authenticator, store):
    _row, secret = store.add(t.ADMIN, revoked=True)
    with pytest.raises(Unauthenticated, match=r"^invalid credentials$"):
        await authenticator.authorize(GET_CARD, md(secret))


async def test_revocation_is_noticed_once_the_cache_entry_expires(authenticator, store, clock):
    row, secret = store.add(t.ADMIN)
    await authenticator.authorize(GET_CARD, md(secret))
    store.rows[row.key_id] = ApiKeyRow(
        row.key_id, row.tenant_id, row.role, row.label, row.secret_hash, row.created_at, True
    )
    clock.now += CACHE_TTL_S + 0.001
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(GET_CARD, md(secret))


# --- the key cache --------------------------------------------------------------------------


async def test_cache_hit_avoids_a_second_lookup(authenticator, store, clock):
    row, secret = store.add(t.PROCESSOR)
    await authenticator.authorize(AUTHORIZE, md(secret))
    clock.now += CACHE_TTL_S - 0.001
    await authenticator.authorize(AUTHORIZE, md(secret))
    assert store.lookups == [row.key_id], "a key verified within its TTL must come from the cache"


async def test_cache_entry_expires_after_its_ttl(authenticator, store, clock):
    row, secret = store.add(t.PROCESSOR)
    await authenticator.authorize(AUTHORIZE, md(secret))
    clock.now += CACHE_TTL_S
    await authenticator.authorize(AUTHORIZE, md(secret))
    assert store.lookups == [row.key_id, row.key_id], "at its TTL a cached key is read again"
    await authenticator.authorize(AUTHORIZE, md(secret))
    assert len(store.lookups) == 2, "the re-read starts a new TTL"


async def test_ttl_zero_reads_every_time(store, clock):
    authenticator = Authenticator(ADMIN_TOKEN, store.find_key, 0, monotonic=clock)
    _row, secret = store.add(t.PROCESSOR)
    for _ in range(3):
        await authenticator.authorize(AUTHORIZE, md(secret))
    assert len(store.lookups) == 3


async def test_unknown_key_is_negatively_cached(authenticator, store, clock):
    unknown = "key_00000000deadbeef.secret"
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await authenticator.authorize(GET_CARD, md(unknown))
    assert store.lookups == ["key_00000000deadbeef"], "repeated unknown keys must not hammer Postgres"
    clock.now += UNKNOWN_KEY_TTL_S + 0.001
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(GET_CARD, md(unknown))
    assert len(store.lookups) == 2, "after the negative TTL Postgres is asked again"


async def test_key_created_after_a_miss_works_once_the_negative_entry_expires(authenticator, store, clock):
    row, secret = store.add(t.ADMIN)
    real = store.rows.pop(row.key_id)
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(GET_CARD, md(secret))
    store.rows[row.key_id] = real
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(GET_CARD, md(secret))  # still within the negative TTL
    clock.now += UNKNOWN_KEY_TTL_S + 0.001
    assert (await authenticator.authorize(GET_CARD, md(secret))).key_id == row.key_id


async def test_deleted_key_is_dropped_from_the_cache_when_re_read(authenticator, store, clock):
    row, secret = store.add(t.ADMIN)
    await authenticator.authorize(GET_CARD, md(secret))
    del store.rows[row.key_id]
    clock.now += CACHE_TTL_S + 1
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(GET_CARD, md(secret))


async def test_postgres_down_with_a_cached_key_still_succeeds(authenticator, store, clock):
    row, secret = store.add(t.PROCESSOR)
    await authenticator.authorize(AUTHORIZE, md(secret))
    store.down = True
    clock.now += CACHE_TTL_S + 1  # expired: the authenticator must try Postgres, and fall back
    principal = await authenticator.authorize(AUTHORIZE, md(secret))
    assert principal.key_id == row.key_id
    assert store.lookups == [row.key_id, row.key_id], "the expired entry must have been re-read first"


async def test_postgres_down_trust_in_a_cached_key_is_bounded(authenticator, store, clock):
    _row, secret = store.add(t.PROCESSOR)
    await authenticator.authorize(AUTHORIZE, md(secret))
    store.down = True
    clock.now += CACHE_TTL_S + API_KEY_STALE_TRUST_MAX_S + 1
    with pytest.raises(Unavailable):
        await authenticator.authorize(AUTHORIZE, md(secret))


async def test_postgres_down_with_a_cached_key_still_checks_the_secret(authenticator, store, clock):
    row, secret = store.add(t.PROCESSOR)
    await authenticator.authorize(AUTHORIZE, md(secret))
    store.down = True
    clock.now += CACHE_TTL_S + 1
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(AUTHORIZE, md(f"{row.key_id}.wrong"))


async def test_postgres_down_without_a_cached_key_is_unavailable(authenticator, store):
    _row, secret = store.add(t.PROCESSOR)
    store.down = True
    with pytest.raises(Unavailable, match="retry"):
        await authenticator.authorize(AUTHORIZE, md(secret))


async def test_postgres_down_does_not_affect_the_admin_token(authenticator, store):
    store.down = True
    assert await authenticator.authorize(CREATE_TENANT, md(ADMIN_TOKEN)) == BOOTSTRAP_PRINCIPAL
    assert store.lookups == []


async def test_key_cache_is_bounded(store, clock, monkeypatch):
    monkeypatch.setattr(auth, "API_KEY_CACHE_ENTRIES_MAX", 2)
    authenticator = Authenticator(ADMIN_TOKEN, store.find_key, CACHE_TTL_S, monotonic=clock)
    keys = [store.add(t.ADMIN) for _ in range(3)]
    for _row, secret in keys:
        await authenticator.authorize(GET_CARD, md(secret))
    await authenticator.authorize(GET_CARD, md(keys[0][1]))
    assert store.lookups.count(keys[0][0].key_id) == 2, "the least recently used key must have been evicted"
    await authenticator.authorize(GET_CARD, md(keys[2][1]))
    assert store.lookups.count(keys[2][0].key_id) == 1, "the most recent key must still be cached"


# --- roles ----------------------------------------------------------------------------------

ALLOWED = {
    "TenantService/CreateTenant": {BOOTSTRAP},
    "TenantService/CreateApiKey": {BOOTSTRAP},
    "CardService/IssueCard": {t.ADMIN},
    "CardService/GetCard": {t.ADMIN, t.OPERATOR},
    "CardService/UpdateSpendControls": {t.ADMIN},
    "CardService/FreezeCard": {t.ADMIN, t.OPERATOR},
    "CardService/UnfreezeCard": {t.ADMIN, t.OPERATOR},
    "CardService/CloseCard": {t.ADMIN},
    "AuthorizationService/Authorize": {t.ADMIN, t.PROCESSOR},
    "AuthorizationService/Reverse": {t.ADMIN, t.PROCESSOR},
    "ClearingService/PostClearing": {t.ADMIN, t.PROCESSOR},
    "ClearingService/IngestClearingFile": {t.ADMIN, t.PROCESSOR},
    # A PROCESSOR reads only what it authorized; the handler enforces that (integration tests).
    "AuthorizationService/GetAuthorization": {t.ADMIN, t.OPERATOR, t.PROCESSOR},
    "LedgerService/GetAccountBalances": {t.ADMIN, t.OPERATOR},
    "ReviewService/ListReviews": {t.ADMIN, t.OPERATOR},
    "ReviewService/ResolveReview": {t.ADMIN, t.OPERATOR},
}


def test_method_roles_table_matches_design():
    for method, roles in ALLOWED.items():
        assert METHOD_ROLES.get(SVC + method) == roles, f"DESIGN §3: {method} is for {sorted(roles)}"


def test_role_matrix_covers_every_method_in_the_table():
    assert set(METHOD_ROLES) == {SVC + method for method in ALLOWED}, (
        "every RPC in the roles table must have a row in ALLOWED, so the matrix below checks it"
    )


@pytest.mark.parametrize("method", sorted(ALLOWED))
@pytest.mark.parametrize(
    "role", [t.PROCESSOR, t.OPERATOR, t.ADMIN, BOOTSTRAP], ids=["PROCESSOR", "OPERATOR", "ADMIN", "BOOTSTRAP"]
)
async def test_role_matrix(authenticator, store, method, role):
    if role == BOOTSTRAP:
        secret, caller = ADMIN_TOKEN, "the bootstrap admin token"
    else:
        _row, secret = store.add(role)
        caller = f"a {t.Role.Name(role)} key"
    if role in ALLOWED[method]:
        principal = await authenticator.authorize(SVC + method, md(secret))
        assert principal.role == role
    else:
        with pytest.raises(PermissionDenied) as caught:
            await authenticator.authorize(SVC + method, md(secret))
        short = method.rsplit("/", 1)[-1]
        assert str(caught.value) == f"{caller} may not call {short}", "the refusal names the caller and method"


async def test_method_missing_from_the_table_is_refused_to_everyone(authenticator, store):
    _row, secret = store.add(t.ADMIN)
    with pytest.raises(PermissionDenied):
        await authenticator.authorize(SVC + "CardService/DeleteEverything", md(secret))
    with pytest.raises(PermissionDenied):
        await authenticator.authorize(SVC + "CardService/DeleteEverything", md(ADMIN_TOKEN))


async def test_without_admin_token_tenant_service_is_closed(store, clock):
    authenticator = Authenticator("", store.find_key, CACHE_TTL_S, monotonic=clock)
    _row, secret = store.add(t.ADMIN)
    with pytest.raises(PermissionDenied):
        await authenticator.authorize(CREATE_TENANT, md(secret))
    with pytest.raises(Unauthenticated):
        await authenticator.authorize(CREATE_TENANT, md("any-token-at-all-0123456789"))


# --- secrets --------------------------------------------------------------------------------


def test_new_api_key_secret_is_high_entropy_and_hashed():
    key_id, secret, secret_hash = new_api_key_secret()
    assert secret.startswith(key_id + "."), "the key id prefixes the secret so the row can be found"
    assert len(secret) - len(key_id) - 1 >= 43, "at least 256 bits of randomness (43 url-safe chars)"
    assert secret_hash == hash_secret(secret) and len(secret_hash) == 32
    assert secret.encode() not in secret_hash
    assert new_api_key_secret()[1] != secret
