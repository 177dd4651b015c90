"""The processes of a benchmark run: the stores, the servers under test, the load generators.

Redis and Postgres are private embedded servers in the run's temporary directory (the `make
run` ones, AOF on), unless REDIS_URL / DATABASE_URL name others. Every process the benchmark
starts runs in a session of its own, and is stopped by signalling its whole process group
(SIGTERM, then SIGKILL), so that the workers a server forked go with it, whatever happens to
the benchmark in between.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.run import apply_migrations, database_url, redis_url

REPO = Path(__file__).resolve().parents[1]
# A server start includes imports, a Postgres connection, migrations and the projection check;
# several workers start at once on a small machine.
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0  # SIGTERM to the group, then SIGKILL (authz-server drains up to 10 s)
POLL_INTERVAL_S = 0.1
HEALTH_CALL_TIMEOUT_S = 1.0
LOG_TAIL_CHARS = 3000
# Environment variables of the servers under test that the benchmark sets itself; any other
# AUTHZ_* setting of the caller's shell is dropped, so that the run measures the defaults
# (a generous AUTHZ_DECISION_BUDGET_MS would hide fail-closed answers, for one).
SERVER_ENV_PREFIX = "AUTHZ_"


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why (and where the logs are)."""


class StopRequested(Exception):
    """SIGINT or SIGTERM reached the benchmark: unwind, stopping everything it started."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def install_stop_signals() -> None:
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)


@dataclass(frozen=True)
class Stores:
    redis_url: str
    database_url: str
    embedded_redis: bool
    embedded_postgres: bool


@contextlib.contextmanager
def stores(data_dir: Path) -> Iterator[Stores]:
    """Redis and Postgres, migrated; embedded ones are stopped on exit."""
    with contextlib.ExitStack() as stack:
        redis = redis_url(data_dir, stack)
        database = database_url(data_dir, stack)
        apply_migrations(database)
        yield Stores(redis, database, not os.environ.get("REDIS_URL"), not os.environ.get("DATABASE_URL"))


def server_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The benchmark's environment without the caller's AUTHZ_* settings, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVER_ENV_PREFIX)}
    env.update(overrides)
    return env


class Child:
    """`python -m <module> args` in its own session, output to `<log_dir>/<name>.log`."""

    def __init__(self, name: str, module: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=dict(env),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if self.log.exists() else ""

    def wait(self, timeout_s: float) -> int:
        """Waits for the process to exit by itself; BenchError (after stopping it) if it does not."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise BenchError(f"{self.name} did not finish within {timeout_s:g}s:\n{self.log_tail()}") from None

    def stop(self) -> None:
        stop_group(self.process, STOP_TIMEOUT_S)


def start_null_server(port: int, workers: int, log_dir: Path) -> Child:
    """`python -m loadtest.null_server` on 127.0.0.1:`port` with `workers` worker processes."""
    return Child(
        "null-server",
        "loadtest.null_server",
        ["--listen", f"127.0.0.1:{port}", "--workers", str(workers)],
        server_env({}),
        log_dir,
    )


def stop_group(process: subprocess.Popen[Any], timeout_s: float) -> None:
    """SIGTERM to the group of `process` (a session leader), SIGKILL to it after `timeout_s`.
    Nothing is signalled once the leader has been reaped: its group id may be reused."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def listeners(port: int) -> int:
    """How many sockets listen on TCP `port` on this host (one per SO_REUSEPORT worker)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


# --- how busy the machine was with things other than the benchmark ---------------------

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    at_s: float  # time.monotonic
    busy_ticks: int  # every CPU's non-idle time, the hypervisor's steal included
    ours_ticks: int  # the benchmark's processes: this one, its descendants, and its Postgres


def _busy_ticks() -> int:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, CPU ticks with reaped children's, command line) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        # After the command: state, ppid, ..., utime (14th field of the line), stime, cutime, cstime.
        table[int(entry)] = (int(fields[1]), sum(int(v) for v in fields[11:15]), command)
    return table


