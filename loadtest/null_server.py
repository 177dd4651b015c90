"""The null server: the ceiling of gRPC-in-Python on this machine, the baseline of `make bench`.

`python -m loadtest.null_server --listen HOST:PORT --workers N` serves
zentra.cards.v1.AuthorizationService/Authorize the way authz-server does (N worker processes on
one port with SO_REUSEPORT, grpc.aio on uvloop, the same server options and concurrency bound,
the generated servicer, so requests are parsed and responses serialized the same way, and only
AuthorizationService's methods registered, as there), but
answers every call with one constant AuthorizeResponse: no authentication, no validation, no
Redis. Whatever throughput and latency it reaches is the part of the real server's budget that
gRPC, protobuf and the event loop take; the real server's numbers are read against it.

The parent process does not serve: it starts the workers (`--worker`), forwards SIGTERM and
SIGINT to them, and exits when they have stopped. gRPC health (grpc.health.v1) reports SERVING
as soon as a worker listens, so the benchmark can wait for it like for the real server.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import grpc
import uvloop
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authz_server.config import Settings
from authz_server.registration import add_generic_only
from zentra.cards.v1 import authorization_pb2, authorization_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

WORKERS_MAX = 256  # the same bound as AUTHZ_WORKERS
STOP_GRACE_S = 1.0  # a constant answer needs no drain time to speak of
WORKER_STOP_WAIT_S = 10.0  # after SIGTERM, before a worker is killed
POLL_INTERVAL_S = 0.1  # how often the parent checks on its workers


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """authz-server's gRPC server options (authz_server/server.py, AuthzServer.start), so that
    both servers frame, limit and keep connections alive alike."""
    return [
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_connection_age_ms", 300_000),
        ("grpc.max_connection_age_grace_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


def constant_response() -> authorization_pb2.AuthorizeResponse:
    """An approval shaped like the real server's (an id of the load generator's length, a
    timestamp, a policy version), so that the two serialize about the same number of bytes."""
    decided_at = Timestamp()
    decided_at.FromMilliseconds(int(time.time() * 1000))
    return authorization_pb2.AuthorizeResponse(
        authorization_id="bench0000c-000000000",
        decision=t.APPROVE,
        reason=t.APPROVED,
        response_code="00",
        replayed=False,
        policy_version=1,
        decided_at=decided_at,
    )


class NullAuthorizationService(authorization_pb2_grpc.AuthorizationServiceServicer):
    """Authorize answers the same response to every request; nothing else is served."""

    def __init__(self) -> None:
        self._response = constant_response()

    async def Authorize(
        self, request: authorization_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.AuthorizeResponse:
        return self._response


async def serve(listen_addr: str) -> None:
    """One worker: serves until SIGTERM or SIGINT."""
    settings = Settings()
    server = grpc.aio.server(options=server_options(settings), maximum_concurrent_rpcs=settings.max_concurrent_rpcs)
    authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(NullAuthorizationService(), server)
    health_servicer = health.aio.HealthServicer()
    # Services added as authz-server adds them: only AuthorizationService's methods registered
    # (authz_server/registration.py), so that both servers' gRPC loops do the same per call.
    add_generic_only(health_pb2_grpc.add_HealthServicer_to_server, health_servicer, server)
    if server.add_insecure_port(listen_addr) == 0:
        raise RuntimeError(f"cannot listen on {listen_addr}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(STOP_GRACE_S)


def run_workers(listen_addr: str, workers: int) -> int:
    """Starts `workers` worker processes and waits for them; SIGTERM/SIGINT stop them all."""
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for _ in range(workers):
            command = [sys.executable, "-m", "loadtest.null_server", "--listen", listen_addr, "--worker"]
            children.append(subprocess.Popen(command))
        while not stopping:
            if any(child.poll() is not None for child in children):
                stop(signal.SIGTERM, None)  # one died: stop the set, and say so by the exit code
                break
            time.sleep(POLL_INTERVAL_S)
        for child in children:
            try:
                child.wait(WORKER_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return 0 if all(child.returncode == 0 for child in children) else 1
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.null_server", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen", required=True, help="host:port, shared by the workers")
    parser.add_argument("--workers", type=int, default=1, help=f"worker processes (1-{WORKERS_MAX})")
    parser.add_argument("--worker", action="store_true", help="serve in this process (the parent passes it)")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= WORKERS_MAX:
        parser.error(f"--workers must be in [1, {WORKERS_MAX}]")
    if args.worker:
        uvloop.run(serve(args.listen))
        return 0
    return run_workers(args.listen, args.workers)


if __name__ == "__main__":
    sys.exit(main())
