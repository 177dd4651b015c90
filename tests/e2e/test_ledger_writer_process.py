"""The real `python -m ledger_writer` process: SIGKILLed at random moments under live Authorize traffic it still posts every decision exactly once, its Prometheus metrics tell the truth, two writer processes share the streams without posting anything twice, and its worker processes split the streams, stop together and die with their parent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from devstack.embedded import free_port
from ledger_writer.consumer import GROUP
from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import Backing, Ledger, ThreadedServer
from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
# A cold writer imports, connects and migrates before its metrics port answers.
WRITER_READY_TIMEOUT_S = 30.0
# DESIGN §4: after a crash the ledger catches up within a minute.
CATCH_UP_TIMEOUT_S = 60.0
WRITER_STOP_TIMEOUT_S = 15.0
KILLS_MIN = 5
# Small batches, so that a kill lands between many commits and acknowledgements.
BATCH_COUNT_MAX = 50
CALLS_IN_FLIGHT = 16  # Authorize calls the traffic thread keeps in flight at once
CALL_TIMEOUT_S = 30.0
RETRY_SHARE = 0.05  # share of calls that repeat an earlier request (same id, same fields)
MCCS = ["5812", "5411", "7995", "4111"]  # 7995 is blocked on every card
AMOUNTS_MINOR = [100, 700, 2500, 9500]  # 9500 is over every card's review threshold


# --- the writer process ------------------------------------------------------------------


@dataclass
class WriterProcess:
    """One `python -m ledger_writer`; `metrics_url` answers once it is ready."""

    process: subprocess.Popen[bytes]
    slot: int
    metrics_port: int
    log: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def wait_ready(self, timeout_s: float = WRITER_READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"writer-{self.slot} exited with {self.process.returncode}:\n{self.log_tail()}"
            )
            try:
                scrape_text(self.metrics_port)
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"writer-{self.slot} metrics port did not answer within {timeout_s}s:\n{self.log_tail()}")

    def sigkill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def sigterm(self) -> int:
        """Asks it to stop; returns its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(WRITER_STOP_TIMEOUT_S)

    def workers(self) -> list[int]:
        """The pids of its worker processes (none when it posts alone)."""
        return children_of(self.process.pid)


StartWriter = Callable[..., WriterProcess]


def children_of(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                children.append(int(entry))
    return children


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


@pytest.fixture
def start_writer(backing: Backing, tmp_path: Path) -> Iterator[StartWriter]:
    """Starts a ready writer process for a slot (on a fresh metrics port, logging to
    `<tmp>/writer-<slot>.log`, appended across restarts); kills every one still running at
    teardown."""
    started: list[WriterProcess] = []

    def start(slot: int, **overrides: str) -> WriterProcess:
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": backing.redis_url,
            "DATABASE_URL": backing.database_url,
            "AUTHZ_KEY_PREFIX": backing.key_prefix,
            "LEDGER_METRICS_PORT": str(port),
            "LEDGER_WRITER_SLOT": str(slot),
            "LEDGER_CLAIM_IDLE_MS": "1000",
            "LEDGER_BATCH_COUNT_MAX": str(BATCH_COUNT_MAX),
            **overrides,
        }
        log = tmp_path / f"writer-{slot}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger_writer"], env=env, cwd=REPO, stdout=sink, stderr=sink
            )
        writer = WriterProcess(process, slot, port, log)
        started.append(writer)
        writer.wait_ready()
        return writer

    try:
        yield start
    finally:
        for writer in started:
            if writer.process.poll() is None:
                writer.process.kill()
                writer.process.wait()


@pytest.fixture(autouse=True)
def _streams_drained_around(ledger: Ledger) -> Iterator[None]:
    """Every test starts from empty streams, and leaves none behind if it failed midway."""
    ledger.drain()
    yield
    ledger.drain()


