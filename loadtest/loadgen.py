"""The load generator: Authorize calls over grpc.aio from a process of its own, JSON on stdout.

`python -m loadtest.loadgen --workload W --target HOST:PORT --duration-s D closed` drives a
server at a fixed number of calls in flight for D seconds (closed loop: the maximum throughput
at that concurrency). `... --duration-s D open --rates R1,R2` offers each rate in turn for D
seconds (open loop). It prints one JSON document with a result per phase.

What it measures and why it is built this way:
- It runs in a process of its own, so that its CPU is not the server's (on a small machine it
  still shares the cores; `cpu_us_per_call` says how much it took).
- Its CPU per call is kept low: the purchases are serialized once (`loadtest.seed`), and a call
  sends those bytes with the authorization id field prepended (protobuf merges concatenated
  messages, so `id field + purchase` parses as the whole request). No per-call message is built.
- Many calls are in flight over a few HTTP/2 connections (`--channels`), as a processor adapter
  holds them. SO_REUSEPORT spreads connections, not calls, over the server's worker processes,
  and the kernel's hash can put three of four connections on one worker; with `--worker-pids`
  the connections are re-dialled until every worker holds the same number (found through
  /proc), so that the baseline and the real server see the same, even spread.
- Open loop is corrected for coordinated omission: call i is scheduled at start + i / rate by the
  clock and started at its time whether or not earlier calls have answered, and its latency is
  measured from the scheduled time. A server that stalls is charged for every call that should
  have been sent meanwhile (Gil Tene's "coordinated omission"; wrk2 does the same). The
  scheduler wakes about once a millisecond (uvloop's timer resolution) and starts every call
  that is due, so a call starts up to about a millisecond late: that is in its latency too, and
  reported apart as `start_lateness_ms` (a generator starved of CPU shows up there first).
- `warm` sends one purchase of every card through a connection of every worker, so that every
  worker's policy cache holds every card, as in steady state, before anything is measured.
- Latencies go into a log-bucketed histogram (1 % wide buckets) that merges exactly across
  processes (the Redis-only phase runs several).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import math
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvloop

from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t

AUTHORIZE_METHOD = "/zentra.cards.v1.AuthorizationService/Authorize"
# Longest one call may take before the generator gives up on it (an error). Far above the
# server's 50 ms decision budget: a call this slow means the server is overloaded, not deciding.
CALL_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0  # one channel's HTTP/2 handshake
# Channels dialled and dropped while evening out connections over workers, before giving up
# and keeping an uneven spread (which the result then reports).
REDIAL_ATTEMPTS_MAX = 64
# Calls in flight at once in open loop. The schedule never waits for answers; this bound only
# keeps a server that stopped answering from exhausting the generator's memory. A call held
# back by it is late, and its lateness is in its latency (measured from the scheduled time).
OPEN_LOOP_IN_FLIGHT_MAX = 20_000
OPEN_LOOP_START_DELAY_S = 0.05  # between building the schedule and its first call
# The open-loop scheduler sleeps at least this long between rounds of starting due calls, so a
# call starts up to about a tick late; its lateness is in its latency and reported apart.
SCHEDULER_TICK_S = 0.001
PAUSE_BETWEEN_RATES_S = 1.0  # lets the server settle between two open-loop rates
# Every REPLAY_EVERY-th call re-sends the call REPLAY_DISTANCE calls earlier, byte for byte (a
# retry: same authorization id, same request), so 1 / REPLAY_EVERY of the traffic replays.
# REPLAY_DISTANCE is not a multiple of REPLAY_EVERY, so a replay never re-sends a replay.
REPLAY_EVERY = 50
REPLAY_DISTANCE = 101
# Field 1 (authorization_id) of AuthorizeRequest, wire type 2 (length-delimited): (1 << 3) | 2.
AUTHORIZATION_ID_TAG = b"\x0a"
ID_LENGTH_MAX = 64  # DESIGN §3; also keeps the field's length a one-byte varint
HISTOGRAM_BUCKET_RATIO = 1.01  # adjacent latency buckets differ by 1 %
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
CLIENT_OPTIONS = [
    # Every channel its own TCP connection: channels with the same target and options would
    # otherwise share one subchannel (one connection, one worker).
    ("grpc.use_local_subchannel_pool", 1),
]


# --- latency -------------------------------------------------------------------------------


class LatencyHistogram:
    """Latencies in buckets 1 % wide (log scale from 1 µs), plus exact count, sum and max.
    Percentiles are exact to the bucket (within 1 %); two histograms merge by adding counts."""

    _LOG_RATIO = math.log(HISTOGRAM_BUCKET_RATIO)

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.sum_s = 0.0
        self.max_s = 0.0

    def record(self, seconds: float) -> None:
        micros = seconds * 1e6
        self.counts[int(math.log(micros) / self._LOG_RATIO) if micros > 1.0 else 0] += 1
        self.count += 1
        self.sum_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def merge(self, other: LatencyHistogram) -> None:
        self.counts.update(other.counts)
        self.count += other.count
        self.sum_s += other.sum_s
        self.max_s = max(self.max_s, other.max_s)

    def percentile_s(self, percent: float) -> float:
        """The smallest bucket value with at least `percent` % of the samples at or below it
        (the bucket's geometric middle); the maximum for 100."""
        assert 0.0 < percent <= 100.0, percent
        if self.count == 0:
            return 0.0
        rank = math.ceil(self.count * percent / 100.0)
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(self.max_s, HISTOGRAM_BUCKET_RATIO ** (index + 0.5) / 1e6)
        return self.max_s

    def summary_ms(self) -> dict[str, float]:
        """p50, p90, p99, p99.9, mean and max, in milliseconds."""
        summary = {f"p{p:g}": 1000 * self.percentile_s(p) for p in PERCENTILES}
        summary["mean"] = 1000 * self.sum_s / self.count if self.count else 0.0
        summary["max"] = 1000 * self.max_s
        return summary

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum_s": self.sum_s,
            "max_s": self.max_s,
            "buckets": {str(k): v for k, v in sorted(self.counts.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyHistogram:
        histogram = cls()
        histogram.counts = Counter({int(k): int(v) for k, v in data["buckets"].items()})
        histogram.count = int(data["count"])
        histogram.sum_s = float(data["sum_s"])
        histogram.max_s = float(data["max_s"])
        return histogram


@dataclass
class Tally:
    """What the calls of one phase got back: decisions by "DECISION/REASON", errors by status."""

    decisions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    replayed: int = 0

    @property
    def answered(self) -> int:
        return sum(self.decisions.values())

    @property
    def fail_closed(self) -> int:
        """DECLINE / SYSTEM_UNAVAILABLE answers: the server could not decide within its budget."""
        return sum(n for outcome, n in self.decisions.items() if outcome.endswith("/SYSTEM_UNAVAILABLE"))


def phase_result(
    name: str,
    offered_per_s: float | None,
    seconds: float,
    latency: LatencyHistogram,
    tally: Tally,
    cpu_s: float,
    lateness: LatencyHistogram | None = None,
) -> dict[str, Any]:
    """The JSON of one measured phase; every generator (gRPC and Redis-only) reports this shape."""
    calls = latency.count
    return {
        "phase": name,
        "offered_per_s": offered_per_s,
        "seconds": seconds,
        "calls": calls,
        "answered": tally.answered,
        "throughput_per_s": tally.answered / seconds if seconds > 0 else 0.0,
        # Answers that are decisions: fail-closed declines are answers, but not what capacity means.
        "decided_per_s": (tally.answered - tally.fail_closed) / seconds if seconds > 0 else 0.0,
        "fail_closed": tally.fail_closed,
        "errors": dict(tally.errors),
        "replayed": tally.replayed,
        "decisions": dict(sorted(tally.decisions.items())),
        "latency_ms": latency.summary_ms(),
        "latency_histogram": latency.to_json(),
        "start_lateness_ms": lateness.summary_ms() if lateness is not None else None,
        "cpu_us_per_call": 1e6 * cpu_s / calls if calls else 0.0,
    }


def cpu_seconds() -> float:
    """CPU (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the workload --------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What `loadtest.seed` wrote: the caller's key, and purchases serialized without their
    authorization id (see the module docstring)."""

    tenant_id: str
    key_id: str
    secret: str
    key_prefix: str
    shard_count: int
    purchases: tuple[bytes, ...]
    kinds: tuple[str, ...]  # what each purchase was built to exercise (seed.PurchaseKind)

    @classmethod
    def load(cls, path: Path) -> Workload:
        data = json.loads(path.read_text())
        purchases = tuple(base64.b64decode(p) for p in data["purchases"])
        assert purchases and len(purchases) == len(data["kinds"]), "a workload needs purchases, one kind each"
        return cls(
            data["tenant_id"],
            data["key_id"],
            data["secret"],
            data["key_prefix"],
            int(data["shard_count"]),
            purchases,
            tuple(data["kinds"]),
        )

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "tenant_id": self.tenant_id,
                    "key_id": self.key_id,
                    "secret": self.secret,
                    "key_prefix": self.key_prefix,
                    "shard_count": self.shard_count,
                    "purchases": [base64.b64encode(p).decode() for p in self.purchases],
                    "kinds": list(self.kinds),
                }
            )
        )


