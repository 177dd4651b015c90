"""`make run` and `make migrate`: the development stack, started and stopped in order.

`run_stack` starts Redis and Postgres (private embedded servers under the data dir unless
REDIS_URL / DATABASE_URL are set), applies migrations, starts `python -m authz_server` and
waits until its gRPC health check says SERVING, then starts `python -m ledger_writer` and
waits until its metrics port (LEDGER_METRICS_PORT, default 9465) answers, creates demo data
(tenant `demo`, fresh PROCESSOR and ADMIN keys, one USD card) and prints `ready` followed by
commands that work as printed. On SIGINT or SIGTERM it stops the server, then the writer,
then the embedded Postgres and Redis it started; if the server or the writer dies by itself
it says which, with its last stderr lines, stops the rest and exits 1.

The printed commands carry the demo PROCESSOR key: they are for the developer's terminal.
The admin token is never printed; it lives in `<data-dir>/admin-token` (mode 0600)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

import asyncpg
import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_server.config import ConfigError, Settings
from authz_server.store.migrate import MigrationError, migrate_url
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis, prepare_dir
from ledger_writer.config import LedgerSettings
from zentra.cards.v1 import authorization_pb2, card_pb2, card_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

# The server migrates, loads its scripts and probes both stores before it reports SERVING;
# on a cold machine (first import, first Postgres connection) that takes a few seconds.
SERVER_READY_TIMEOUT_S = 60.0
# The server drains for up to its own shutdown grace (10 s by default) after SIGTERM.
SERVER_STOP_TIMEOUT_S = 15.0
# The writer migrates and creates its consumer groups before its metrics port answers.
WRITER_READY_TIMEOUT_S = 60.0
# After SIGTERM the writer finishes the batch in hand (one Postgres transaction) and exits.
WRITER_STOP_TIMEOUT_S = 15.0
# One health probe or demo-setup call; the server answers in milliseconds once up.
CALL_TIMEOUT_S = 5.0
# How often a starting server is probed, and how often a running one is checked for life.
POLL_INTERVAL_S = 0.2
# Lines of a child process's stderr kept to explain why it died.
STDERR_TAIL_LINES = 40
ADMIN_TOKEN_FILE = "admin-token"
DEMO_FILE = "demo.json"
ADMIN_TOKEN_BYTES = 32  # 256 random bits, 43 url-safe characters
DEMO_TENANT_ID = "demo"
# The example purchase in the printed commands.
DEMO_AMOUNT_MINOR = 1250
DEMO_DAILY_LIMIT_MINOR = 500_000

# pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR (containers,
# CI) that warns on every run, although the fallback under /tmp is fine for a dev stack.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class DevstackError(RuntimeError):
    """The stack could not start, or a process it started stopped by itself; the message says why."""


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived: unwind, stopping everything started so far."""


def say(line: str) -> None:
    """One progress line on stdout, flushed at once so that a reader (or a test) sees it."""
    print(line, flush=True)


# --- signals -----------------------------------------------------------------------------


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


def install_stop_signals() -> None:
    """SIGINT and SIGTERM raise StopRequested in the main thread, wherever it is."""
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)


