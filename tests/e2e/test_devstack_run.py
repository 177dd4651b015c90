"""`make run` (`python -m devstack run`) brings up a server and a ledger writer whose printed commands approve a purchase that gets posted, keeps its data across runs, and takes everything it started down on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from devstack.embedded import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 120.0  # first run: initdb, migrations, server start-up
STOP_TIMEOUT_S = 30.0  # server drain (<= 15 s) plus stopping Redis and Postgres
COMMAND_TIMEOUT_S = 60.0
END_OF_BLOCK = "Ctrl-C stops"
POSTED_TIMEOUT_S = 30.0  # the writer posts a decision within its batch wait once it is running


class Output:
    """Collects a process's stdout lines on a thread, so the test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._process = process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line within {timeout_s}s; output so far:\n{self.text()}") from None
            if line is None:
                raise AssertionError(f"devstack exited before the expected line; output:\n{self.text()}")
            self.lines.append(line)
            if predicate(line):
                return line

    def text(self) -> str:
        return "\n".join(self.lines)

    def command(self, first_word: str) -> str:
        """The printed command line whose program name ends with `first_word`."""
        for line in self.lines:
            words = line.split(maxsplit=1)
            if words and words[0].endswith(first_word):
                return line.strip()
        raise AssertionError(f"no {first_word} command printed:\n{self.text()}")


@dataclass
class Devstack:
    process: subprocess.Popen[str]
    output: Output
    data_dir: Path
    target: str
    writer_metrics_port: int
    stderr_path: Path

    @property
    def redis_port(self) -> int:
        match = re.search(r"redis: embedded valkey at redis://127\.0\.0\.1:(\d+)/", self.output.text())
        assert match, f"the embedded Redis port was not printed:\n{self.output.text()}"
        return int(match.group(1))

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        returncode = self.process.wait(STOP_TIMEOUT_S)
        self.output.wait_for(lambda line: line == "stopped", 5)
        return returncode

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    @property
    def writer_metrics_target(self) -> str:
        return f"127.0.0.1:{self.writer_metrics_port}"

    def writer_sample(self, name: str, **labels: str) -> float | None:
        """One sample of the ledger writer's metrics, or None if it is not exposed (yet)."""
        url = f"http://{self.writer_metrics_target}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for found in family.samples:
                if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                    return float(found.value)
        return None


@contextlib.contextmanager
def devstack_run(
    data_dir: Path, log_dir: Path, writer_metrics_port: int | None = None, wait_ready: bool = True
) -> Iterator[Devstack]:
    """`python -m devstack run --data-dir <data_dir>` on free ports (the writer's unless given)
    with embedded Redis and Postgres, once it has printed its commands (at once without
    `wait_ready`); killed (and its servers stopped) if the test did not stop it."""
    listen_port, metrics_port = free_port(), free_port()
    writer_metrics_port = writer_metrics_port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "AUTHZ_ADMIN_TOKEN")}
    env.update(
        AUTHZ_LISTEN_ADDR=f"127.0.0.1:{listen_port}",
        AUTHZ_METRICS_PORT=str(metrics_port),
        LEDGER_METRICS_PORT=str(writer_metrics_port),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = log_dir / f"devstack-{listen_port}.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run", "--data-dir", str(data_dir)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    running = Devstack(process, Output(process), data_dir, f"127.0.0.1:{listen_port}", writer_metrics_port, stderr_path)
    try:
        try:
            if wait_ready:
                running.output.wait_for(lambda line: line.startswith(END_OF_BLOCK), READY_TIMEOUT_S)
        except AssertionError as error:
            raise AssertionError(f"{error}\nstderr:\n{running.stderr()}") from None
        yield running
    finally:
        _kill(running)


def _kill(running: Devstack) -> None:
    """Stops a devstack the test left running, and any embedded server it left behind."""
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
    with contextlib.suppress(OSError, ValueError, IndexError):
        _stop_leftover_postgres(running.data_dir / "pg")
    with contextlib.suppress(AssertionError, redis.RedisError):
        if accepts_connections(f"127.0.0.1:{running.redis_port}"):
            redis.Redis(port=running.redis_port).shutdown(nosave=True)


def _stop_leftover_postgres(pgdata: Path) -> None:
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)  # fast shutdown


def accepts_connections(target: str) -> bool:
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


FAIL_CLOSED_RETRIES_MAX = 5


def authorize_like_a_processor(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Runs an authzctl authorize; like a processor, tries again (a new authorization id) on a
    fail-closed "96", which a freshly started server on a loaded 2-core machine may answer
    while it warms up (its decision budget is the default 50 ms)."""
    for _ in range(FAIL_CLOSED_RETRIES_MAX):
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, cwd=REPO_ROOT)
        if not result.stdout.startswith("DECLINE  SYSTEM_UNAVAILABLE"):
            break
        time.sleep(0.2)
    return result


def run_printed_authzctl(devstack: Devstack) -> str:
    """The printed authzctl command, run as `python -m authzctl` with the printed arguments."""
    arguments = shlex.split(devstack.output.command("authzctl"))[1:]
    result = authorize_like_a_processor([sys.executable, "-m", "authzctl", *arguments])
    assert result.returncode == 0, f"authzctl failed: {result.stderr}"
    return result.stdout


def run_printed_grpcurl(devstack: Devstack) -> dict[str, object]:
    """The printed grpcurl command, run exactly as printed; returns its JSON answer."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        shlex.split(devstack.output.command("grpcurl")),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env=env,
    )
    assert result.returncode == 0, f"grpcurl failed: {result.stderr}"
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def wait_posted_holds(devstack: Devstack, at_least: int) -> float:
    """Polls the writer's `zentra_ledger_postings_total{kind="hold"}` until it reaches `at_least`."""
    deadline = time.monotonic() + POSTED_TIMEOUT_S
    while True:
        holds = devstack.writer_sample("zentra_ledger_postings_total", kind="hold") or 0.0
        if holds >= at_least:
            return holds
        assert time.monotonic() < deadline, f"{holds} holds posted after {POSTED_TIMEOUT_S:g}s, want {at_least}"
        time.sleep(0.2)