def authorization_id(id_tag: str, index: int) -> str:
    """The authorization id of call `index` of a phase: unique per run, tag and index."""
    return f"{id_tag}-{index:09d}"


def source_index(index: int) -> int:
    """The call whose request call `index` sends: itself, or for a replay an earlier one."""
    if index >= REPLAY_DISTANCE and index % REPLAY_EVERY == REPLAY_EVERY - 1:
        return index - REPLAY_DISTANCE
    return index


class Requests:
    """Serialized AuthorizeRequests, call by call, for one phase (`id_tag` keeps the ids of
    phases apart). Cheap per call: an f-string and two byte concatenations."""

    def __init__(self, purchases: Sequence[bytes], id_tag: str, replays: bool = True) -> None:
        assert purchases
        self._purchases = purchases
        self._id_tag = id_tag
        self._replays = replays
        longest = authorization_id(id_tag, 10**9 - 1)
        assert len(longest) <= ID_LENGTH_MAX, f"id tag {id_tag!r} makes ids longer than {ID_LENGTH_MAX}"

    def request(self, index: int) -> bytes:
        source = source_index(index) if self._replays else index
        ident = authorization_id(self._id_tag, source).encode()
        return AUTHORIZATION_ID_TAG + bytes((len(ident),)) + ident + self._purchases[source % len(self._purchases)]