def ignore_stop_signals() -> None:
    """While stopping, a second Ctrl-C must not cut the (bounded) clean-up short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# --- backing services --------------------------------------------------------------------


def redis_url(data_dir: Path, stack: contextlib.ExitStack) -> str:
    """REDIS_URL if set; else a private valkey-server on a free port with its data (AOF) in
    `<data-dir>/redis`, kept across runs, and stopped when `stack` closes."""
    if os.environ.get("REDIS_URL"):
        say("redis: using REDIS_URL from the environment")
        return os.environ["REDIS_URL"]
    redis = EmbeddedRedis(data_dir / "redis")
    stack.callback(_stop_embedded, "redis", redis.stop)
    try:
        redis.start()
    except RuntimeError as error:
        raise DevstackError(f"embedded Redis did not start: {error}") from None
    say(f"redis: embedded valkey at {redis.url} (data in {redis.data_dir})")
    return redis.url


def database_url(data_dir: Path, stack: contextlib.ExitStack) -> str:
    """DATABASE_URL if set; else a private PostgreSQL in `<data-dir>/pg` on a Unix socket,
    kept across runs, and stopped when `stack` closes."""
    if os.environ.get("DATABASE_URL"):
        say("postgres: using DATABASE_URL from the environment")
        return os.environ["DATABASE_URL"]
    postgres = EmbeddedPostgres(data_dir / "pg")
    stack.callback(_stop_embedded, "postgres", postgres.stop)
    try:
        postgres.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        log = postgres.data_dir / "log"
        raise DevstackError(f"embedded Postgres did not start ({error}); see {log}") from None
    say(f"postgres: embedded PostgreSQL at {postgres.url} (data in {postgres.data_dir})")
    return postgres.url


def _stop_embedded(name: str, stop: Callable[[], None]) -> None:
    say(f"{name}: stopping")
    stop()


def apply_migrations(database_url: str) -> list[str]:
    """Applies pending migrations and says which ran; returns their names."""
    try:
        applied = asyncio.run(migrate_url(database_url))
    except (OSError, asyncpg.PostgresError, MigrationError) as error:
        raise DevstackError(f"migrations failed: {type(error).__name__}: {error}") from None
    say(f"migrations: applied {', '.join(applied)}" if applied else "migrations: up to date")
    return applied


# --- the admin token ---------------------------------------------------------------------


def admin_token(data_dir: Path) -> str:
    """AUTHZ_ADMIN_TOKEN if set; else the token kept in `<data-dir>/admin-token`, created
    (random, mode 0600) on the first run, so that every later run uses the same one."""
    if os.environ.get("AUTHZ_ADMIN_TOKEN"):
        return os.environ["AUTHZ_ADMIN_TOKEN"]
    path = data_dir / ADMIN_TOKEN_FILE
    if not path.exists():
        write_private(path, secrets.token_urlsafe(ADMIN_TOKEN_BYTES) + "\n")
        say(f"admin token: generated, in {path}")
    token = path.read_text().strip()
    if len(token) < 16:
        raise DevstackError(f"{path} holds a token shorter than 16 characters; delete it to get a new one")
    return token


def write_private(path: Path, text: str) -> None:
    """Writes `text` to `path` readable by the owner only (0600), atomically: a reader never
    sees a half-written file, and a file that was laxer before is replaced, not reused."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)


# --- the server and ledger writer processes ----------------------------------------------


class ChildProcess:
    """`python -m <module>` in a session of its own, so that a terminal's Ctrl-C reaches only
    devstack, which then stops it before the stores it needs. Its stderr is copied to ours
    line by line; the last lines are kept to explain a death."""

    def __init__(self, name: str, module: str, env: dict[str, str], stop_timeout_s: float) -> None:
        self.name = name
        self.stop_timeout_s = stop_timeout_s
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._copier = threading.Thread(target=self._copy_stderr, name=f"{name}-stderr", daemon=True)
        self._copier.start()

    def _copy_stderr(self) -> None:
        stream: IO[bytes] | None = self.process.stderr
        assert stream is not None
        for raw in stream:
            line = raw.decode(errors="replace")
            self._tail.append(line)
            sys.stderr.write(line)
            sys.stderr.flush()

    def running(self) -> bool:
        return self.process.poll() is None

    def death_report(self) -> str:
        """Exit code and the last stderr lines; call once the process has exited."""
        self._copier.join(timeout=2.0)
        tail = "".join(self._tail).rstrip() or "(no output)"
        return f"{self.name} exited with code {self.process.returncode}; its last stderr lines:\n{tail}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within its stop timeout."""
        if self.running():
            say(f"{self.name}: stopping")
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                say(f"{self.name}: still running after {self.stop_timeout_s:g}s; killing it")
                self.process.kill()
                self.process.wait()
        self._copier.join(timeout=2.0)


class Children:
    """The processes devstack started, stopped in the order they were started: the server
    first, so that its last decisions are in the streams before the writer stops (what the
    writer does not post before it stops stays in Redis for the next run), then the writer,
    and only then (by the ExitStack) Postgres and Redis."""

    def __init__(self) -> None:
        self.started: list[ChildProcess] = []

    def add(self, child: ChildProcess) -> ChildProcess:
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.started:
            child.stop()

    def first_dead(self) -> ChildProcess | None:
        return next((child for child in self.started if not child.running()), None)


def client_target(listen_addr: str) -> str:
    """Where a client on this machine reaches a server listening on `listen_addr`."""
    host, _, port = listen_addr.rpartition(":")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


