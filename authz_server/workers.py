"""Serving on every core: AUTHZ_WORKERS server processes share one port (SO_REUSEPORT).

The parent process does not serve gRPC. It starts the workers (`python -m authz_server` with
AUTHZ_WORKER_INDEX set), serves the Prometheus endpoint for all of them (prometheus-client
multiprocess mode: every worker writes its metrics to files in a private directory that the
parent aggregates), and forwards SIGTERM/SIGINT to them. Whether the signal reaches the whole
process group (Ctrl-C, systemd) or only the parent (docker stop), every worker drains its
in-flight calls and exits; then the parent exits. A worker that dies on its own takes the
others down with it and the parent exits non-zero, for the supervisor to restart the set; a
parent that is killed outright takes its workers with it (PR_SET_PDEATHSIG).

SO_REUSEPORT balances connections, not calls: a client holding one HTTP/2 connection keeps
one worker busy. grpc.max_connection_age_ms (server.py) makes clients reconnect, and so
rebalance, every few minutes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from prometheus_client import CollectorRegistry, ProcessCollector, multiprocess, start_http_server

from authz_server.config import Settings

log = logging.getLogger(__name__)

WORKER_INDEX_ENV = "AUTHZ_WORKER_INDEX"
POLL_INTERVAL_S = 0.1  # how often the parent checks on its workers
STOP_WAIT_S_EXTRA = 5.0  # beyond the workers' own shutdown grace, before they are killed
PR_SET_PDEATHSIG = 1  # prctl(2) option: signal this process when its parent dies


def _die_with_parent() -> None:
    """Runs in each worker before exec: on Linux, ask the kernel to SIGTERM the worker when the
    supervising parent dies (even by SIGKILL), so that no orphaned worker keeps serving, and
    deciding, outside the set the supervisor manages."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's own shutdown path still stops its workers


def serve_parent_metrics(port: int, addr: str, metrics_dir: str) -> None:
    """The supervising parent's Prometheus endpoint: every worker's metrics (multiprocess mode,
    from `metrics_dir`) and the parent's own process metrics. Also used by the ledger writer's
    parent (ledger_writer/workers.py)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir)
    ProcessCollector(registry=registry)
    start_http_server(port, addr=addr, registry=registry)


def wait_or_kill(workers: list[subprocess.Popen[bytes]], deadline: float) -> list[int]:
    """Waits for every worker until `deadline` (time.monotonic()), kills those still running
    then; returns their exit codes."""
    for worker in workers:
        try:
            worker.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return [worker.wait() for worker in workers]


def run_workers(settings: Settings) -> int:
    """Starts settings.workers worker processes and supervises them until they stop."""
    metrics_dir = tempfile.mkdtemp(prefix="zentra-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    workers: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for index in range(settings.workers):
            worker_env = {**env, WORKER_INDEX_ENV: str(index)}
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "authz_server", "serve"], env=worker_env, preexec_fn=_die_with_parent
                )
            )
        if settings.metrics_port:  # the parent's own process metrics; workers report zentra_authz_worker_*
            serve_parent_metrics(settings.metrics_port, settings.metrics_addr, metrics_dir)
        log.info("authz-server: %d workers on %s", settings.workers, settings.listen_addr)
        while not stopping:
            if any(worker.poll() is not None for worker in workers):
                log.error("a worker exited on its own; stopping the others")
                stop(signal.SIGTERM, None)
                break
            time.sleep(POLL_INTERVAL_S)
        codes = wait_or_kill(workers, time.monotonic() + settings.shutdown_grace_s + STOP_WAIT_S_EXTRA)
        log.info("authz-server: workers stopped with %s", codes)
        return 0 if all(code == 0 for code in codes) and stopping else 1
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)
