"""`make bench-ledger` (`python -m loadtest.ledger_bench`): how fast the ledger writer posts.

It runs a real `python -m authz_server` and a real `python -m ledger_writer` against private
embedded Redis and Postgres in a temporary directory (or REDIS_URL / DATABASE_URL if set,
under a run-unique key prefix and tenant), creates one tenant with `--cards` cards through
the public gRPC API, and measures two things:

1. Backlog drain: `--decisions` Authorize calls (`--in-flight` at a time) with NO writer
   running, so that every decision waits in the shard streams; then the writer starts and
   the clock runs from its readiness (metrics port answers) until every stream is empty and
   nothing is pending. Reported as decisions posted per second.
2. Catch-up after a burst: with the writer running, Authorize at `--rate` calls per second
   for `--burst-s` seconds; the stream backlog is sampled throughout, and when the traffic
   stops the clock runs until every stream is empty again.

Before it reports anything it checks Postgres: one authorization record per decision and one
hold per approval, or it exits 1. It prints a table and writes the numbers as JSON to
`loadtest/results/ledger.json` (or `--output`). `--quick` (2,000 decisions, a 3 s burst)
finishes within a minute on a 2-core machine. The writer's batching and concurrency are set
the usual way, through LEDGER_BATCH_COUNT_MAX, LEDGER_BATCH_WAIT_MS, LEDGER_WORKERS and
LEDGER_LANES in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ResponseError

from authz_server.redis_state.keys import Keyspace
from authz_server.store.migrate import migrate_url
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, prepare_dir
from ledger_writer.config import LedgerSettings
from ledger_writer.consumer import GROUP
from zentra.cards.v1 import (
    authorization_pb2,
    authorization_pb2_grpc,
    card_pb2,
    card_pb2_grpc,
    tenant_pb2,
    tenant_pb2_grpc,
)
from zentra.cards.v1 import types_pb2 as t

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "loadtest" / "results" / "ledger.json"
DECISIONS_DEFAULT = 20_000
DECISIONS_QUICK = 2_000
CARDS_DEFAULT = 200
CARDS_QUICK = 50
IN_FLIGHT_DEFAULT = 32  # Authorize calls in flight at once; more only queues on a 2-core machine
BURST_RATE_DEFAULT = 1_500  # Authorize per second in the burst: below what one server process answers on 2 cores
BURST_S_DEFAULT = 10.0
BURST_S_QUICK = 3.0
# A start-up includes imports, a Postgres connection, migrations and (server) the projection.
READY_TIMEOUT_S = 60.0
# Longest the writer may take to empty the streams before the run counts as failed.
DRAIN_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 15.0  # SIGTERM, then SIGKILL
CALL_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.02  # how often the stream backlog is sampled
LOG_TAIL_CHARS = 3000
BLOCKED_MCC = "7995"  # blocked on every bench card: those purchases decline
DECLINE_SHARE = 0.1  # share of purchases at the blocked MCC

# pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR that warns,
# although the fallback under /tmp is fine for a private benchmark server.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class BenchError(RuntimeError):
    """The benchmark could not run, or the ledger it produced is wrong; the message says why."""


# --- processes ---------------------------------------------------------------------------


class Child:
    """`python -m <module>` logging to `<work>/<name>.log`; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, module: str, env: dict[str, str], work_dir: Path) -> None:
        self.name = name
        self.log = work_dir / f"{name}.log"
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module], env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
            )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_until(ready: Callable[[], Awaitable[bool]], child: Child, what: str) -> float:
    """Polls `ready` until true; returns when (time.monotonic). BenchError if `child` dies or
    READY_TIMEOUT_S passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not await ready():
        child.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{what} within {READY_TIMEOUT_S:g}s")
        await asyncio.sleep(POLL_INTERVAL_S)
    return time.monotonic()


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on a Prometheus endpoint, keyed by (name, labels); OSError if it does not answer."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def metrics_answer(port: int) -> bool:
    try:
        await asyncio.to_thread(scrape, port)
        return True
    except OSError:
        return False


# --- the stores --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stores:
    redis_url: str
    database_url: str
    embedded: bool


@contextlib.contextmanager
def stores(work_dir: Path) -> Iterator[Stores]:
    """REDIS_URL / DATABASE_URL if set, else private embedded servers under `work_dir`
    (stopped on exit); migrations applied either way."""
    redis_server: EmbeddedRedis | None = None
    postgres: EmbeddedPostgres | None = None
    try:
        if os.environ.get("REDIS_URL"):
            redis_url = os.environ["REDIS_URL"]
        else:
            redis_server = EmbeddedRedis(work_dir / "redis")
            redis_server.start()
            redis_url = redis_server.url
        if os.environ.get("DATABASE_URL"):
            database_url = os.environ["DATABASE_URL"]
        else:
            postgres = EmbeddedPostgres(work_dir / "pg")
            postgres.start()
            database_url = postgres.url
        asyncio.run(migrate_url(database_url))
        yield Stores(redis_url, database_url, redis_server is not None and postgres is not None)
    finally:
        if postgres is not None:
            postgres.stop()
        if redis_server is not None:
            redis_server.stop()


# --- traffic -----------------------------------------------------------------------------


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


@dataclass
class Outcomes:
    """What the Authorize calls of one phase got back."""

    decisions: int = 0
    approvals: int = 0
    fail_closed: int = 0  # DECLINE / SYSTEM_UNAVAILABLE: the server's decision budget ran out
    errors: int = 0  # calls without an answer (none are expected)
    seconds: float = 0.0

    def add(self, response: authorization_pb2.AuthorizeResponse) -> None:
        self.decisions += 1
        self.approvals += response.decision == t.APPROVE
        self.fail_closed += response.reason == t.SYSTEM_UNAVAILABLE


@dataclass
class Demo:
    tenant_id: str
    processor_key: str
    card_ids: list[str]


async def create_tenant_and_cards(channel: grpc.aio.Channel, admin_token: str, cards: int, run_id: str) -> Demo:
    """A fresh tenant with a PROCESSOR key and `cards` USD cards without spend limits (only
    the blocked MCC), so that almost every purchase is approved and posts a hold."""
    tenants = tenant_pb2_grpc.TenantServiceStub(channel)
    card_service = card_pb2_grpc.CardServiceStub(channel)
    tenant_id = f"bench-{run_id}"
    admin = bearer(admin_token)
    await tenants.CreateTenant(tenant_pb2.CreateTenantRequest(tenant_id=tenant_id, name="ledger bench"), metadata=admin)
    keys = {
        role: (
            await tenants.CreateApiKey(
                tenant_pb2.CreateApiKeyRequest(tenant_id=tenant_id, role=role, label="ledger bench"), metadata=admin
            )
        ).secret
        for role in (t.ADMIN, t.PROCESSOR)
    }
    controls = t.SpendControls(blocked_mccs=[BLOCKED_MCC])

    async def issue(index: int) -> str:
        card = await card_service.IssueCard(
            card_pb2.IssueCardRequest(
                idempotency_key=f"bench-{run_id}-{index}",
                customer_ref=f"cust-{index}",
                account_ref=f"acct-{index}",
                currency="USD",
                spend_controls=controls,
            ),
            metadata=bearer(keys[t.ADMIN]),
            timeout=CALL_TIMEOUT_S,
        )
        return str(card.card_id)

    card_ids = list(await asyncio.gather(*(issue(i) for i in range(cards))))
    return Demo(tenant_id, keys[t.PROCESSOR], card_ids)


class Purchases:
    """Authorize requests with fresh ids over the demo cards: random amounts, and
    DECLINE_SHARE of them at the blocked MCC."""

    def __init__(self, demo: Demo, run_id: str, seed: int) -> None:
        self.demo = demo
        self.run_id = run_id
        self.rng = random.Random(seed)
        self.sent = 0

    def next(self) -> authorization_pb2.AuthorizeRequest:
        self.sent += 1
        mcc = BLOCKED_MCC if self.rng.random() < DECLINE_SHARE else "5812"
        return authorization_pb2.AuthorizeRequest(
            authorization_id=f"bench-{self.run_id}-{self.sent}",
            card_id=self.rng.choice(self.demo.card_ids),
            amount_minor=self.rng.randrange(100, 5_000),
            currency="USD",
            merchant=t.Merchant(id="m-bench", name="Bench Cafe", mcc=mcc, country="US", city="Boston"),
            channel=t.CARD_PRESENT,
        )


async def authorize_all(
    stub: authorization_pb2_grpc.AuthorizationServiceStub, purchases: Purchases, count: int, in_flight_max: int
) -> Outcomes:
    """`count` Authorize calls as fast as the server answers, `in_flight_max` at a time."""
    outcomes = Outcomes()
    metadata = bearer(purchases.demo.processor_key)
    remaining = iter(range(count))

    async def caller() -> None:
        for _ in remaining:  # a shared iterator: each call is made by exactly one caller
            try:
                outcomes.add(await stub.Authorize(purchases.next(), metadata=metadata, timeout=CALL_TIMEOUT_S))
            except grpc.aio.AioRpcError:
                outcomes.errors += 1

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(in_flight_max)))
    outcomes.seconds = time.monotonic() - started
    return outcomes


async def authorize_at_rate(
    stub: authorization_pb2_grpc.AuthorizationServiceStub,
    purchases: Purchases,
    rate_per_s: float,
    duration_s: float,
    in_flight_max: int,
) -> Outcomes:
    """Authorize calls started at `rate_per_s` for `duration_s` (a call whose turn comes while
    `in_flight_max` are outstanding waits, so the achieved rate can be lower); returns once
    every call is answered."""
    outcomes = Outcomes()
    metadata = bearer(purchases.demo.processor_key)
    slots = asyncio.Semaphore(in_flight_max)
    calls: list[asyncio.Task[None]] = []

    async def call(request: authorization_pb2.AuthorizeRequest) -> None:
        try:
            outcomes.add(await stub.Authorize(request, metadata=metadata, timeout=CALL_TIMEOUT_S))
        except grpc.aio.AioRpcError:
            outcomes.errors += 1
        finally:
            slots.release()

    started = time.monotonic()
    for index in range(int(rate_per_s * duration_s)):
        delay_s = started + index / rate_per_s - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await slots.acquire()
        calls.append(asyncio.create_task(call(purchases.next())))
    await asyncio.gather(*calls)
    outcomes.seconds = time.monotonic() - started
    return outcomes


# --- the backlog -------------------------------------------------------------------------


async def unposted(redis: aioredis.Redis, streams: Sequence[str]) -> tuple[int, int]:
    """(entries left in the shard streams, entries pending in the group): a stream holds
    exactly the decisions not yet posted and acknowledged."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
        lengths = await pipe.execute()
    pending = 0
    for stream, length in zip(streams, lengths, strict=True):
        if length:
            with contextlib.suppress(ResponseError):  # no group yet: nothing pending
                pending += int((await redis.xpending(stream, GROUP))["pending"])
    return sum(int(n) for n in lengths), pending


