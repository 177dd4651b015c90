"""Posting on more than one core: LEDGER_WORKERS writer processes share one writer's streams.

A writer's work is Python (parsing records, building rows, encoding them for asyncpg) and
Postgres (writing them); one Python process keeps at most one core busy, and with its lanes
waiting for that core Postgres idles too. With several worker processes, worker i of n
posts shard streams i, i + n, i + 2n, ... (each in its own lanes): the streams are split, not
shared, so every shard's records are still posted by one lane, in stream order. All workers
use the writer's consumer name (`writer-<slot>`): a consumer is per stream in Redis, so a
restarted set re-reads every stream's pending entries, whichever worker owns it now.

The parent process posts nothing. It starts the workers (`python -m ledger_writer` with
LEDGER_WORKER_INDEX set), opens the Prometheus endpoint for all of them once every worker is
ready (prometheus-client multiprocess mode: every worker writes its metrics to files in a
private directory that the parent aggregates; the writer is ready when the port answers),
and forwards SIGTERM/SIGINT to them: each finishes the batch in hand and exits, then the
parent exits. A worker that dies on its own takes the others down with it and the parent
exits non-zero, for the supervisor to restart the set; a parent that is killed outright
takes its workers with it (PR_SET_PDEATHSIG), and what they had read stays pending.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

# The server's: ask the kernel to SIGTERM a worker whose parent dies, even by SIGKILL.
from authz_server.workers import _die_with_parent, serve_parent_metrics, wait_or_kill
from ledger_writer.config import LedgerSettings

log = logging.getLogger(__name__)

WORKER_INDEX_ENV = "LEDGER_WORKER_INDEX"
READY_DIR_ENV = "LEDGER_READY_DIR"  # where a worker says it is ready (a file named after its index)
POLL_INTERVAL_S = 0.05  # how often the parent checks on its workers
READY_TIMEOUT_S = 120.0  # a worker that is not ready by then (migrations, a projection rebuild) fails the set
STOP_WAIT_S = 30.0  # after SIGTERM, how long a worker may take to finish its batch before it is killed


def mark_ready(worker_index: int) -> None:
    """Called by a worker once it consumes: tells the parent (if any) that it is ready."""
    ready_dir = os.environ.get(READY_DIR_ENV)
    if ready_dir:
        (Path(ready_dir) / str(worker_index)).touch()


def run_workers(settings: LedgerSettings) -> int:
    """Starts settings.workers worker processes and supervises them until they stop; returns
    the process exit code (0 after a requested stop in which every worker exited cleanly)."""
    metrics_dir = tempfile.mkdtemp(prefix="zentra-ledger-metrics-")
    ready_dir = tempfile.mkdtemp(prefix="zentra-ledger-ready-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, READY_DIR_ENV: ready_dir}
    workers: list[subprocess.Popen[bytes]] = []
    stopping = False  # the workers were asked to stop...
    requested = False  # ...by a signal to the parent, not because one of them failed

    def stop_workers() -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal requested
        requested = requested or not stopping
        stop_workers()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for index in range(settings.workers):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ledger_writer"],
                    env={**env, WORKER_INDEX_ENV: str(index)},
                    preexec_fn=_die_with_parent,
                )
            )
        ready_by = time.monotonic() + READY_TIMEOUT_S
        metrics_open = False
        while not stopping:
            if any(worker.poll() is not None for worker in workers):
                log.error("a ledger-writer worker exited on its own; stopping the others")
                stop_workers()
                break
            if not metrics_open and len(os.listdir(ready_dir)) == len(workers):
                if settings.metrics_port:
                    serve_parent_metrics(settings.metrics_port, settings.metrics_addr, metrics_dir)
                metrics_open = True
                log.info("ledger-writer: %d workers ready", len(workers))
            elif not metrics_open and time.monotonic() > ready_by:
                log.error("ledger-writer workers not ready within %gs; stopping them", READY_TIMEOUT_S)
                stop_workers()
                break
            time.sleep(POLL_INTERVAL_S)
        codes = wait_or_kill(workers, time.monotonic() + STOP_WAIT_S)
        log.info("ledger-writer stopped (workers exited with %s)", codes)
        return 0 if requested and all(code == 0 for code in codes) else 1
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        shutil.rmtree(ready_dir, ignore_errors=True)