def refuse_busy_port(target: str, variable: str) -> None:
    """Fails if something already accepts connections at `target` (another `make run`?): a
    readiness probe must not mistake that for our process. `variable` is the setting to change."""
    host, _, port = target.rpartition(":")
    with contextlib.suppress(OSError), socket.create_connection((host.strip("[]"), int(port)), timeout=0.5):
        raise DevstackError(f"{target} is already in use; stop that process or set {variable}")


def start_server(env: dict[str, str], target: str, children: Children) -> ChildProcess:
    """Starts the server and returns once its health check says SERVING; it is stopped with
    `children`. DevstackError (with the server's stderr tail) if it dies or takes too long."""
    refuse_busy_port(target, "AUTHZ_LISTEN_ADDR")
    server = children.add(ChildProcess("authz-server", "authz_server", env, SERVER_STOP_TIMEOUT_S))
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while not _is_serving(health):
            if not server.running():
                raise DevstackError(server.death_report())
            if time.monotonic() > deadline:
                raise DevstackError(f"authz-server did not report SERVING within {SERVER_READY_TIMEOUT_S:g}s")
            time.sleep(POLL_INTERVAL_S)
    say(f"authz-server: serving at {target}")
    return server


def _is_serving(health: health_pb2_grpc.HealthStub) -> bool:
    try:
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S)
    except grpc.RpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def writer_metrics_url(settings: LedgerSettings) -> str:
    """Where the ledger writer's Prometheus endpoint (and readiness signal) answers."""
    return f"http://{client_target(f'{settings.metrics_addr}:{settings.metrics_port}')}/metrics"


def start_ledger_writer(env: dict[str, str], settings: LedgerSettings, children: Children) -> ChildProcess:
    """Starts `python -m ledger_writer` and returns once its metrics port answers (DESIGN §4:
    that is its readiness); it is stopped with `children`, after the server. DevstackError
    (with the writer's stderr tail) if it dies or takes longer than WRITER_READY_TIMEOUT_S."""
    refuse_busy_port(client_target(f"{settings.metrics_addr}:{settings.metrics_port}"), "LEDGER_METRICS_PORT")
    url = writer_metrics_url(settings)
    writer = children.add(ChildProcess("ledger-writer", "ledger_writer", env, WRITER_STOP_TIMEOUT_S))
    deadline = time.monotonic() + WRITER_READY_TIMEOUT_S
    while not _answers(url):
        if not writer.running():
            raise DevstackError(writer.death_report())
        if time.monotonic() > deadline:
            raise DevstackError(f"ledger-writer metrics did not answer at {url} within {WRITER_READY_TIMEOUT_S:g}s")
        time.sleep(POLL_INTERVAL_S)
    say(f"ledger-writer: posting to the ledger, metrics at {url}")
    return writer


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=CALL_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, timed out; urllib.error.URLError is an OSError
        return False


def wait_while_running(children: Children) -> NoReturn:
    """Blocks until a stop signal (StopRequested) or the death of any process devstack
    started (DevstackError naming it, with its stderr tail)."""
    while (dead := children.first_dead()) is None:
        time.sleep(POLL_INTERVAL_S)
    raise DevstackError(dead.death_report())


# --- demo data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Demo:
    """What `create_demo` made; written to `<data-dir>/demo.json` (mode 0600)."""

    target: str
    tenant_id: str
    card_id: str
    processor_key: str
    admin_key: str


def demo_controls() -> t.SpendControls:
    """Controls a real program might set: per-purchase and daily caps, no gambling (MCC 7995),
    and large purchases referred for review."""
    return t.SpendControls(
        spending_limits=[
            t.SpendLimit(interval=t.PER_AUTHORIZATION, amount_minor=200_000),
            t.SpendLimit(interval=t.DAILY, amount_minor=DEMO_DAILY_LIMIT_MINOR),
        ],
        blocked_mccs=["7995"],
        review_threshold_minor=150_000,
    )