# --- metrics -----------------------------------------------------------------------------


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(writer: WriterProcess) -> Samples:
    """Every sample the writer exposes, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(scrape_text(writer.metrics_port))
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; fails naming the metric if it is not exposed."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels or ''} is not exposed"
    return samples[key]


# --- traffic -----------------------------------------------------------------------------


@dataclass
class Answer:
    decision: int
    reason: int
    amount_minor: int


@dataclass
class Traffic:
    """Authorize calls on a background thread until `stop()`: CALLS_IN_FLIGHT at a time over
    the tenants' cards, mixed so that some approve, some decline (MCC, country, daily limit)
    and some go to review, with a few retries of earlier requests. A call without an answer
    is retried with the same request until it gets one, so `answers` holds every decision
    the server answered, keyed by (tenant id, authorization id)."""

    api: Api
    tenants: list[TenantKeys]
    seed: int
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    retries: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> Traffic:
        rng = random.Random(self.seed)
        cards: list[tuple[TenantKeys, str]] = []
        for tenant in self.tenants:
            for _ in range(4):
                controls = t.SpendControls(
                    spending_limits=[
                        t.SpendLimit(interval=t.DAILY, amount_minor=rng.choice([50_000, 200_000, 5_000_000]))
                    ],
                    blocked_mccs=["7995"],
                    blocked_countries=["RU"],
                    review_threshold_minor=9_000,
                )
                cards.append((tenant, self.api.issue_card(tenant, controls).card_id))
        self._thread = threading.Thread(target=self._run, args=(rng, cards), name="authorize-traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self, rng: random.Random, cards: list[tuple[TenantKeys, str]]) -> None:
        sent: list[tuple[TenantKeys, authorization_pb2.AuthorizeRequest]] = []
        try:
            while not self._stop.is_set():
                wave = []
                for _ in range(CALLS_IN_FLIGHT):
                    if sent and rng.random() < RETRY_SHARE:
                        wave.append(rng.choice(sent))
                        self.retries += 1
                        continue
                    tenant, card_id = rng.choice(cards)
                    request = self.api.authorize_request(
                        card_id,
                        rng.choice(AMOUNTS_MINOR),
                        mcc=rng.choice(MCCS),
                        country=rng.choice(["US", "US", "US", "RU"]),
                    )
                    wave.append((tenant, request))
                    sent.append((tenant, request))
                futures = [
                    (tenant, request, self.api.authz.Authorize.future(
                        request, metadata=bearer(tenant.processor), timeout=CALL_TIMEOUT_S
                    ))
                    for tenant, request in wave
                ]  # fmt: skip
                for tenant, request, future in futures:
                    try:
                        response = future.result()
                    except grpc.RpcError:
                        response = self._answer(tenant, request)
                    key = (tenant.tenant_id, response.authorization_id)
                    before = self.answers.get(key)
                    if before is not None and response.reason == t.SYSTEM_UNAVAILABLE and not response.replayed:
                        continue  # the retry itself failed closed (machine overloaded); the stored answer stands
                    assert before is None or before.decision == response.decision, (
                        f"{key}: a retry answered {response.decision} after {before.decision}"
                    )
                    self.answers[key] = Answer(response.decision, response.reason, request.amount_minor)
        except BaseException as error:  # reported by stop(), on the test's thread
            self._error = error

    def _answer(
        self, tenant: TenantKeys, request: authorization_pb2.AuthorizeRequest
    ) -> authorization_pb2.AuthorizeResponse:
        """The same request again until it is answered (replay-safe by design)."""
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            try:
                response: authorization_pb2.AuthorizeResponse = self.api.authz.Authorize(
                    request, metadata=bearer(tenant.processor), timeout=CALL_TIMEOUT_S
                )
                return response
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> dict[tuple[str, str], Answer]:
        """Stops after the wave in flight is answered; returns every answer."""
        self._stop.set()
        assert self._thread is not None
        self._thread.join(CALL_TIMEOUT_S * 2)
        assert not self._thread.is_alive(), "the traffic thread did not stop"
        assert self._error is None, f"the traffic thread failed: {self._error!r} (seed {self.seed})"
        return self.answers


# --- catching up and the ledger checks ---------------------------------------------------


def unposted(client: redis.Redis, streams: list[str]) -> tuple[int, int]:
    """(entries left in the shard streams, entries pending in the group): both 0 once every
    decision is posted and acknowledged."""
    entries = sum(int(client.xlen(stream)) for stream in streams)
    pending = 0
    for stream in streams:
        summary = client.xpending(stream, GROUP)
        pending += int(summary["pending"])
    return entries, pending


def pending_at(client: redis.Redis, streams: list[str], consumer: str) -> int:
    """Entries delivered to `consumer` and not yet acknowledged."""
    return sum(
        int(row["pending"])
        for stream in streams
        for row in client.xinfo_consumers(stream, GROUP)
        if row["name"] in (consumer, consumer.encode())
    )


def wait_caught_up(client: redis.Redis, streams: list[str], writers: list[WriterProcess]) -> float:
    """Seconds until every stream is empty and nothing is pending; fails after CATCH_UP_TIMEOUT_S."""
    started = time.monotonic()
    while time.monotonic() - started < CATCH_UP_TIMEOUT_S:
        for writer in writers:
            assert writer.process.poll() is None, f"writer-{writer.slot} died:\n{writer.log_tail()}"
        if unposted(client, streams) == (0, 0):
            return time.monotonic() - started
        time.sleep(0.1)
    entries, pending = unposted(client, streams)
    raise AssertionError(
        f"not caught up within {CATCH_UP_TIMEOUT_S:g}s: {entries} entries in the streams, {pending} pending"
    )


def check_ledger(ledger: Ledger, tenants: list[TenantKeys], answers: dict[tuple[str, str], Answer]) -> None:
    """DESIGN §5.2-§5.4 for every answered decision. A fail-closed answer whose own late
    attempt had approved is voided: its hold exists and is released, so it must also have
    exactly one hold (and only such answers may have one besides the approvals)."""
    ids = [tenant.tenant_id for tenant in tenants]
    voided = {
        (row["tenant_id"], row["authorization_id"])
        for row in ledger.fetch(
            """SELECT a.tenant_id, a.authorization_id FROM authorizations a
               JOIN ledger_transactions x USING (tenant_id, authorization_id)
               WHERE a.tenant_id = ANY($1::text[]) AND a.voided_at IS NOT NULL AND x.kind = 'hold'""",
            ids,
        )
    }
    for key in voided:
        assert answers[key].reason == t.SYSTEM_UNAVAILABLE, f"{key} was voided but answered {answers[key]}"
    holds = {key: a.amount_minor for key, a in answers.items() if a.decision == t.APPROVE or key in voided}
    ledger_checks.assert_every_decision_recorded(ledger.fetch, {k: a.decision for k, a in answers.items()}, ids)
    ledger_checks.assert_one_hold_per_approval(ledger.fetch, holds, ids)
    ledger_checks.assert_balanced(ledger.fetch, ids)
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, ids)


# --- the tests ---------------------------------------------------------------------------


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    api: Api, ledger: Ledger, server: ThreadedServer, backing: Backing, start_writer: StartWriter
) -> None:
    seed = int(os.environ.get("ZENTRA_TEST_SEED") or random.randrange(1 << 32))
    print(f"seed {seed} (rerun with ZENTRA_TEST_SEED={seed})")
    rng = random.Random(seed)
    slot = 41
    client = redis.Redis.from_url(backing.redis_url)
    streams = server.server.keyspace.streams()
    tenants = [api.new_tenant() for _ in range(3)]
    traffic = Traffic(api, tenants, seed).start()
    left_pending = []  # per kill: entries the dead writer had read but not acknowledged
    try:
        for _ in range(KILLS_MIN + rng.randrange(3)):
            writer = start_writer(slot)
            time.sleep(rng.uniform(0.2, 1.5))
            writer.sigkill()
            left_pending.append(pending_at(client, streams, f"writer-{slot}"))
            time.sleep(rng.uniform(0.0, 0.5))  # sometimes a gap with no writer at all
    finally:
        answers = traffic.stop()
    assert any(left_pending), f"no kill landed mid-batch: {left_pending} (seed {seed})"
    assert traffic.retries > 0 and len(answers) > 200, f"too little traffic: {len(answers)} (seed {seed})"
    outcomes = {t.Reason.Name(a.reason) for a in answers.values()}
    assert {"APPROVED", "MCC_NOT_ALLOWED", "REVIEW_REQUIRED"} <= outcomes, f"{outcomes} (seed {seed})"
    assert unposted(client, streams) != (0, 0), "the kills must leave work behind for the last writer"

    last = start_writer(slot)
    took_s = wait_caught_up(client, streams, [last])
    print(f"{len(answers)} decisions; pending after each kill {left_pending}; caught up in {took_s:.1f}s")
    check_ledger(ledger, tenants, answers)
    assert last.sigterm() == 0, last.log_tail()
    assert "ledger-writer stopped" in last.log_tail()


def test_metrics_of_the_writer_process(
    api: Api, server: ThreadedServer, backing: Backing, start_writer: StartWriter
) -> None:
    # The streams are empty (the autouse fixture drained them) and the server is in-process:
    # every entry the new process sees comes from the calls below, so its counters are exact.
    tenant = api.new_tenant()
    card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"], review_threshold_minor=9_000))
    approvals = [api.authorize(tenant.processor, card.card_id, 100 + i) for i in range(30)]
    declines = [api.authorize(tenant.processor, card.card_id, 100, mcc="7995") for _ in range(5)]
    reviews = [api.authorize(tenant.processor, card.card_id, 9_500) for _ in range(2)]
    retry = api.authorize_request(card.card_id, 55)
    for _ in range(2):
        api.authz.Authorize(retry, metadata=bearer(tenant.processor))
    assert {r.decision for r in approvals} == {t.APPROVE}
    assert {r.decision for r in declines} == {t.DECLINE} and {r.decision for r in reviews} == {t.REVIEW}
    decisions = len(approvals) + len(declines) + len(reviews) + 1
    holds = len(approvals) + 1

    writer = start_writer(42)
    wait_caught_up(redis.Redis.from_url(backing.redis_url), server.server.keyspace.streams(), [writer])
    shards = [str(shard) for shard in range(server.settings.shard_count)]
    deadline = time.monotonic() + 10  # the lag gauges are refreshed every second
    while True:
        samples = scrape(writer)
        lags = [value(samples, "zentra_ledger_lag_entries", shard=shard) for shard in shards]
        if not any(lags) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lags == [0.0] * len(shards), f"lag per shard must reach 0: {lags}"
    assert value(samples, "zentra_ledger_batch_size_records_count") > 0
    assert value(samples, "zentra_ledger_batch_size_records_sum") == decisions
    assert value(samples, "zentra_ledger_commit_duration_seconds_count") > 0
    assert value(samples, "zentra_ledger_postings_total", kind="hold") == holds
    assert value(samples, "zentra_ledger_authorizations_recorded_total") == decisions
    assert value(samples, "zentra_ledger_events_total", type="card.authorization.requested") == decisions
    assert value(samples, "zentra_ledger_dead_letters_total") == 0
    assert writer.sigterm() == 0, writer.log_tail()


def test_two_writer_processes_share_the_streams_without_double_posting(
    api: Api, ledger: Ledger, server: ThreadedServer, backing: Backing, start_writer: StartWriter
) -> None:
    seed = int(os.environ.get("ZENTRA_TEST_SEED") or random.randrange(1 << 32))
    print(f"seed {seed} (rerun with ZENTRA_TEST_SEED={seed})")
    writers = [start_writer(1), start_writer(2)]
    tenants = [api.new_tenant() for _ in range(2)]
    traffic = Traffic(api, tenants, seed).start()
    try:
        time.sleep(4)
    finally:
        answers = traffic.stop()
    assert len(answers) > 200, f"too little traffic: {len(answers)} (seed {seed})"
    wait_caught_up(redis.Redis.from_url(backing.redis_url), server.server.keyspace.streams(), writers)
    check_ledger(ledger, tenants, answers)
    recorded = [value(scrape(w), "zentra_ledger_authorizations_recorded_total") for w in writers]
    assert all(n > 0 for n in recorded), f"both writers must record authorizations: {recorded} (seed {seed})"
    assert sum(recorded) == len(answers), "each decision is recorded once, by one of them"
    for writer in writers:
        assert writer.sigterm() == 0, writer.log_tail()


def test_worker_processes_split_the_streams_and_one_failing_stops_them_all(
    api: Api, ledger: Ledger, server: ThreadedServer, backing: Backing, start_writer: StartWriter
) -> None:
    client = redis.Redis.from_url(backing.redis_url)
    streams = server.server.keyspace.streams()
    writer = start_writer(61, LEDGER_WORKERS="2")
    pids = writer.workers()
    assert len(pids) == 2, f"two worker processes: {pids}"
    log = writer.log_tail()
    assert "(worker 0 of 2) consuming 8 shard streams" in log and "(worker 1 of 2) consuming 8 shard streams" in log
    tenants = [api.new_tenant()]
    traffic = Traffic(api, tenants, seed=61).start()
    try:
        time.sleep(2)
    finally:
        answers = traffic.stop()
    wait_caught_up(client, streams, [writer])
    check_ledger(ledger, tenants, answers)
    recorded = value(scrape(writer), "zentra_ledger_authorizations_recorded_total")
    assert recorded == len(answers), "the parent reports both workers' counts"

    os.kill(pids[1], signal.SIGKILL)  # one worker dies: the set stops, for its supervisor to restart it
    assert writer.process.wait(WRITER_STOP_TIMEOUT_S) != 0, "the parent reports the failure"
    deadline = time.monotonic() + WRITER_STOP_TIMEOUT_S
    while alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pids[0]), "the other worker stopped too"
    more = Traffic(api, tenants, seed=62).start()
    try:
        time.sleep(1)
    finally:
        answers |= more.stop()
    restarted = start_writer(61, LEDGER_WORKERS="2")
    wait_caught_up(client, streams, [restarted])
    check_ledger(ledger, tenants, answers)
    assert restarted.sigterm() == 0, restarted.log_tail()
    assert "ledger-writer stopped (workers exited with [0, 0])" in restarted.log_tail()


def test_workers_die_with_their_parent(backing: Backing, start_writer: StartWriter) -> None:
    writer = start_writer(62, LEDGER_WORKERS="2")
    pids = writer.workers()
    assert len(pids) == 2
    writer.sigkill()
    deadline = time.monotonic() + WRITER_STOP_TIMEOUT_S
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids), "no worker outlives a killed parent"
