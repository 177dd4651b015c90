"""`make bench` (`python -m loadtest`): Authorize against the limits of the machine it runs on.

One run, one load generator (`loadtest.loadgen`, a process of its own), four measurements:

(a) the real server: `python -m authz_server` with AUTHZ_WORKERS workers and its default 50 ms
    decision budget (fail-closed answers are counted, not hidden, and not counted as decisions),
    on cards seeded into Postgres and projected into Redis (`loadtest.seed`). A warm-up puts
    every card through every worker (policy caches as in steady state); then a closed loop finds
    the maximum throughput at a fixed concurrency, and an open loop offers fixed fractions of
    that maximum, latency measured from each call's scheduled send time.
(b) the null server (`loadtest.null_server`): the same proto, workers and server options,
    answering a constant response: the same closed loop and the same absolute open-loop rates.
    Its numbers are the ceiling of gRPC-in-Python here; real / null says what the decision adds.
(c) the Redis step alone (`loadtest.redis_only`): authorize.lua called directly with the ARGV the
    server would send, at the same total concurrency, from one process per server worker.
(d) the ledger writer (`loadtest.ledger_bench`, run against the same stores): decisions posted
    per second draining a backlog, and the lag after a burst at the real server's maximum rate.

The two servers run side by side, and every measurement of the real server is paired at once
with the same one of the null server, so that a pair shares the machine's conditions. The two
measurements the targets are about (the closed loop, and the open loop at half the real max)
are made in several pairs (--repeats, 3 by default), the order alternating, real first then
null first, so that the machine's speed drifting during the run does not favour one server; the
table and the targets report the pair with the median real/null ratio and list the others.
(One pair of 12 s phases gave a throughput ratio anywhere from 0.47 to 0.70 between runs of the
same code: the null server alone moved from 5,179 to 7,121 per second.) The machine may be
shared: each phase reports how much CPU other processes took meanwhile ("other CPU"), waits for
a quiet moment before it starts, and is measured again if it was disturbed.

It prints one table (`loadtest.report`), writes the result to loadtest/results/bench.json (and
the table as Markdown next to it) and the picture to loadtest/results/latency.png. No ledger
writer consumes the real server's decisions while it is measured (the writer is measured in (d)).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis as sync_redis
from prometheus_client.parser import text_string_to_metric_families

from authz_server.config import Settings
from devstack.embedded import free_port, prepare_dir
from devstack.run import DevstackError
from loadtest import report
from loadtest.seed import KIND_SHARES, Seeded, remove_seeded, seed
from loadtest.stack import (
    BenchError,
    Child,
    StopRequested,
    Stores,
    background_cores,
    cpu_sample,
    gather_json,
    install_stop_signals,
    run_json,
    server_env,
    start_null_server,
    stores,
    wait_for_quiet,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "loadtest" / "results"
# Beyond a phase's own length, how long a load generator may take to start, connect and report.
LOADGEN_SLACK_S = 60.0
# The Redis-only processes read the workload and plan every purchase before they measure;
# their measured phases start together this long after they are launched.
REDIS_ONLY_PREPARE_S = 6.0
REDIS_ONLY_PREPARE_S_QUICK = 3.0
REDIS_ONLY_WARMUP_S = 1.0  # scripts cached, connections open, before the measured phase
WARM_CALLS_PER_S_MIN = 200  # a warm-up slower than this (every card through every worker) fails
NULL_WARMUP_S = 2.0  # the null server has no caches: this only opens connections and warms code
NULL_WARMUP_S_QUICK = 0.5
# The machine may be shared. Before each phase the benchmark waits for a QUIET_SAMPLE_S window
# in which other processes take less than NOISE_CORES_MAX cores (at most QUIET_WAIT_S_MAX in all
# in a run); a phase during which they took more is measured again, at most NOISY_RETRIES_MAX
# times in a run. These bounds keep a full run under five minutes. Each phase reports what
# other processes took.
NOISE_CORES_MAX = 0.25
QUIET_SAMPLE_S = 1.0
QUIET_WAIT_S_MAX = 30.0
NOISY_RETRIES_MAX = 3
NOISY_RETRIES_PER_PHASE_MAX = 2  # so that one long disturbance does not use up the run's retries
LEDGER_TIMEOUT_S = 600.0  # the ledger benchmark's whole run
METRICS_TIMEOUT_S = 5.0
REDIS_DELETE_BATCH = 1000  # keys unlinked per round trip when cleaning up a Redis we do not own


@dataclass(frozen=True)
class Options:
    quick: bool
    workers: int
    channels: int
    concurrency: int
    cards: int
    seed: int
    closed_s: float
    open_s: float
    rate_fractions: tuple[float, ...]
    balance: bool
    repeats: int
    output: Path
    png: Path


_STARTED = time.monotonic()


def say(line: str) -> None:
    """A progress line, stamped with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _STARTED:5.1f} s] {line}" if line else "", flush=True)


