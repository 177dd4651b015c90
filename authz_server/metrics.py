"""Prometheus metrics of authz-server, named by Prometheus conventions (base units,
`_total` counters, `_seconds` histograms). Only the service and store boundaries touch them;
the policy module never does."""

from __future__ import annotations

import bisect
import math
import os

from prometheus_client import Counter, Gauge, Histogram, values

from zentra.cards.v1 import types_pb2 as t

# How often a server process hands what its calls counted to prometheus-client. In
# multiprocess mode every inc() is a locked write to a memory-mapped file; Authorize made six
# (decision, RPC status, two histograms), a tenth of its own CPU. The hot path counts in plain
# Python (TALLY, the in-flight count, calls per worker) and this many times a second the sums
# are written: a scrape sees them at most this late. Rare events are written at once.
SYNC_INTERVAL_S = 0.25

# In multiprocess mode prometheus-client asks for the process id on every write, to notice a
# fork; os.getpid() is a system call each time (glibc caches nothing), a dozen per Authorize,
# expensive in a virtual machine. The id is kept here instead and renewed in a forked child.
_pid = os.getpid()


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


def process_id() -> int:
    return _pid


os.register_at_fork(after_in_child=_renew_pid)
if values.ValueClass is not values.MutexValue:  # multiprocess mode (PROMETHEUS_MULTIPROC_DIR)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)

# Sub-millisecond buckets: a healthy decision takes a few hundred microseconds.
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip

DECISIONS = Counter(
    "zentra_authz_decisions_total",
    "Authorize answers by decision and reason (replays included).",
    ["decision", "reason"],
)
DECISION_SECONDS = Histogram(
    "zentra_authz_decision_duration_seconds",
    "Time to answer Authorize, from the handler's start to the response.",
    buckets=LATENCY_BUCKETS_S,
)
REDIS_STEP_SECONDS = Histogram(
    "zentra_authz_redis_step_duration_seconds",
    "Time of one decision-script round trip to Redis.",
    buckets=LATENCY_BUCKETS_S,
)
FAIL_CLOSED = Counter(
    "zentra_authz_fail_closed_total",
    "Fail-closed Authorize answers (DECLINE/SYSTEM_UNAVAILABLE), by cause.",
    ["cause"],
)
ADVICES = Counter(
    "zentra_authz_advices_total",
    "Advices recorded: purchases the network approved in stand-in, by decision.",
    ["decision"],
)
REPLAYS = Counter("zentra_authz_replays_total", "Authorize answers that replayed a stored answer.")
POLICY_REFRESHES = Counter(
    "zentra_authz_policy_refreshes_total",
    "Decisions re-planned because the cached card policy was stale or absent.",
)
# Gauges say how to combine workers' values (prometheus-client multiprocess mode; see workers.py).
TOMBSTONES_PENDING = Gauge(
    "zentra_authz_tombstones_pending",
    "Fail-closed answers not yet recorded in Redis (waiting for Redis).",
    multiprocess_mode="livesum",
)
TOMBSTONES_DROPPED = Counter(
    "zentra_authz_tombstones_dropped_total",
    "Fail-closed answers dropped from the pending queue because it was full.",
)
# Which worker process took each call: SO_REUSEPORT balances connections, not calls, so an
# SRE needs to see one worker saturated while another idles.
WORKER_RPCS = Counter("zentra_grpc_server_worker_handled_total", "RPCs completed, by worker process.", ["worker"])
RPCS = Counter("zentra_grpc_server_handled_total", "RPCs completed, by method and status code.", ["method", "code"])
IN_FLIGHT = Gauge("zentra_grpc_server_in_flight_requests", "RPCs being handled now.", multiprocess_mode="livesum")
WORKER_RSS = Gauge(
    "zentra_authz_worker_resident_memory_bytes",
    "Resident memory of each server process.",
    multiprocess_mode="liveall",
)
PROJECTION_WRITES = Counter(
    "zentra_authz_projection_writes_total", "Card projection writes to Redis, by result.", ["result"]
)


_DECISION_CHILDREN: dict[tuple[int, int], Counter] = {}


def decision_counter(decision: int, reason: int) -> Counter:
    """DECISIONS' child for a decision and reason (a labels() lookup costs more than the inc)."""
    child = _DECISION_CHILDREN.get((decision, reason))
    if child is None:
        child = DECISIONS.labels(t.Decision.Name(decision), t.Reason.Name(reason))
        _DECISION_CHILDREN[(decision, reason)] = child
    return child


class Tally:
    """Counter increments and histogram observations of the hot path, added up here and written
    to prometheus-client by `flush()` (every SYNC_INTERVAL_S, and at shutdown)."""

    def __init__(self) -> None:
        self._counts: dict[Counter, int] = {}
        # Per histogram (all use LATENCY_BUCKETS_S): observations per bucket, then their sum.
        self._observed: dict[Histogram, list[float]] = {}

    def inc(self, counter: Counter) -> None:
        """One increment of `counter` (a labelled child, or a counter without labels)."""
        self._counts[counter] = self._counts.get(counter, 0) + 1

    def observe(self, histogram: Histogram, seconds: float) -> None:
        pending = self._observed.get(histogram)
        if pending is None:
            pending = self._observed[histogram] = [0.0] * (len(_BOUNDS) + 1)
        # The bucket Histogram.observe would count it in: the first bound at or above it.
        pending[bisect.bisect_left(_BOUNDS, seconds)] += 1
        pending[-1] += seconds

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for counter, n in counts.items():
            counter.inc(n)
        observed, self._observed = self._observed, {}
        for histogram, pending in observed.items():
            # prometheus-client has no call for many observations at once: write its bucket
            # and sum values the way observe() does (pinned version; tests/unit/test_metrics.py).
            buckets = histogram._buckets
            assert len(buckets) == len(_BOUNDS), "a histogram not on LATENCY_BUCKETS_S"
            histogram._sum.inc(pending[-1])
            for index, observations in enumerate(pending[:-1]):
                if observations:
                    buckets[index].inc(observations)


_BOUNDS = (*LATENCY_BUCKETS_S, math.inf)
TALLY = Tally()
