"""Who is calling, and may they call this method (DESIGN §3 "Authentication and tenancy").

Every call carries `authorization: Bearer <secret>`. TenantService takes only the bootstrap
admin token; every other service takes a tenant API key, whose tenant is the caller's tenant
(never a request field). API key secrets look like `<key_id>.<random>`: the key id finds the
row, and the SHA-256 of the whole secret is compared in constant time with the stored hash.
Secrets carry 256 bits of randomness, so a plain SHA-256 is the right hash (no password
stretching needed), and verified keys are cached in-process so the hot path does not touch
Postgres."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from authz_server.errors import PermissionDenied, Unauthenticated, Unavailable
from authz_server.store.tenants import ApiKeyRow
from zentra.cards.v1 import types_pb2 as t

PROCESSOR, OPERATOR, ADMIN = t.PROCESSOR, t.OPERATOR, t.ADMIN
BOOTSTRAP = -1  # pseudo-role of the bootstrap admin token

_SVC = "/zentra.cards.v1."
# The one table of who may call what. A method missing here is refused to everyone.
METHOD_ROLES: dict[str, frozenset[int]] = {
    _SVC + "TenantService/CreateTenant": frozenset({BOOTSTRAP}),
    _SVC + "TenantService/CreateApiKey": frozenset({BOOTSTRAP}),
    _SVC + "CardService/IssueCard": frozenset({ADMIN}),
    _SVC + "CardService/GetCard": frozenset({ADMIN, OPERATOR}),
    _SVC + "CardService/UpdateSpendControls": frozenset({ADMIN}),
    _SVC + "CardService/FreezeCard": frozenset({ADMIN, OPERATOR}),
    _SVC + "CardService/UnfreezeCard": frozenset({ADMIN, OPERATOR}),
    _SVC + "CardService/CloseCard": frozenset({ADMIN}),
    _SVC + "AuthorizationService/Authorize": frozenset({ADMIN, PROCESSOR}),
    _SVC + "AuthorizationService/Reverse": frozenset({ADMIN, PROCESSOR}),
    _SVC + "ClearingService/PostClearing": frozenset({ADMIN, PROCESSOR}),
    _SVC + "ClearingService/IngestClearingFile": frozenset({ADMIN, PROCESSOR}),
    # A PROCESSOR key sees only the authorizations it made; the handler enforces that part.
    _SVC + "AuthorizationService/GetAuthorization": frozenset({ADMIN, OPERATOR, PROCESSOR}),
    _SVC + "LedgerService/GetAccountBalances": frozenset({ADMIN, OPERATOR}),
    _SVC + "ReviewService/ListReviews": frozenset({ADMIN, OPERATOR}),
    _SVC + "ReviewService/ResolveReview": frozenset({ADMIN, OPERATOR}),
}

API_KEY_CACHE_ENTRIES_MAX = 10_000  # verified keys kept per process
UNKNOWN_KEY_CACHE_ENTRIES_MAX = 10_000  # key ids known not to exist, kept per process
UNKNOWN_KEY_TTL_S = 5.0  # how long "no such key" is believed before asking Postgres again
# While Postgres is unreachable, a key verified before stays trusted this long past its cache
# TTL (so an outage does not stop traffic), and no longer (so a revocation cannot wait forever).
API_KEY_STALE_TRUST_MAX_S = 600.0
SECRET_LENGTH_MAX = 200  # longer bearer values are refused without hashing them


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: a tenant's key (tenant_id, key_id, role) or the bootstrap admin."""

    tenant_id: str
    key_id: str
    role: int


BOOTSTRAP_PRINCIPAL = Principal(tenant_id="", key_id="bootstrap-admin", role=BOOTSTRAP)


def new_api_key_secret() -> tuple[str, str, bytes]:
    """A new key: (key_id, secret, sha256(secret))."""
    key_id = "key_" + secrets.token_hex(8)
    secret = f"{key_id}.{secrets.token_urlsafe(32)}"
    return key_id, secret, hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
            return None
    return None


class Authenticator:
    """Verifies bearer secrets and checks the caller's role for a method."""

    def __init__(
        self,
        admin_token: str,
        find_key: Callable[[str], Awaitable[ApiKeyRow | None]],
        cache_ttl_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin_token_hash = hash_secret(admin_token) if admin_token else None
        self._find_key = find_key
        self._cache_ttl_s = cache_ttl_s
        self._monotonic = monotonic
        self._keys: OrderedDict[str, tuple[ApiKeyRow, float]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()

    async def authorize(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """The verified principal, if it may call `method`; raises Unauthenticated,
        PermissionDenied or (Postgres down and the key not cached) Unavailable."""
        token = bearer_token(metadata)
        if not token:
            raise Unauthenticated("missing 'authorization: Bearer <secret>' metadata")
        principal = await self._verify(token)
        if principal.role not in METHOD_ROLES.get(method, frozenset()):
            raise PermissionDenied(f"{_role_name(principal.role)} may not call {method.rsplit('/', 1)[-1]}")
        return principal

    async def _verify(self, token: str) -> Principal:
        if len(token) > SECRET_LENGTH_MAX:
            raise Unauthenticated("invalid credentials")
        token_hash = hash_secret(token)
        if self._admin_token_hash is not None and hmac.compare_digest(token_hash, self._admin_token_hash):
            return BOOTSTRAP_PRINCIPAL
        key_id, dot, _ = token.partition(".")
        if not dot or not key_id.startswith("key_"):
            raise Unauthenticated("invalid credentials")
        row = await self._lookup(key_id)
        if row is None or row.revoked or not hmac.compare_digest(token_hash, row.secret_hash):
            raise Unauthenticated("invalid credentials")
        return Principal(row.tenant_id, row.key_id, row.role)

    async def _lookup(self, key_id: str) -> ApiKeyRow | None:
        now = self._monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        unknown_until = self._unknown.get(key_id)
        if unknown_until is not None and unknown_until > now:
            return None
        try:
            row = await self._find_key(key_id)
        except Exception as error:
            if cached is not None and now < cached[1] + API_KEY_STALE_TRUST_MAX_S:
                return cached[0]  # Postgres is down: a key verified recently stays trusted.
            raise Unavailable("cannot verify the API key right now; retry") from error
        if row is None:
            self._unknown[key_id] = now + UNKNOWN_KEY_TTL_S
            self._unknown.move_to_end(key_id)
            while len(self._unknown) > UNKNOWN_KEY_CACHE_ENTRIES_MAX:
                self._unknown.popitem(last=False)
            self._keys.pop(key_id, None)
            return None
        self._keys[key_id] = (row, now + self._cache_ttl_s)
        self._keys.move_to_end(key_id)
        while len(self._keys) > API_KEY_CACHE_ENTRIES_MAX:
            self._keys.popitem(last=False)
        return row


def _role_name(role: int) -> str:
    return "the bootstrap admin token" if role == BOOTSTRAP else f"a {t.Role.Name(role)} key"