# --- the machine -------------------------------------------------------------------------


def _proc_field(path: str, name: str) -> str:
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def describe_machine(backing: Stores) -> dict[str, Any]:
    memory_kb = _proc_field("/proc/meminfo", "MemTotal").split()[0]
    client = sync_redis.Redis.from_url(backing.redis_url)
    try:
        server = client.info("server")
    finally:
        client.close()
    postgres = asyncio.run(_postgres_version(backing.database_url))
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(memory_kb) / 2**20, 1) if memory_kb.isdigit() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis": f"{server.get('server_name', 'redis')} {server.get('valkey_version') or server.get('redis_version')}",
        "postgres": postgres,
    }


async def _postgres_version(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --- the servers' metrics ------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=METRICS_TIMEOUT_S) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def server_counters(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, Any]:
    """What the real server says about a phase: fail-closed answers by cause, policy cache
    misses, calls per worker, and the mean time of the Redis step and of the whole decision."""

    def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    def by_label(name: str, label: str) -> dict[str, int]:
        keys = {k for k in after if k[0] == name}
        return {dict(k[1])[label]: int(delta(name, k[1])) for k in sorted(keys) if delta(name, k[1])}

    def mean_ms(histogram: str) -> float | None:
        count = delta(f"{histogram}_count")
        return 1000 * delta(f"{histogram}_sum") / count if count else None

    return {
        "fail_closed_by_cause": by_label("zentra_authz_fail_closed_total", "cause"),
        "policy_refreshes": int(delta("zentra_authz_policy_refreshes_total")),
        "calls_per_worker": by_label("zentra_grpc_server_worker_handled_total", "worker"),
        "mean_redis_step_ms": mean_ms("zentra_authz_redis_step_duration_seconds"),
        "mean_decision_ms": mean_ms("zentra_authz_decision_duration_seconds"),
    }


# --- the phases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A server under test: its process group, port, worker pids, and metrics port if any."""

    name: str
    child: Child
    port: int
    pids: list[int]
    metrics_port: int | None


def start_real(options: Options, backing: Stores, settings: Settings, work_dir: Path) -> tuple[Child, int, int]:
    """`python -m authz_server` with the benchmark's settings; returns it, its port and metrics port."""
    port, metrics_port = free_port(), free_port()
    env = server_env(
        {
            "REDIS_URL": backing.redis_url,
            "DATABASE_URL": backing.database_url,
            "AUTHZ_LISTEN_ADDR": f"127.0.0.1:{port}",
            "AUTHZ_WORKERS": str(options.workers),
            "AUTHZ_METRICS_PORT": str(metrics_port),
            "AUTHZ_KEY_PREFIX": settings.key_prefix,
            "AUTHZ_LOG_LEVEL": "WARNING",
        }
    )
    return Child("authz-server", "authz_server", [], env, work_dir), port, metrics_port


class Phases:
    """Runs load-generator phases against the servers, measuring for each how much CPU other
    processes on the machine took meanwhile; a phase disturbed by more than NOISE_CORES_MAX is
    measured again (at most NOISY_RETRIES_MAX times in a run), and the number is reported."""

    def __init__(self, options: Options, workload: Path, work_dir: Path) -> None:
        self.options = options
        self.workload = workload
        self.work_dir = work_dir
        # The quick run keeps the benchmark working (CI); it does not wait for a quiet machine.
        self.retries_left = 0 if options.quick else NOISY_RETRIES_MAX
        self.quiet_wait_left_s = QUIET_WAIT_S_MAX

    def loadgen_args(self, server: Server, id_tag: str, duration_s: float) -> list[str]:
        options = self.options
        args = [
            "--workload", str(self.workload),
            "--target", f"127.0.0.1:{server.port}",
            "--channels", str(options.channels),
            "--concurrency", str(options.concurrency),
            "--duration-s", str(duration_s),
            "--id-tag", id_tag,
        ]  # fmt: skip
        if options.balance:
            args += ["--worker-pids", ",".join(str(pid) for pid in server.pids)]
        return args

    def run(
        self,
        server: Server,
        label: str,
        id_tag: str,
        duration_s: float,
        mode: list[str],
        measured: bool = True,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """One phase: a load generator run whose single phase result is returned, with the CPU
        other processes took (`background_cores`) and what the server counted. Only a measured
        phase waits for a quiet machine and is repeated if disturbed."""
        for attempt in itertools.count():
            tag = f"{id_tag}{attempt}"
            if measured and not self.options.quick:
                waited_from = time.monotonic()
                wait_for_quiet(str(self.work_dir), NOISE_CORES_MAX, QUIET_SAMPLE_S, self.quiet_wait_left_s)
                self.quiet_wait_left_s = max(0.0, self.quiet_wait_left_s - (time.monotonic() - waited_from))
            before_cpu = cpu_sample(str(self.work_dir))
            before = scrape(server.metrics_port) if server.metrics_port else {}
            doc = run_json(
                f"loadgen-{server.name}-{tag}",
                "loadtest.loadgen",
                [*self.loadgen_args(server, tag, duration_s), *mode],
                self.work_dir,
                timeout_s if timeout_s is not None else duration_s + LOADGEN_SLACK_S,
            )
            after = scrape(server.metrics_port) if server.metrics_port else {}
            background = background_cores(before_cpu, cpu_sample(str(self.work_dir)))
            server.child.check_alive()
            phase: dict[str, Any] = doc["phases"][0]
            phase["background_cores"] = background
            phase["attempts"] = attempt + 1
            phase["connections_per_worker"] = doc["connections_per_worker"]
            if server.metrics_port:
                phase["server"] = server_counters(before, after)
            noisy = background > NOISE_CORES_MAX
            say(
                f"  {server.name} {label}: {phase['throughput_per_s']:,.0f} answered/s, p99 "
                f"{phase['latency_ms']['p99']:.2f} ms, {phase['fail_closed']:,} fail-closed; other processes "
                f"took {background:.2f} cores{' (noisy)' if noisy else ''}"
            )
            if not noisy or not measured or self.retries_left == 0 or attempt >= NOISY_RETRIES_PER_PHASE_MAX:
                phase["noisy"] = noisy
                return phase
            self.retries_left -= 1
            say(f"  {server.name} {label}: measuring again, the machine was busy with other work")
        raise AssertionError("unreachable")

    def pairs(
        self, real: Server, null: Server, label: str, id_tag: str, duration_s: float, mode: list[str], repeats: int
    ) -> list[Pair]:
        """`repeats` pairs of the same phase on both servers, one right after the other, the
        order alternating (real first, then null first, ...) so that a drift of the machine's
        speed during the run does not always favour the same server."""
        pairs: list[Pair] = []
        for repeat in range(repeats):
            order = (real, null) if repeat % 2 == 0 else (null, real)
            measured: dict[str, dict[str, Any]] = {}
            for position, server in enumerate(order):
                tag = f"{server.name[0]}{id_tag}{repeat}"
                phase = self.run(server, label, tag, duration_s, mode)
                phase["pair_position"] = position
                measured[server.name] = phase
            pairs.append((measured["real"], measured["null"]))
        return pairs


def measure_servers(
    options: Options, backing: Stores, settings: Settings, workload: Path, work_dir: Path
) -> dict[str, Any]:
    """(a) and (b): both servers run side by side, and each measurement of the real server is
    followed at once by the same measurement of the null server, so that a pair shares the
    machine's conditions as far as possible."""
    real_child, real_port, metrics_port = start_real(options, backing, settings, work_dir)
    null_port = free_port()
    null_child = start_null_server(null_port, options.workers, work_dir)
    try:
        real_pids = wait_ready(real_child, real_port, options.workers, forks_workers=options.workers > 1)
        real = Server("real", real_child, real_port, real_pids, metrics_port)
        null = Server("null", null_child, null_port, wait_ready(null_child, null_port, options.workers, True), None)
        say(f"real server: workers {real.pids} on port {real.port}; null server: workers {null.pids} on {null.port}")
        phases = Phases(options, workload, work_dir)

        null_warmup_s = NULL_WARMUP_S_QUICK if options.quick else NULL_WARMUP_S
        say(f"warm-up: every card through every real worker, then {null_warmup_s:g} s on the null server")
        warm_timeout_s = options.cards * options.workers / WARM_CALLS_PER_S_MIN + LOADGEN_SLACK_S
        warm = phases.run(real, "warm-up", "rw", 0.0, ["warm"], measured=False, timeout_s=warm_timeout_s)
        run_json(
            "loadgen-null-warmup",
            "loadtest.loadgen",
            [*phases.loadgen_args(null, "nw", null_warmup_s), "closed"],
            work_dir,
            null_warmup_s + LOADGEN_SLACK_S,
        )
        say(
            f"closed loop, {options.concurrency} in flight over {options.channels} connections, "
            f"{options.closed_s:g} s, {options.repeats} pair(s)"
        )
        closed_pairs = phases.pairs(real, null, "closed", "c", options.closed_s, ["closed"], options.repeats)
        real_closed, null_closed = closed_pairs[median_pair(closed_pairs)]
        real_max = real_closed["decided_per_s"]
        if real_max <= 0:
            raise BenchError(f"the real server decided nothing in the closed loop: {real_closed}")
        rates = [round(fraction * real_max) for fraction in options.rate_fractions]
        say(f"open loop at {rates} calls/s ({', '.join(f'{f:g}' for f in options.rate_fractions)} of the real max)")
        real_open: list[dict[str, Any]] = []
        null_open: list[dict[str, Any]] = []
        open_pairs: list[dict[str, Any]] = []
        for number, (fraction, rate) in enumerate(zip(options.rate_fractions, rates, strict=True)):
            repeats = options.repeats if abs(fraction - report.HALF_RATE_FRACTION) < 1e-9 else 1
            pairs = phases.pairs(
                real, null, f"open {rate}/s", f"o{number}x", options.open_s, ["open", "--rates", str(rate)], repeats
            )
            for pair in pairs:
                for phase in pair:
                    phase["fraction_of_real_max"] = fraction
            real_phase, null_phase = pairs[median_pair(pairs, latency=True)]
            real_open.append(real_phase)
            null_open.append(null_phase)
            if repeats > 1:
                open_pairs.append({"fraction": fraction, "pairs": [_pair_doc(pair, latency=True) for pair in pairs]})
    finally:
        real_child.stop()
        null_child.stop()
    return {
        "real": {"warm": warm, "closed": real_closed, "open": real_open, "rates_per_s": rates},
        "null": {"closed": null_closed, "open": null_open},
        "repeats": {"closed": [_pair_doc(pair) for pair in closed_pairs], "open": open_pairs},
    }


Pair = tuple[dict[str, Any], dict[str, Any]]  # (real, null), measured one right after the other


def _pair_ratio(pair: Pair, latency: bool = False) -> float:
    """real / null: decided per second in the closed loop, p99 latency in the open loop."""
    real, null = pair
    if latency:
        return float(real["latency_ms"]["p99"]) / max(float(null["latency_ms"]["p99"]), 1e-9)
    return float(real["decided_per_s"]) / max(float(null["decided_per_s"]), 1e-9)


def median_pair(pairs: list[Pair], latency: bool = False) -> int:
    """The index of the pair whose real/null ratio is the median: the pair the table and the
    targets report, the others are listed beside it. Of an even number, the middle one less
    favourable to the real server (the lower throughput ratio, the higher latency ratio)."""
    order = sorted(range(len(pairs)), key=lambda i: _pair_ratio(pairs[i], latency))
    return order[len(order) // 2 if latency else (len(order) - 1) // 2]


def _pair_doc(pair: Pair, latency: bool = False) -> dict[str, Any]:
    real, null = pair
    if latency:
        return {"real_p99_ms": real["latency_ms"]["p99"], "null_p99_ms": null["latency_ms"]["p99"],
                "ratio": _pair_ratio(pair, latency=True), "first": _first(real)}  # fmt: skip
    return {"real_per_s": real["decided_per_s"], "null_per_s": null["decided_per_s"],
            "ratio": _pair_ratio(pair), "first": _first(real)}  # fmt: skip


def _first(real: dict[str, Any]) -> str:
    """Which server of the pair was measured first."""
    return "real" if real["pair_position"] == 0 else "null"


def redis_only_args(
    backing: Stores, workload: Path, concurrency: int, options: Options, start_at: float, index: int
) -> list[str]:
    return [
        "--workload", str(workload),
        "--redis-url", backing.redis_url,
        "--concurrency", str(concurrency),
        "--duration-s", str(options.closed_s),
        "--warmup-s", str(REDIS_ONLY_WARMUP_S),
        "--start-at", f"{start_at:.3f}",
        "--id-tag", f"x{index}",
    ]  # fmt: skip


def measure_redis_only(options: Options, backing: Stores, workload: Path, work_dir: Path) -> dict[str, Any]:
    """(c): one process per server worker, the concurrency split between them, measured together."""
    processes = options.workers
    shares = [options.concurrency // processes + (i < options.concurrency % processes) for i in range(processes)]
    prepare_s = REDIS_ONLY_PREPARE_S_QUICK if options.quick else REDIS_ONLY_PREPARE_S
    start_at = time.time() + prepare_s + REDIS_ONLY_WARMUP_S
    say(f"redis only: {processes} processes, {options.concurrency} EVALSHA in flight, {options.closed_s:g} s")
    commands = [
        (f"redis-only-{i}", "loadtest.redis_only", redis_only_args(backing, workload, share, options, start_at, i))
        for i, share in enumerate(shares)
        if share > 0
    ]
    before_cpu = cpu_sample(str(work_dir))
    docs = gather_json(commands, work_dir, prepare_s + REDIS_ONLY_WARMUP_S + options.closed_s + LOADGEN_SLACK_S)
    closed = report.merge_phases([doc["phases"][0] for doc in docs])
    # The window includes the processes' preparation; it is an approximation of the phase's.
    closed["background_cores"] = background_cores(before_cpu, cpu_sample(str(work_dir)))
    say(f"  redis only: {closed['throughput_per_s']:,.0f} EVALSHA/s, p99 {closed['latency_ms']['p99']:.2f} ms")
    return {"closed": closed, "processes": len(docs)}


def measure_ledger(options: Options, backing: Stores, real_max: float, work_dir: Path) -> dict[str, Any]:
    """Runs the ledger writer benchmark against the same stores (its own tenant and key prefix),
    its burst at the real server's maximum rate, and picks out the numbers of target 3."""
    output = work_dir / "ledger.json"
    args = ["--rate", str(max(1, round(real_max))), "--output", str(output)]
    if options.quick:
        args.append("--quick")
    say(f"ledger writer: loadtest.ledger_bench {' '.join(args[:2])}{' --quick' if options.quick else ''}")
    env = server_env({"REDIS_URL": backing.redis_url, "DATABASE_URL": backing.database_url})
    ledger = Child("ledger-bench", "loadtest.ledger_bench", args, env, work_dir)
    code = ledger.wait(LEDGER_TIMEOUT_S)
    if code != 0 or not output.exists():
        raise BenchError(f"loadtest.ledger_bench exited with {code}:\n{ledger.log_tail()}")
    raw = json.loads(output.read_text())
    backlog, burst = raw["backlog"], raw["burst"]
    return {
        "posted_per_s": float(backlog["posted_per_s"]),
        "backlog_decisions": int(backlog["decisions"]),
        "burst_offered_per_s": float(burst["offered_per_s"]),
        "burst_achieved_per_s": float(burst["achieved_per_s"]),
        "burst_s": float(burst["seconds"]),
        "backlog_at_stop_entries": int(burst["backlog_at_stop_entries"]),
        "backlog_peak_entries": int(burst["backlog_peak_entries"]),
        "catch_up_s": float(burst["catch_up_s"]),
        "raw": raw,
    }


# --- the run -----------------------------------------------------------------------------


def clean_up_external(backing: Stores, settings: Settings, seeded: Seeded | None) -> None:
    """Removes what the run left in stores it does not own (REDIS_URL / DATABASE_URL)."""
    if not backing.embedded_postgres and seeded is not None:
        asyncio.run(remove_seeded(backing.database_url, seeded.workload.tenant_id))
    if not backing.embedded_redis:
        client = sync_redis.Redis.from_url(backing.redis_url)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{settings.key_prefix}:*", count=REDIS_DELETE_BATCH):
                batch.append(key)
                if len(batch) >= REDIS_DELETE_BATCH:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        finally:
            client.close()


@contextlib.contextmanager
def aof_rewrites_held(backing: Stores) -> Iterator[None]:
    """Redis keeps its AOF (fsync every second) but does not rewrite it while anything is measured:
    the server phases, the Redis step alone and the ledger writer.

    A fresh, nearly empty Redis rewrites its AOF when it reaches 64 MB and again at every
    doubling: at the benchmark's write rate (about 1.5 KB of AOF per decision, and no ledger
    writer trimming the streams) that is every few seconds, and each rewrite is a forked child
    copying the whole dataset, a core for a second or two taken from whichever phase it lands
    in. After the server phases the dataset is about 330 MB and a rewrite takes 2-5 s of a core:
    held only during the server phases, the rewrites fell on the Redis-alone phase and on the
    ledger writer's 1-2 s backlog drain (8,329 and 11,773 posted per second in two runs, against
    18,263 for the same drain on a Redis of its own). A production Redis holding gigabytes
    rewrites rarely, at times its operators choose. Only the embedded Redis is changed; one given
    by REDIS_URL keeps its own settings."""
    if not backing.embedded_redis:
        yield
        return
    client = sync_redis.Redis.from_url(backing.redis_url)
    try:
        before = str(client.config_get("auto-aof-rewrite-percentage")["auto-aof-rewrite-percentage"])
        client.config_set("auto-aof-rewrite-percentage", 0)
        try:
            yield
        finally:
            client.config_set("auto-aof-rewrite-percentage", before)
    finally:
        client.close()


def measure(options: Options, backing: Stores, work_dir: Path) -> dict[str, Any]:
    run_id = secrets.token_hex(3)
    settings = Settings(key_prefix=f"zb{run_id}")
    result: dict[str, Any] = {"machine": describe_machine(backing)}
    seeded: Seeded | None = None
    try:
        say(f"seeding {options.cards:,} cards (seed {options.seed})")
        seeded = asyncio.run(
            seed(backing.database_url, backing.redis_url, settings, options.cards, run_id, options.seed)
        )
        workload = work_dir / "workload.json"
        seeded.workload.save(workload)
        profiles: dict[str, int] = {}
        for card in seeded.cards:
            profiles[card.profile] = profiles.get(card.profile, 0) + 1
        kinds = {kind: seeded.workload.kinds.count(kind) for kind in KIND_SHARES}
        say(f"seeded in {seeded.seconds:.1f} s: {profiles}; purchases {kinds}")
        result["seed"] = {
            "cards": options.cards,
            "profiles": profiles,
            "purchases": len(seeded.workload.purchases),
            "purchase_kinds": kinds,
            "seconds": seeded.seconds,
            "projection_seconds": seeded.projection.seconds,
        }
        with aof_rewrites_held(backing):
            result.update(measure_servers(options, backing, settings, workload, work_dir))
            real_max = result["real"]["closed"]["decided_per_s"]
            result["redis_only"] = measure_redis_only(options, backing, workload, work_dir)
            try:
                result["ledger"] = measure_ledger(options, backing, real_max, work_dir)
            except BenchError as error:
                # The other three parts still stand; the run reports the failure and exits 1.
                say(f"ledger writer: {error}")
                result["ledger"] = None
                result["failures"] = [f"ledger writer benchmark: {error}"]
    finally:
        clean_up_external(backing, settings, seeded)
    result["config"] = {
        **{k: v for k, v in asdict(options).items() if k not in ("output", "png")},
        "rate_fractions": list(options.rate_fractions),
        "decision_budget_ms": settings.decision_budget_ms,
        "shards": settings.shard_count,
        "stack": "embedded" if backing.embedded_redis and backing.embedded_postgres else "REDIS_URL/DATABASE_URL",
    }
    result["ratios"], result["targets"] = report.ratios_and_targets(result)
    return result


def run(options: Options) -> int:
    """The whole benchmark; 0 with the results written, 1 if it could not run."""
    install_stop_signals()
    started = time.monotonic()
    work_dir = prepare_dir(Path(tempfile.mkdtemp(prefix="zentra-bench-")))
    say(f"bench: {'quick' if options.quick else 'full'} run, {options.workers} workers, work dir {work_dir}")
    try:
        with stores(work_dir) as backing:
            result = measure(options, backing, work_dir)
    except (BenchError, DevstackError) as error:
        print(f"bench: {error}\n(logs kept in {work_dir})", file=sys.stderr)
        return 1
    except StopRequested as stop:
        print(f"bench: stopped by {stop} (logs kept in {work_dir})", file=sys.stderr)
        return 130
    result["seconds"] = time.monotonic() - started
    if not result.get("failures"):
        shutil.rmtree(work_dir, ignore_errors=True)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    options.output.with_suffix(".md").write_text(report.markdown_report(result))
    report.draw_latency(result, options.png)
    print("\n" + report.text_report(result), flush=True)
    written = f"{options.output}, {options.output.with_suffix('.md')}, {options.png}"
    print(flush=True)
    say(f"bench: {result['seconds']:.0f} s; written {written}")
    for failure in result.get("failures", []):
        print(f"bench: {failure}\n(logs kept in {work_dir})", file=sys.stderr)
    return 1 if result.get("failures") else 0
