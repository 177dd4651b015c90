"""The benchmark's cards and purchases.

Cards: one tenant, one PROCESSOR key and `cards` cards with the controls card programs use
(per-purchase, daily and monthly limits, a restaurant limit scoped to its MCCs, blocked MCCs such
as 7995 betting, an allow-list of countries, a review threshold), in five profiles: everyday
cards (most), tight-budget cards whose daily count runs out during the run, fleet cards limited
to fuel at the pump, travel cards with a country block-list instead of an allow-list, and a few
frozen cards. They are written straight into Postgres (COPY: issuing 10,000 cards over gRPC
would take longer than the measurement) and projected into Redis with `rebuild_projection`,
the path a server takes when it starts on an empty Redis, so the server sees exactly these.

Purchases: two passes over every card, each in a shuffled order, each purchase of one kind:
mostly everyday purchases that the controls approve, some at a blocked MCC, some from a country
the card does not allow, some above the card's per-purchase limit, some above its review
threshold, and a few for a card that does not exist. Window limits decline the tight cards'
purchases once their day is used up, and frozen cards decline everything; replays are added by
the load generator. Everything is drawn from a seeded RNG, so a seed reproduces the mix.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace

import asyncpg

from authz_server.auth import new_api_key_secret
from authz_server.config import Settings
from authz_server.controls import Controls, Limit, assign_scopes, controls_to_json
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.rebuild import RebuildReport, rebuild_projection
from authz_server.redis_state.scripts import Scripts
from authz_server.server import redis_client
from loadtest.loadgen import Workload
from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t

CARDS_MAX = 1_000_000  # keeps the seed (and the workload file, ~200 bytes a purchase) bounded
PURCHASE_PASSES = 2  # purchases per card in the workload: each pass covers every card once
POOL_SIZE_MAX = 4  # Postgres connections while seeding
INITIAL_POLICY_VERSION = 1

# Share of cards per profile; the rest are everyday cards.
PROFILE_SHARES = {"tight": 0.05, "fleet": 0.04, "travel": 0.05, "frozen": 0.01}
EUR_SHARE = 0.15  # everyday cards issued in EUR rather than USD

# Share of purchases per kind (they add up to 1).
KIND_SHARES = {
    "approve": 0.855,  # within the controls (tight and frozen cards decline some of these)
    "blocked_mcc": 0.05,  # at MCC 7995 (betting), blocked on every card
    "country": 0.04,  # from a country the card does not allow
    "review": 0.03,  # above the review threshold, within the limits
    "over_limit": 0.02,  # above the per-purchase limit
    "unknown_card": 0.005,  # a card id that was never issued
}
assert abs(sum(KIND_SHARES.values()) - 1.0) < 1e-9

BLOCKED_MCCS = ("7995", "6051")  # betting, quasi-cash: blocked on every card
EVERYDAY_MCCS = ("5411", "5812", "5814", "5541", "4111", "5999", "5311", "5732", "4121", "5912")
RESTAURANT_MCCS = ("5812", "5813", "5814")  # the MCC-scoped daily limit
FUEL_MCCS = ("5541", "5542")
COUNTRIES = {"USD": ("US", "CA", "MX", "GB"), "EUR": ("DE", "FR", "NL", "ES", "IT", "IE", "BE", "AT")}
FOREIGN_COUNTRIES = ("BR", "TH", "ZA", "IN", "VN")  # in no card's allow-list
BLOCKED_COUNTRIES = ("KP", "IR", "SY", "CU")  # travel cards block these instead
CITIES = {"US": "Boston", "CA": "Toronto", "MX": "Monterrey", "GB": "Leeds", "DE": "Hamburg", "FR": "Lyon"}

# Amounts in minor units (cents). Everyday purchases: log-normal around EVERYDAY_MEDIAN_MINOR.
EVERYDAY_MEDIAN_MINOR = 2_500
EVERYDAY_MIN_MINOR, EVERYDAY_MAX_MINOR = 50, 40_000
PER_PURCHASE_LIMIT_MINOR = 500_000
REVIEW_THRESHOLD_MINOR = 250_000
REVIEW_AMOUNTS_MINOR = (250_000, 450_000)  # between the threshold and the per-purchase limit
OVER_LIMIT_AMOUNTS_MINOR = (600_000, 2_000_000)


@dataclass(frozen=True)
class SeededCard:
    card_id: str
    profile: str
    currency: str
    state: int
    controls: Controls


def _controls(profile: str, currency: str) -> Controls:
    """The controls of a card of `profile`, as IssueCard would store them (scopes assigned)."""
    per_purchase = Limit(t.PER_AUTHORIZATION, PER_PURCHASE_LIMIT_MINOR, 0, ())
    if profile == "tight":
        limits: tuple[Limit, ...] = (
            Limit(t.PER_AUTHORIZATION, 20_000, 0, ()),
            Limit(t.DAILY, 15_000, 3, ()),
            Limit(t.MONTHLY, 100_000, 0, ()),
        )
        controls = Controls(
            limits,
            blocked_mccs=frozenset(BLOCKED_MCCS),
            allowed_countries=frozenset(COUNTRIES[currency]),
            review_threshold_minor=10_000,
        )
    elif profile == "fleet":
        limits = (
            Limit(t.PER_AUTHORIZATION, 30_000, 0, ()),
            Limit(t.DAILY, 60_000, 0, ()),
            Limit(t.MONTHLY, 400_000, 0, FUEL_MCCS),
        )
        controls = Controls(
            limits,
            allowed_mccs=frozenset(FUEL_MCCS),
            allowed_channels=frozenset({t.CARD_PRESENT}),
            allowed_countries=frozenset(COUNTRIES[currency]),
        )
    else:  # everyday, travel, frozen
        limits = (
            per_purchase,
            Limit(t.DAILY, 1_000_000, 100, ()),
            Limit(t.DAILY, 30_000, 0, RESTAURANT_MCCS),
            Limit(t.MONTHLY, 5_000_000, 0, ()),
        )
        travel = profile == "travel"
        controls = Controls(
            limits,
            blocked_mccs=frozenset(BLOCKED_MCCS),
            allowed_countries=frozenset() if travel else frozenset(COUNTRIES[currency]),
            blocked_countries=frozenset(BLOCKED_COUNTRIES) if travel else frozenset(),
            review_threshold_minor=REVIEW_THRESHOLD_MINOR,
        )
    return assign_scopes(controls, None, INITIAL_POLICY_VERSION)


def make_cards(count: int, run_id: str, rng: random.Random) -> list[SeededCard]:
    assert 1 <= count <= CARDS_MAX, f"cards must be in [1, {CARDS_MAX}], got {count}"
    cards = []
    for index in range(count):
        draw = rng.random()
        profile = "everyday"
        for name, share in PROFILE_SHARES.items():
            if draw < share:
                profile = name
                break
            draw -= share
        currency = "EUR" if profile == "everyday" and rng.random() < EUR_SHARE else "USD"
        state = t.FROZEN if profile == "frozen" else t.ACTIVE
        cards.append(SeededCard(f"bc-{run_id}-{index:07d}", profile, currency, state, _controls(profile, currency)))
    return cards


def _merchant(rng: random.Random, mcc: str, country: str) -> t.Merchant:
    return t.Merchant(
        id=f"m-{mcc}-{rng.randrange(1000):03d}",
        name=f"Bench merchant {mcc}",
        mcc=mcc,
        country=country,
        city=CITIES.get(country, "Capital"),
    )


def make_purchase(card: SeededCard, kind: str, rng: random.Random, run_id: str) -> authorization_pb2.AuthorizeRequest:
    """One purchase of `kind` on `card`, without its authorization id (the load generator
    adds one per call)."""
    home_countries = COUNTRIES[card.currency]
    if card.profile == "fleet":
        mcc, channel = rng.choice(FUEL_MCCS), t.CARD_PRESENT
    else:
        mcc = rng.choice(EVERYDAY_MCCS)
        channel = rng.choices((t.CARD_PRESENT, t.CONTACTLESS, t.ECOMMERCE), weights=(40, 35, 25))[0]
    country = rng.choice(home_countries)
    amount = round(rng.lognormvariate(0.0, 1.0) * EVERYDAY_MEDIAN_MINOR)
    amount = min(EVERYDAY_MAX_MINOR, max(EVERYDAY_MIN_MINOR, amount))
    card_id = card.card_id
    if kind == "blocked_mcc":
        mcc = BLOCKED_MCCS[0]
    elif kind == "country":
        country = rng.choice(BLOCKED_COUNTRIES if card.profile == "travel" else FOREIGN_COUNTRIES)
    elif kind == "review":
        amount = rng.randrange(*REVIEW_AMOUNTS_MINOR)
    elif kind == "over_limit":
        amount = rng.randrange(*OVER_LIMIT_AMOUNTS_MINOR)
    elif kind == "unknown_card":
        card_id = f"bc-{run_id}-missing-{rng.randrange(10**6):06d}"
    else:
        assert kind == "approve", kind
    return authorization_pb2.AuthorizeRequest(
        card_id=card_id,
        amount_minor=amount,
        currency=card.currency,
        merchant=_merchant(rng, mcc, country),
        channel=channel,
    )


def make_purchases(
    cards: list[SeededCard], rng: random.Random, run_id: str
) -> tuple[list[authorization_pb2.AuthorizeRequest], list[str]]:
    """PURCHASE_PASSES passes over every card, each shuffled; a kind drawn for each purchase."""
    kinds_by_share = list(KIND_SHARES)
    weights = list(KIND_SHARES.values())
    purchases, kinds = [], []
    for _ in range(PURCHASE_PASSES):
        order = list(cards)
        rng.shuffle(order)
        for card in order:
            kind = rng.choices(kinds_by_share, weights)[0]
            purchases.append(make_purchase(card, kind, rng, run_id))
            kinds.append(kind)
    return purchases, kinds


async def write_cards(
    pool: asyncpg.Pool, tenant_id: str, key_id: str, secret_hash: bytes, cards: list[SeededCard], keyspace: Keyspace
) -> None:
    """The tenant, its PROCESSOR key, the cards and their first policy version, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)", tenant_id, "Zentra bench")
        await conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, role, label, secret_hash) VALUES ($1, $2, $3, $4, $5)",
            key_id,
            tenant_id,
            t.PROCESSOR,
            "bench",
            secret_hash,
        )
        controls = [controls_to_json(card.controls) for card in cards]
        await conn.copy_records_to_table(
            "cards",
            columns=[
                "tenant_id", "card_id", "customer_ref", "account_ref", "currency", "state", "controls",
                "policy_version", "shard",
            ],
            records=[
                (
                    tenant_id, card.card_id, f"cust-{i}", f"acct-{i}", card.currency, card.state, control,
                    INITIAL_POLICY_VERSION, keyspace.shard_of(card.card_id),
                )
                for i, (card, control) in enumerate(zip(cards, controls, strict=True))
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "card_versions",
            columns=["tenant_id", "card_id", "policy_version", "state", "controls", "action", "actor_key_id"],
            records=[
                (tenant_id, card.card_id, INITIAL_POLICY_VERSION, card.state, control, "issue", key_id)
                for card, control in zip(cards, controls, strict=True)
            ],
        )
        written = await conn.fetchval("SELECT count(*) FROM cards WHERE tenant_id = $1", tenant_id)
    assert written == len(cards), (written, len(cards))


@dataclass(frozen=True)
class Seeded:
    workload: Workload
    cards: list[SeededCard]
    projection: RebuildReport
    seconds: float


async def seed(
    database_url: str, redis_url: str, settings: Settings, cards_count: int, run_id: str, rng_seed: int
) -> Seeded:
    """Writes the cards into Postgres, rebuilds the Redis projection under settings.key_prefix,
    and returns the workload for the load generators."""
    started = time.perf_counter()
    rng = random.Random(rng_seed)
    keyspace = Keyspace(settings.key_prefix, settings.shard_count)
    tenant_id = f"bench-{run_id}"
    key_id, secret, secret_hash = new_api_key_secret()
    cards = make_cards(cards_count, run_id, rng)
    purchases, kinds = make_purchases(cards, rng, run_id)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=POOL_SIZE_MAX)
    assert pool is not None
    # The server's own client (a blocking pool): the rebuild sends hundreds of scripts at once.
    redis = redis_client(replace(settings, redis_url=redis_url))
    try:
        await write_cards(pool, tenant_id, key_id, secret_hash, cards, keyspace)
        report = await rebuild_projection(
            pool, redis, keyspace, Scripts.register(redis), int(time.time() * 1000), settings.replay_retention_s
        )
    finally:
        await redis.aclose()
        await pool.close()
    workload = Workload(
        tenant_id,
        key_id,
        secret,
        settings.key_prefix,
        settings.shard_count,
        tuple(p.SerializeToString(deterministic=True) for p in purchases),
        tuple(kinds),
    )
    return Seeded(workload, cards, report, time.perf_counter() - started)


async def remove_seeded(database_url: str, tenant_id: str) -> None:
    """Deletes what `seed` wrote to a Postgres the benchmark does not own (DATABASE_URL)."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            for table in ("card_versions", "cards", "api_keys", "tenants"):
                await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
    finally:
        await conn.close()