def cpu_sample(marker: str) -> CpuSample:
    """The machine's busy time and the part of it that is ours. Ours: this process and its
    descendants (reaped ones through cutime), and process trees whose command line holds
    `marker` (the embedded Postgres daemonizes away from us, but runs in our work dir)."""
    busy = _busy_ticks()
    table = _processes()
    roots = {os.getpid()} | {pid for pid, (_, _, command) in table.items() if marker in command}
    ours = 0
    for pid, (_, ticks, _) in table.items():
        ancestor, hops = pid, 0
        while ancestor > 1 and ancestor not in roots and hops < len(table):
            ancestor, hops = table.get(ancestor, (0, 0, ""))[0], hops + 1
        if ancestor in roots:
            ours += ticks
    return CpuSample(time.monotonic(), busy, ours)


def background_cores(before: CpuSample, after: CpuSample) -> float:
    """CPU (in cores) that other processes took between two samples: noise in a measurement."""
    seconds = after.at_s - before.at_s
    if seconds <= 0:
        return 0.0
    others = (after.busy_ticks - before.busy_ticks) - (after.ours_ticks - before.ours_ticks)
    return max(0.0, others / CLOCK_TICKS_PER_S / seconds)


def wait_for_quiet(marker: str, threshold_cores: float, sample_s: float, wait_s_max: float) -> float:
    """Waits (up to `wait_s_max`) for a `sample_s` window in which other processes take less
    than `threshold_cores`; returns what they took in the last window."""
    deadline = time.monotonic() + wait_s_max
    while True:
        before = cpu_sample(marker)
        time.sleep(sample_s)
        background = background_cores(before, cpu_sample(marker))
        if background < threshold_cores or time.monotonic() >= deadline:
            return background


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=HEALTH_CALL_TIMEOUT_S
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def wait_ready(child: Child, port: int, workers: int, forks_workers: bool) -> list[int]:
    """Waits until all `workers` listen on `port` and health says SERVING; returns the pids of
    the worker processes (the children of `child` if it forks workers, else `child` itself).
    Connecting before every worker listens would pile every connection onto the first one."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    target = f"127.0.0.1:{port}"
    while True:
        child.check_alive()
        pids = children_of(child.pid) if forks_workers else [child.pid]
        if len(pids) == workers and listeners(port) >= workers and serving(target):
            return pids
        if time.monotonic() > deadline:
            raise BenchError(
                f"{child.name}: {listeners(port)} of {workers} workers listening, not SERVING within "
                f"{READY_TIMEOUT_S:g}s:\n{child.log_tail()}"
            )
        time.sleep(POLL_INTERVAL_S)


def run_json(name: str, module: str, args: Sequence[str], log_dir: Path, timeout_s: float) -> dict[str, Any]:
    """Runs `python -m module args` to completion in its own session and returns the JSON it
    printed on stdout; its stderr goes to `<log_dir>/<name>.log`."""
    return gather_json([(name, module, args)], log_dir, timeout_s)[0]


def gather_json(
    commands: Sequence[tuple[str, str, Sequence[str]]], log_dir: Path, timeout_s: float
) -> list[dict[str, Any]]:
    """Runs several `python -m module args` at once (name, module, args), each to completion,
    and returns the JSON each printed; any failure or timeout stops all of them."""
    running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for name, module, args in commands:
            log = log_dir / f"{name}.log"
            with log.open("ab") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", module, *args],
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=sink,
                    start_new_session=True,
                )
            running.append((name, process, log))
        deadline = time.monotonic() + timeout_s
        results = []
        for name, process, log in running:
            try:
                stdout, _ = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise BenchError(f"{name} did not finish within {timeout_s:g}s; see {log}") from None
            if process.returncode != 0:
                tail = log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
                raise BenchError(f"{name} exited with {process.returncode}:\n{tail}")
            results.append(json.loads(stdout))
        return results
    finally:
        for _, process, _ in running:
            stop_group(process, STOP_TIMEOUT_S)