def _bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def create_demo(target: str, token: str) -> Demo:
    """Tenant `demo` (reused if it exists), new PROCESSOR and ADMIN keys, and a new USD card."""
    with grpc.insecure_channel(target) as channel:
        tenants = tenant_pb2_grpc.TenantServiceStub(channel)
        cards = card_pb2_grpc.CardServiceStub(channel)
        try:
            _ensure_demo_tenant(tenants, token)
            processor_key = _new_key(tenants, token, t.PROCESSOR)
            admin_key = _new_key(tenants, token, t.ADMIN)
            card = cards.IssueCard(
                card_pb2.IssueCardRequest(
                    idempotency_key=f"devstack-{secrets.token_hex(8)}",
                    customer_ref="demo-customer",
                    account_ref="demo-account",
                    currency="USD",
                    spend_controls=demo_controls(),
                ),
                metadata=_bearer(admin_key),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.RpcError as error:
            raise DevstackError(f"creating the demo data failed: {error.code().name}: {error.details()}") from None
    say(f"demo: tenant {DEMO_TENANT_ID}, card {card.card_id}, new PROCESSOR and ADMIN keys")
    return Demo(target, DEMO_TENANT_ID, card.card_id, processor_key, admin_key)


def _ensure_demo_tenant(tenants: tenant_pb2_grpc.TenantServiceStub, token: str) -> None:
    request = tenant_pb2.CreateTenantRequest(tenant_id=DEMO_TENANT_ID, name="Demo tenant")
    try:
        tenants.CreateTenant(request, metadata=_bearer(token), timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        say(f"demo: tenant {DEMO_TENANT_ID} exists; reusing it")


def _new_key(tenants: tenant_pb2_grpc.TenantServiceStub, token: str, role: t.Role) -> str:
    label = f"devstack {t.Role.Name(role).lower()}"
    request = tenant_pb2.CreateApiKeyRequest(tenant_id=DEMO_TENANT_ID, role=role, label=label)
    return str(tenants.CreateApiKey(request, metadata=_bearer(token), timeout=CALL_TIMEOUT_S).secret)


# --- the printed block -------------------------------------------------------------------


def demo_authorize_json(card_id: str, authorization_id: str) -> str:
    """The example Authorize request in proto JSON (field names as in the .proto), checked
    against the message type so that a typo fails here rather than in the printed command."""
    request = {
        "authorization_id": authorization_id,
        "card_id": card_id,
        "amount_minor": DEMO_AMOUNT_MINOR,
        "currency": "USD",
        "merchant": {"id": "m-demo-1", "name": "Demo Cafe", "mcc": "5812", "country": "US", "city": "Boston"},
        "channel": "CARD_PRESENT",
    }
    json_format.ParseDict(request, authorization_pb2.AuthorizeRequest())
    return json.dumps(request, separators=(",", ":"))


def authzctl_program() -> str:
    """How to run authzctl from here: the venv's script (relative to the working directory
    when inside it, e.g. `.venv/bin/authzctl`), or `python -m authzctl` without one."""
    script = Path(sys.executable).parent / "authzctl"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m authzctl"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def metrics_url(settings: Settings) -> str:
    """Where the server's Prometheus endpoint answers, or why it does not."""
    if not settings.metrics_port:
        return "off (AUTHZ_METRICS_PORT=0)"
    return f"http://{client_target(f'{settings.metrics_addr}:{settings.metrics_port}')}/metrics"


def ready_block(demo: Demo, metrics: str, ledger_metrics: str, data_dir: Path) -> str:
    """The commands a developer copies: grpcurl, authzctl and ghz against the demo card."""
    authorize_rpc = "zentra.cards.v1.AuthorizationService/Authorize"
    key = demo.processor_key
    grpcurl_id = f"grpcurl-{secrets.token_hex(4)}"
    ghz_id = "ghz-{{newUUID}}"  # ghz template function: a fresh id for every call
    purchases_per_day = DEMO_DAILY_LIMIT_MINOR // DEMO_AMOUNT_MINOR
    grpcurl = " ".join(
        (
            "grpcurl -plaintext",
            "-H " + shlex.quote(f"authorization: Bearer {key}"),
            "-d " + shlex.quote(demo_authorize_json(demo.card_id, grpcurl_id)),
            demo.target,
            authorize_rpc,
        )
    )
    authzctl = (
        f"{authzctl_program()} --target {demo.target} --token {shlex.quote(key)} "
        f"authorize {demo.card_id} {DEMO_AMOUNT_MINOR} --currency USD --mcc 5812 --country US"
    )
    ghz = " ".join(
        (
            f"ghz --insecure --call {authorize_rpc}",
            "--metadata " + shlex.quote(json.dumps({"authorization": f"Bearer {key}"})),
            "-d " + shlex.quote(demo_authorize_json(demo.card_id, ghz_id)),
            f"-n 10000 -c 50 {demo.target}",
        )
    )
    return "\n".join(
        (
            "",
            f"Zentra Cards is serving at {demo.target} (plaintext gRPC, reflection on).",
            f"  metrics:  {metrics}",
            f"  ledger:   {ledger_metrics} (ledger writer metrics; lag per shard, postings)",
            f"  demo:     tenant {demo.tenant_id}, card {demo.card_id} (keys in {data_dir / DEMO_FILE})",
            "",
            "Authorize a purchase with grpcurl (run it twice: the second answer is replayed):",
            f"  {grpcurl}",
            "",
            "The same with authzctl:",
            f"  {authzctl}",
            "",
            f"Load test with ghz (the card's daily limit declines after {purchases_per_day} purchases):",
            f"  {ghz}",
            "",
            "Ctrl-C stops the server and the ledger writer, then Postgres and Redis.",
        )
    )


# --- commands ----------------------------------------------------------------------------


def run_stack(data_dir: Path) -> int:
    """`python -m devstack run`: 0 after a stop signal, 1 if the stack failed, 2 on bad config."""
    try:
        settings = Settings.from_env()
        ledger = LedgerSettings.from_env()
        if not ledger.metrics_port:
            raise ConfigError("LEDGER_METRICS_PORT=0 turns off the port that says the ledger writer is ready")
    except ConfigError as error:
        print(f"devstack: configuration error: {error}", file=sys.stderr)
        return 2
    data_dir = prepare_dir(data_dir.resolve())
    install_stop_signals()
    try:
        with contextlib.ExitStack() as stack:
            try:
                _run_until_stopped(settings, ledger, data_dir, stack)
            finally:
                ignore_stop_signals()
    except StopRequested:
        say("stopped")
        return 0
    except DevstackError as error:
        print(f"devstack: {error}", file=sys.stderr, flush=True)
        return 1


def _run_until_stopped(
    settings: Settings, ledger: LedgerSettings, data_dir: Path, stack: contextlib.ExitStack
) -> NoReturn:
    redis = redis_url(data_dir, stack)
    database = database_url(data_dir, stack)
    apply_migrations(database)
    token = admin_token(data_dir)
    children = Children()
    stack.callback(children.stop_all)  # registered after the stores: runs before they stop
    stores = {**os.environ, "REDIS_URL": redis, "DATABASE_URL": database}
    server_env = {
        **stores,
        "AUTHZ_ADMIN_TOKEN": token,
        "AUTHZ_LISTEN_ADDR": settings.listen_addr,
        "AUTHZ_METRICS_PORT": str(settings.metrics_port),
    }
    target = client_target(settings.listen_addr)
    start_server(server_env, target, children)
    # The writer never needs the admin token; AUTHZ_KEY_PREFIX and AUTHZ_SHARDS pass through
    # from the environment, so that both processes agree on the keyspace.
    writer_env = {k: v for k, v in stores.items() if k != "AUTHZ_ADMIN_TOKEN"}
    writer_env["LEDGER_METRICS_PORT"] = str(ledger.metrics_port)
    start_ledger_writer(writer_env, ledger, children)
    demo = create_demo(target, token)
    write_private(data_dir / DEMO_FILE, json.dumps(asdict(demo), indent=2) + "\n")
    say("ready")
    say(ready_block(demo, metrics_url(settings), writer_metrics_url(ledger), data_dir))
    wait_while_running(children)


def migrate_only(data_dir: Path) -> int:
    """`python -m devstack migrate`: applies migrations to DATABASE_URL, or to the embedded
    Postgres (started for the purpose and stopped again). 0 on success, 1 on failure."""
    data_dir = prepare_dir(data_dir.resolve())
    install_stop_signals()
    try:
        with contextlib.ExitStack() as stack:
            try:
                apply_migrations(database_url(data_dir, stack))
            finally:
                ignore_stop_signals()
    except StopRequested:
        say("interrupted")
        return 1
    except DevstackError as error:
        print(f"devstack: {error}", file=sys.stderr, flush=True)
        return 1
    return 0