def assert_all_stopped(devstack: Devstack, redis_port: int) -> None:
    assert not accepts_connections(devstack.target), "authz-server still listening after devstack exited"
    assert not accepts_connections(devstack.writer_metrics_target), "ledger-writer still running after devstack exited"
    assert not accepts_connections(f"127.0.0.1:{redis_port}"), "embedded Redis still running"
    assert not (devstack.data_dir / "pg" / "postmaster.pid").exists(), "embedded Postgres still running"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private directory outside pytest's /tmp/pytest-of-<user>: when run as root, Postgres
    runs as another user that must traverse the path, and every pytest session that starts
    meanwhile resets that directory to mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="zentra-devstack-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_printed_commands_approve_and_ctrl_c_stops_everything(workdir: Path) -> None:
    with devstack_run(workdir / "data", workdir / "logs") as devstack:
        output = devstack.output
        redis_port = devstack.redis_port
        assert "ready" in output.lines
        assert output.command("authzctl").startswith(".venv/bin/authzctl ")
        assert output.command("ghz").startswith("ghz --insecure --call zentra.cards.v1.AuthorizationService/Authorize")

        assert f"  ledger:   http://{devstack.writer_metrics_target}/metrics" in output.text()
        assert accepts_connections(devstack.writer_metrics_target), "the ledger writer is ready once devstack is"

        assert run_printed_authzctl(devstack).startswith("APPROVE  APPROVED  code=00  ")
        answer = run_printed_grpcurl(devstack)
        assert (answer["decision"], answer["reason"], answer["response_code"]) == (
            "APPROVE",
            "APPROVED",
            "00",
        )
        assert wait_posted_holds(devstack, 2) >= 2, "both demo approvals are posted to the ledger"

        assert devstack.stop(signal.SIGINT) == 0
        assert_all_stopped(devstack, redis_port)
        stops = [line for line in output.lines if line.endswith(": stopping")]
        assert stops == ["authz-server: stopping", "ledger-writer: stopping", "postgres: stopping", "redis: stopping"]
        admin_token = (devstack.data_dir / "admin-token").read_text().strip()
        for secret_file in ("admin-token", "demo.json"):
            assert (devstack.data_dir / secret_file).stat().st_mode & 0o777 == 0o600
        assert admin_token not in output.text() + devstack.stderr(), "the admin token was printed"


def test_a_rerun_keeps_the_data_the_admin_token_and_the_demo_tenant(workdir: Path) -> None:
    data_dir = workdir / "data"
    with devstack_run(data_dir, workdir / "logs") as first:
        first_demo = json.loads((data_dir / "demo.json").read_text())
        assert run_printed_authzctl(first).startswith("APPROVE  ")
        token_before = (data_dir / "admin-token").read_text()
        assert first.stop(signal.SIGTERM) == 0
        assert_all_stopped(first, first.redis_port)

    with devstack_run(data_dir, workdir / "logs") as second:
        second_demo = json.loads((data_dir / "demo.json").read_text())
        assert "demo: tenant demo exists; reusing it" in second.output.lines
        assert (data_dir / "admin-token").read_text() == token_before
        assert second_demo["tenant_id"] == first_demo["tenant_id"] == "demo"
        assert second_demo["processor_key"] != first_demo["processor_key"]

        # The first run's card survived in Postgres and Redis: the new key of the same tenant
        # can still spend on it.
        result = authorize_like_a_processor(
            [
                sys.executable, "-m", "authzctl", "--target", second.target, "--token", second_demo["processor_key"],
                "authorize", first_demo["card_id"], "700", "--currency", "USD", "--mcc", "5812", "--country", "US",
            ]
        )  # fmt: skip
        assert result.stdout.startswith("APPROVE  APPROVED  code=00  "), result.stderr
        assert second.stop(signal.SIGINT) == 0


def test_a_busy_ledger_metrics_port_fails_clearly_and_stops_what_started(workdir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        with devstack_run(workdir / "data", workdir / "logs", writer_metrics_port=port, wait_ready=False) as devstack:
            assert devstack.process.wait(READY_TIMEOUT_S) == 1
            devstack.output.wait_for(lambda line: line == "redis: stopping", 5)
            stops = [line for line in devstack.output.lines if line.endswith(": stopping")]
            assert stops == ["authz-server: stopping", "postgres: stopping", "redis: stopping"]
            assert (
                f"devstack: 127.0.0.1:{port} is already in use; stop that process or set LEDGER_METRICS_PORT"
                in devstack.stderr()
            )
            assert "ready" not in devstack.output.lines
            assert not accepts_connections(devstack.target), "authz-server still listening after devstack exited"
            assert not accepts_connections(f"127.0.0.1:{devstack.redis_port}"), "embedded Redis still running"
            assert not (devstack.data_dir / "pg" / "postmaster.pid").exists(), "embedded Postgres still running"