def check_requests(requests: Requests, purchases: Sequence[bytes]) -> None:
    """Asserts once that the concatenated bytes parse to the purchase with the id set."""
    parsed = authorization_pb2.AuthorizeRequest.FromString(requests.request(0))
    expected = authorization_pb2.AuthorizeRequest.FromString(purchases[0])
    expected.authorization_id = parsed.authorization_id
    assert parsed == expected and parsed.authorization_id, (parsed, expected)


# --- connections ---------------------------------------------------------------------------


def _socket_inodes(pid: int | str) -> set[int]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            target = os.readlink(f"{fd_dir}/{name}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _tcp_connections() -> list[tuple[int, int, int]]:
    """(local port, remote port, inode) of every established TCP connection on this host."""
    connections = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "01":  # ESTABLISHED
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    connections.append((local_port, remote_port, int(fields[9])))
    return connections


def own_client_ports(server_port: int) -> set[int]:
    """Local ports of this process's connections to `server_port`."""
    mine = _socket_inodes("self")
    return {local for local, remote, inode in _tcp_connections() if remote == server_port and inode in mine}


def worker_of_client_port(client_port: int, server_port: int, worker_pids: Sequence[int]) -> int | None:
    """Which worker process holds the server end of the connection from `client_port`."""
    inodes = {pid: _socket_inodes(pid) for pid in worker_pids}
    for local, remote, inode in _tcp_connections():
        if local == server_port and remote == client_port:
            for pid, owned in inodes.items():
                if inode in owned:
                    return pid
    return None


async def open_channels(
    target: str, count: int, worker_pids: Sequence[int]
) -> tuple[list[grpc.aio.Channel], list[str]]:
    """`count` channels (one connection each), spread evenly over `worker_pids` if given.
    Returns the channels and, for each, the index of the worker holding its connection
    ("unknown" if it could not be told)."""
    server_port = int(target.rsplit(":", 1)[1])
    quota = math.ceil(count / len(worker_pids)) if worker_pids else count
    spread: Counter[str] = Counter()
    channels: list[grpc.aio.Channel] = []
    labels: list[str] = []
    redials = 0
    while len(channels) < count:
        before = own_client_ports(server_port) if worker_pids else set()
        channel = grpc.aio.insecure_channel(target, options=CLIENT_OPTIONS)
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        owner: int | None = None
        if worker_pids:
            new_ports = own_client_ports(server_port) - before
            if len(new_ports) == 1:
                owner = worker_of_client_port(new_ports.pop(), server_port, worker_pids)
        label = str(worker_pids.index(owner)) if owner is not None else "unknown"
        if owner is not None and spread[label] >= quota and redials < REDIAL_ATTEMPTS_MAX:
            redials += 1
            await channel.close()
            continue
        spread[label] += 1
        channels.append(channel)
        labels.append(label)
    return channels, labels


# --- calls ---------------------------------------------------------------------------------

Stub = Callable[..., Any]  # a grpc.aio UnaryUnaryMultiCallable taking serialized requests


def authorize_stubs(channels: Sequence[grpc.aio.Channel]) -> list[Stub]:
    """Authorize on every channel, sending bytes as they are (no request serializer)."""
    return [
        channel.unary_unary(
            AUTHORIZE_METHOD,
            request_serializer=None,
            response_deserializer=authorization_pb2.AuthorizeResponse.FromString,
        )
        for channel in channels
    ]


OUTCOME_NAMES = {
    (decision, reason): f"{t.Decision.Name(decision)}/{t.Reason.Name(reason)}"
    for decision in t.Decision.values()
    for reason in t.Reason.values()
}


async def call_once(stub: Stub, request: bytes, metadata: tuple[tuple[str, str], ...], tally: Tally) -> None:
    try:
        response = await stub(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        tally.errors[error.code().name] += 1
        return
    tally.decisions[OUTCOME_NAMES[(response.decision, response.reason)]] += 1
    if response.replayed:
        tally.replayed += 1


async def closed_loop(
    stubs: Sequence[Stub],
    requests: Requests,
    metadata: tuple[tuple[str, str], ...],
    concurrency: int,
    duration_s: float,
) -> tuple[float, LatencyHistogram, Tally]:
    """`concurrency` callers, each sending its next call when the last is answered, until
    `duration_s` has passed. Returns (seconds from the first send to the last answer, latency
    from send to answer, tally)."""
    latency = LatencyHistogram()
    tally = Tally()
    indexes = itertools.count()
    started = time.perf_counter()
    stop_at = started + duration_s

    async def caller(stub: Stub) -> None:
        while (sent := time.perf_counter()) < stop_at:
            await call_once(stub, requests.request(next(indexes)), metadata, tally)
            latency.record(time.perf_counter() - sent)

    await asyncio.gather(*(caller(stubs[i % len(stubs)]) for i in range(concurrency)))
    return time.perf_counter() - started, latency, tally


def first_purchase_of_each_card(purchases: Sequence[bytes], kinds: Sequence[str]) -> list[int]:
    """Index of the first purchase of every card that exists (unknown cards need no warming)."""
    first: dict[str, int] = {}
    for index, (purchase, kind) in enumerate(zip(purchases, kinds, strict=True)):
        if kind != "unknown_card":
            first.setdefault(authorization_pb2.AuthorizeRequest.FromString(purchase).card_id, index)
    return sorted(first.values())


async def warm_every_worker(
    stubs: Sequence[Stub],
    labels: Sequence[str],
    workload: Workload,
    id_tag: str,
    metadata: tuple[tuple[str, str], ...],
    concurrency: int,
) -> tuple[float, LatencyHistogram, Tally]:
    """One purchase of every card through one connection of every worker, `concurrency` at a
    time, so that every worker has every card's policy cached, as in steady state. Without
    knowing which worker holds which connection, every connection gets every card."""
    known = {label: stub for stub, label in zip(stubs, labels, strict=True) if label != "unknown"}
    per_worker = list(known.values()) if len(known) == len(set(labels)) else list(stubs)
    requests = Requests(workload.purchases, id_tag, replays=False)
    purchases = len(workload.purchases)
    work = iter(
        [
            (stub, copy * purchases + index)
            for copy, stub in enumerate(per_worker)
            for index in first_purchase_of_each_card(workload.purchases, workload.kinds)
        ]
    )
    latency = LatencyHistogram()
    tally = Tally()

    async def caller() -> None:
        for stub, index in work:  # a shared iterator: each call is made by exactly one caller
            sent = time.perf_counter()
            await call_once(stub, requests.request(index), metadata, tally)
            latency.record(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - started, latency, tally


async def open_loop(
    stubs: Sequence[Stub],
    requests: Requests,
    metadata: tuple[tuple[str, str], ...],
    rate_per_s: float,
    duration_s: float,
) -> tuple[float, LatencyHistogram, LatencyHistogram, Tally]:
    """Call i scheduled at start + i / rate for `duration_s`, started at its time without
    waiting for earlier calls. Returns (seconds from the first scheduled send to the last
    answer, latency from the scheduled time, how late calls were started, tally)."""
    latency = LatencyHistogram()
    lateness = LatencyHistogram()
    tally = Tally()
    slots = asyncio.Semaphore(OPEN_LOOP_IN_FLIGHT_MAX)
    calls = round(rate_per_s * duration_s)
    period_s = 1.0 / rate_per_s
    pending: set[asyncio.Task[None]] = set()

    async def scheduled_call(index: int, scheduled: float) -> None:
        try:
            lateness.record(max(1e-6, time.perf_counter() - scheduled))
            await call_once(stubs[index % len(stubs)], requests.request(index), metadata, tally)
            latency.record(time.perf_counter() - scheduled)
        finally:
            slots.release()

    start = time.perf_counter() + OPEN_LOOP_START_DELAY_S
    index = 0
    while index < calls:
        # Start every call whose time has come, then sleep until the next one is due (at least
        # one tick: uvloop rounds timers to whole milliseconds, and a shorter sleep would spin).
        elapsed_s = time.perf_counter() - start
        due = min(calls, math.floor(elapsed_s / period_s) + 1) if elapsed_s >= 0 else 0
        while index < due:
            await slots.acquire()
            task = asyncio.create_task(scheduled_call(index, start + index * period_s))
            pending.add(task)
            task.add_done_callback(pending.discard)
            index += 1
        if index < calls:
            await asyncio.sleep(max(SCHEDULER_TICK_S, start + index * period_s - time.perf_counter()))
    while pending:
        await asyncio.gather(*list(pending))
    return time.perf_counter() - start, latency, lateness, tally


# --- the process ---------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload.load(args.workload)
    metadata = (("authorization", f"Bearer {workload.secret}"),)
    worker_pids = [int(pid) for pid in args.worker_pids.split(",")] if args.worker_pids else []
    channels, labels = await open_channels(args.target, args.channels, worker_pids)
    try:
        stubs = authorize_stubs(channels)
        phases: list[dict[str, Any]] = []
        if args.mode == "warm":
            cpu_before = cpu_seconds()
            seconds, latency, tally = await warm_every_worker(
                stubs, labels, workload, f"{args.id_tag}a", metadata, args.concurrency
            )
            phases.append(phase_result("warm", None, seconds, latency, tally, cpu_seconds() - cpu_before))
        elif args.mode == "closed":
            requests = Requests(workload.purchases, f"{args.id_tag}c")
            check_requests(requests, workload.purchases)
            cpu_before = cpu_seconds()
            seconds, latency, tally = await closed_loop(stubs, requests, metadata, args.concurrency, args.duration_s)
            phases.append(phase_result("closed", None, seconds, latency, tally, cpu_seconds() - cpu_before))
        else:
            for number, rate in enumerate(args.rates):
                if number:
                    await asyncio.sleep(PAUSE_BETWEEN_RATES_S)
                requests = Requests(workload.purchases, f"{args.id_tag}o{number}")
                check_requests(requests, workload.purchases)
                cpu_before = cpu_seconds()
                seconds, latency, lateness, tally = await open_loop(stubs, requests, metadata, rate, args.duration_s)
                phases.append(phase_result("open", rate, seconds, latency, tally, cpu_seconds() - cpu_before, lateness))
    finally:
        for channel in channels:
            await channel.close()
    return {
        "target": args.target,
        "mode": args.mode,
        "concurrency": args.concurrency if args.mode == "closed" else None,
        "channels": args.channels,
        "connections_per_worker": dict(sorted(Counter(labels).items())),
        "phases": phases,
    }


def positive_rates(text: str) -> list[float]:
    rates = [float(r) for r in text.split(",") if r]
    if not rates or any(not 0 < r <= 1_000_000 for r in rates):
        raise argparse.ArgumentTypeError("rates are calls per second in (0, 1000000], comma-separated")
    return rates


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.loadgen", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workload", type=Path, required=True, help="JSON written by loadtest.seed")
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--channels", type=int, default=4, help="HTTP/2 connections")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (closed loop and warm)")
    parser.add_argument("--duration-s", type=float, default=0.0, help="length of each measured phase")
    parser.add_argument("--id-tag", required=True, help="prefix of this run's authorization ids, [A-Za-z0-9.-]")
    parser.add_argument("--worker-pids", default="", help="server worker pids: spread connections evenly over them")
    modes = parser.add_subparsers(dest="mode", required=True)
    modes.add_parser("warm", help="every card once on every worker (fills the policy caches)")
    modes.add_parser("closed", help="fixed concurrency, as fast as the server answers")
    open_parser = modes.add_parser("open", help="fixed rates, latency from the scheduled send time")
    open_parser.add_argument("--rates", type=positive_rates, required=True, help="calls per second, e.g. 500,1000")
    args = parser.parse_args(argv)
    if not 1 <= args.channels <= 1024 or not args.channels <= args.concurrency <= 100_000:
        parser.error("need 1 <= --channels <= 1024 and --channels <= --concurrency <= 100000")
    if not (0 < args.duration_s <= 3600 or args.mode == "warm"):
        parser.error("--duration-s must be in (0, 3600] (warm takes none)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = uvloop.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