async def wait_drained(redis: aioredis.Redis, streams: Sequence[str], writer: Child, timeout_s: float) -> float:
    """Returns the time (time.monotonic) the streams were first seen empty with nothing pending."""
    deadline = time.monotonic() + timeout_s
    while await unposted(redis, streams) != (0, 0):
        writer.check_alive()
        if time.monotonic() > deadline:
            entries, pending = await unposted(redis, streams)
            raise BenchError(f"not drained within {timeout_s:g}s: {entries} entries left, {pending} pending")
        await asyncio.sleep(POLL_INTERVAL_S)
    return time.monotonic()


async def sample_backlog(redis: aioredis.Redis, streams: Sequence[str], peak: list[int], stop: asyncio.Event) -> None:
    """Keeps `peak[0]` at the largest backlog seen until `stop` is set."""
    while not stop.is_set():
        entries, _ = await unposted(redis, streams)
        peak[0] = max(peak[0], entries)
        await asyncio.sleep(POLL_INTERVAL_S)


# --- the checks and the report -----------------------------------------------------------


async def check_ledger(database_url: str, tenant_id: str, outcomes: Sequence[Outcomes]) -> None:
    """BenchError unless Postgres holds one authorization per decision and one hold per
    approval. A fail-closed answer whose own late attempt approved is voided: its hold is
    posted and released again, so such holds are allowed up to the fail-closed answers, each
    with exactly one release."""
    decisions = sum(o.decisions for o in outcomes)
    approvals = sum(o.approvals for o in outcomes)
    fail_closed = sum(o.fail_closed for o in outcomes)
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM authorizations WHERE tenant_id = $1) AS recorded,
                      count(*) FILTER (WHERE x.kind = 'hold' AND a.voided_at IS NULL) AS live_holds,
                      count(*) FILTER (WHERE x.kind = 'hold' AND a.voided_at IS NOT NULL) AS voided_holds,
                      count(*) FILTER (WHERE x.kind = 'void_release') AS releases
               FROM ledger_transactions x JOIN authorizations a USING (tenant_id, authorization_id)
               WHERE x.tenant_id = $1""",
            tenant_id,
        )
    finally:
        await conn.close()
    assert row is not None
    if row["recorded"] != decisions or row["live_holds"] != approvals:
        raise BenchError(
            f"the ledger is wrong: {row['recorded']} authorizations for {decisions} decisions, "
            f"{row['live_holds']} holds for {approvals} approvals"
        )
    if not row["voided_holds"] == row["releases"] <= fail_closed:
        raise BenchError(
            f"the ledger is wrong: {row['voided_holds']} voided holds, {row['releases']} releases, "
            f"{fail_closed} fail-closed answers"
        )


def histogram(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> tuple[float, float]:
    """(count, sum) of an unlabelled histogram."""
    return samples[(f"{name}_count", frozenset())], samples[(f"{name}_sum", frozenset())]


def print_report(result: dict[str, Any]) -> None:
    backlog, burst = result["backlog"], result["burst"]
    rows = [
        ("backlog", "decisions in the streams before the writer started", f"{backlog['decisions']:,}"),
        ("backlog", "Authorize calls per second (no writer)", f"{backlog['authorize_per_s']:,.0f}"),
        ("backlog", "approvals / failed closed", f"{backlog['approvals']:,} / {backlog['fail_closed']:,}"),
        ("backlog", "seconds to drain, from writer ready", f"{backlog['drain_s']:.2f}"),
        ("backlog", "decisions posted per second", f"{backlog['posted_per_s']:,.0f}"),
        ("backlog", "mean records per batch", f"{backlog['mean_batch_records']:.1f}"),
        ("backlog", "mean commit, ms", f"{backlog['mean_commit_ms']:.1f}"),
        ("burst", "Authorize per second, offered", f"{burst['offered_per_s']:,.0f}"),
        ("burst", "Authorize per second, achieved", f"{burst['achieved_per_s']:,.0f}"),
        ("burst", "decisions during the burst", f"{burst['decisions']:,}"),
        ("burst", "approvals / failed closed", f"{burst['approvals']:,} / {burst['fail_closed']:,}"),
        ("burst", "largest backlog seen, entries", f"{burst['backlog_peak_entries']:,}"),
        ("burst", "backlog when the traffic stopped, entries", f"{burst['backlog_at_stop_entries']:,}"),
        ("burst", "seconds until every stream was empty", f"{burst['catch_up_s']:.2f}"),
    ]  # fmt: skip
    width = max(len(what) for _, what, _ in rows)
    print(f"\nledger writer benchmark ({result['machine']['cpus']} CPUs, {result['config']['stack']} stack)")
    for phase, what, number in rows:
        print(f"  {phase:<8} {what:<{width}}  {number:>15}")


# --- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    decisions: int
    cards: int
    in_flight: int
    rate_per_s: float
    burst_s: float
    seed: int
    output: Path


async def measure(options: Options, backing: Stores, work_dir: Path) -> dict[str, Any]:
    """Both phases against `backing`; returns the result document."""
    run_id = secrets.token_hex(4)
    admin_token = secrets.token_urlsafe(32)
    port = free_port()
    writer_port = free_port()
    shared = {
        **os.environ,
        "REDIS_URL": backing.redis_url,
        "DATABASE_URL": backing.database_url,
        "AUTHZ_KEY_PREFIX": f"lb{run_id}",
        "AUTHZ_LOG_LEVEL": "WARNING",
    }
    writer_env = {**shared, "LEDGER_METRICS_PORT": str(writer_port), "LEDGER_WRITER_SLOT": "0"}
    writer_settings = LedgerSettings.from_env(writer_env)
    server_env = {
        **shared,
        "AUTHZ_ADMIN_TOKEN": admin_token,
        "AUTHZ_LISTEN_ADDR": f"127.0.0.1:{port}",
        "AUTHZ_METRICS_PORT": "0",
    }
    streams = Keyspace(writer_settings.key_prefix, writer_settings.shard_count).streams()
    redis = aioredis.Redis.from_url(backing.redis_url)
    server = Child("authz-server", "authz_server", server_env, work_dir)
    writer: Child | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                except grpc.aio.AioRpcError:
                    return False
                return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

            await wait_until(serving, server, "authz-server did not report SERVING")
            demo = await create_tenant_and_cards(channel, admin_token, options.cards, run_id)
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            purchases = Purchases(demo, run_id, options.seed)

            # Phase 1: a backlog with no writer, then the writer drains it.
            backlog = await authorize_all(stub, purchases, options.decisions, options.in_flight)
            # One entry per decision, plus one per fail-closed answer that voided its own late approval.
            entries, _ = await unposted(redis, streams)
            if not backlog.decisions <= entries <= backlog.decisions + backlog.fail_closed:
                raise BenchError(f"{entries} entries in the streams for {backlog.decisions} decisions")
            writer = Child("ledger-writer", "ledger_writer", writer_env, work_dir)
            ready_at = await wait_until(
                lambda: metrics_answer(writer_port), writer, "ledger-writer metrics did not answer"
            )
            drained_at = await wait_drained(redis, streams, writer, DRAIN_TIMEOUT_S)
            drain_s = drained_at - ready_at
            batches, records = histogram(scrape(writer_port), "zentra_ledger_batch_size_records")
            commits, commit_s = histogram(scrape(writer_port), "zentra_ledger_commit_duration_seconds")
            await check_ledger(backing.database_url, demo.tenant_id, [backlog])

            # Phase 2: steady traffic with the writer running, then the time to catch up.
            stop_sampling = asyncio.Event()
            peak = [0]
            sampler = asyncio.create_task(sample_backlog(redis, streams, peak, stop_sampling))
            burst = await authorize_at_rate(stub, purchases, options.rate_per_s, options.burst_s, options.in_flight)
            stopped_at = time.monotonic()
            stop_sampling.set()
            await sampler
            at_stop, _ = await unposted(redis, streams)
            caught_up_at = await wait_drained(redis, streams, writer, DRAIN_TIMEOUT_S)
            await check_ledger(backing.database_url, demo.tenant_id, [backlog, burst])
    finally:
        for child in (server, writer):
            if child is not None:
                child.stop()
        await redis.aclose()
    if backlog.errors or burst.errors:
        raise BenchError(f"{backlog.errors + burst.errors} Authorize calls got no answer; see {server.log}")
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "config": {
            "stack": "embedded" if backing.embedded else "REDIS_URL/DATABASE_URL",
            "cards": options.cards,
            "in_flight": options.in_flight,
            "shards": writer_settings.shard_count,
            "batch_count_max": writer_settings.batch_count_max,
            "batch_wait_ms": writer_settings.batch_wait_ms,
            "workers": writer_settings.workers,
            "lanes": writer_settings.lanes,
            "seed": options.seed,
        },
        "backlog": {
            "decisions": backlog.decisions,
            "stream_entries": entries,
            "approvals": backlog.approvals,
            "fail_closed": backlog.fail_closed,
            "authorize_per_s": backlog.decisions / backlog.seconds,
            "drain_s": drain_s,
            "posted_per_s": backlog.decisions / drain_s,
            "entries_per_s": entries / drain_s,
            "batches": int(batches),
            "mean_batch_records": records / batches,
            "mean_commit_ms": 1000 * commit_s / commits,
        },
        "burst": {
            "offered_per_s": options.rate_per_s,
            "achieved_per_s": burst.decisions / burst.seconds,
            "seconds": burst.seconds,
            "decisions": burst.decisions,
            "approvals": burst.approvals,
            "fail_closed": burst.fail_closed,
            "backlog_peak_entries": max(peak[0], at_stop),
            "backlog_at_stop_entries": at_stop,
            "catch_up_s": caught_up_at - stopped_at,
        },
    }


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.ledger_bench",
        description="How fast the ledger writer posts (see the module docstring).",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{DECISIONS_QUICK:,} decisions, a {BURST_S_QUICK:g} s burst"
    )
    parser.add_argument("--decisions", type=int, help=f"backlog size (default {DECISIONS_DEFAULT:,})")
    parser.add_argument("--cards", type=int, help=f"cards the traffic spreads over (default {CARDS_DEFAULT})")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT_DEFAULT, help="Authorize calls in flight at once")
    parser.add_argument("--rate", type=float, default=BURST_RATE_DEFAULT, help="Authorize per second in the burst")
    parser.add_argument("--burst-s", type=float, help=f"burst length in seconds (default {BURST_S_DEFAULT:g})")
    parser.add_argument("--seed", type=int, default=None, help="seed of the purchase mix (default: random)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    options = Options(
        decisions=args.decisions or (DECISIONS_QUICK if args.quick else DECISIONS_DEFAULT),
        cards=args.cards or (CARDS_QUICK if args.quick else CARDS_DEFAULT),
        in_flight=args.in_flight,
        rate_per_s=args.rate,
        burst_s=args.burst_s or (BURST_S_QUICK if args.quick else BURST_S_DEFAULT),
        seed=random.randrange(1 << 32) if args.seed is None else args.seed,
        output=args.output,
    )
    for name, low, high in (("decisions", 1, 10_000_000), ("cards", 1, 100_000), ("in_flight", 1, 10_000)):
        if not low <= getattr(options, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    if not 0 < options.rate_per_s <= 1_000_000 or not 0 < options.burst_s <= 3600:
        parser.error("--rate must be in (0, 1000000] and --burst-s in (0, 3600]")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark; 0 with the JSON written, 1 if it could not run or the ledger was wrong."""
    options = parse_options(argv)
    work_dir = prepare_dir(Path(tempfile.mkdtemp(prefix="zentra-ledger-bench-")))
    print(f"ledger bench: {options.decisions:,} decisions over {options.cards} cards (seed {options.seed})")
    try:
        with stores(work_dir) as backing:
            result = asyncio.run(measure(options, backing, work_dir))
    except BenchError as error:
        print(f"ledger bench: {error}\n(process logs kept in {work_dir})", file=sys.stderr)
        return 1
    shutil.rmtree(work_dir, ignore_errors=True)
    print_report(result)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
