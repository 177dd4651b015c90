"""`python -m loadtest.h2load_check`: the null server and the real server's replay path, driven by
h2load (Debian's nghttp2-client), a load generator written in C.

`make bench` drives every server with one grpc.aio load generator, a Python process that shares
the machine's cores with the servers it measures. This cross-check drives the same two servers
with a client that costs far less per call and sends one fixed request body, which is what h2load
can do: one Authorize, byte for byte, over and over. On the null server that is its whole path;
on the real server the first call decides and every later one is a replay (same authorization
id, same request): authentication, validation, the fingerprint, one authorize.lua call that
finds the replay record and answers from it. So it measures the real server's fixed costs per
call (gRPC, auth, validation, one Redis round trip) against gRPC-in-Python's ceiling, free of
the Python load generator's own CPU.

It starts the embedded stack (or uses REDIS_URL / DATABASE_URL), `python -m authz_server` and
`python -m loadtest.null_server` with `--workers` workers each, creates a tenant, a PROCESSOR key
and a card through the public API, decides the request once, then runs h2load (`--requests` calls,
`--clients` connections, `--streams` calls in flight on each) against the null server and the
real server, in pairs (`--repeats`, the order alternating, as `make bench` does). h2load sees
HTTP/2 status codes, not gRPC's, so the real server's replay counter must have grown by exactly
the calls h2load made, or the run fails: every call was answered, and answered by a replay.

With REDIS_URL / DATABASE_URL set, its tenant (`ghz-...`) and its keys (prefix `h2load...`) are
left there, as `loadtest.ghz_seed` leaves its own. It prints a table and writes
loadtest/results/h2load.json. Exit 2 if h2load is not installed
(`apt-get install nghttp2-client`), 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from devstack.embedded import free_port, prepare_dir
from loadtest.bench import scrape
from loadtest.ghz_seed import seed_tenant
from loadtest.stack import BenchError, Child, server_env, start_null_server, stores, wait_ready
from zentra.cards.v1 import authorization_pb2, authorization_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "loadtest" / "results" / "h2load.json"
AUTHORIZE_PATH = "/zentra.cards.v1.AuthorizationService/Authorize"
REPLAYS = "zentra_authz_replays_total"
H2LOAD_TIMEOUT_S = 300.0
WARMUP_REQUESTS = 2_000  # per server, before anything is measured: connections, code paths
# The server's counters reach its metrics endpoint within a quarter of a second (metrics.Tally);
# the replay counter is written at once, this only leaves room for the scrape to see it.
METRICS_SETTLE_S = 0.5
# h2load's summary lines, e.g. "finished in 1.52s, 6578.95 req/s, 1.03MB/s" and
# "requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed, 0 errored, 0 timeout".
FINISHED = re.compile(r"finished in \S+, ([\d.]+) req/s")
REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed")
STATUS_2XX = re.compile(r"status codes: (\d+) 2xx")
REQUEST_TIME = re.compile(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: not compressed (0), then the length, big-endian."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def parse_h2load(output: str) -> dict[str, Any]:
    """The numbers of h2load's summary: calls done and succeeded (HTTP 2xx), calls per second,
    and the time per request (min, max, mean, in ms)."""
    finished, requests, ok, times = (
        pattern.search(output) for pattern in (FINISHED, REQUESTS, STATUS_2XX, REQUEST_TIME)
    )
    if finished is None or requests is None or ok is None or times is None:
        raise BenchError(f"h2load printed no summary:\n{output[-2000:]}")
    return {
        "requests": int(requests.group(1)),
        "done": int(requests.group(2)),
        "succeeded": int(requests.group(3)),
        "failed": int(requests.group(4)),
        "status_2xx": int(ok.group(1)),
        "per_s": float(finished.group(1)),
        "min_ms": float(times.group(1)) * UNIT_MS[times.group(2)],
        "max_ms": float(times.group(3)) * UNIT_MS[times.group(4)],
        "mean_ms": float(times.group(5)) * UNIT_MS[times.group(6)],
    }


def h2load(
    h2load_bin: str, port: int, body: Path, secret: str, requests: int, clients: int, streams: int
) -> dict[str, Any]:
    command = [
        h2load_bin, "-n", str(requests), "-c", str(clients), "-m", str(streams), "-t", "1", "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers", "-H", f"authorization: Bearer {secret}",
        f"http://127.0.0.1:{port}{AUTHORIZE_PATH}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=H2LOAD_TIMEOUT_S)
    if done.returncode != 0:
        raise BenchError(f"h2load exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    result = parse_h2load(done.stdout)
    if not result["done"] == result["succeeded"] == result["status_2xx"] == requests:
        raise BenchError(f"h2load: {result} of {requests} calls")
    return result


def decide_once(port: int, secret: str, card_id: str) -> bytes:
    """Decides one purchase and returns its request, serialized: what h2load then replays."""
    request = authorization_pb2.AuthorizeRequest(
        authorization_id=f"h2load-{secrets.token_hex(8)}", card_id=card_id, amount_minor=1250, currency="USD",
        merchant=t.Merchant(id="m-1", name="h2load", mcc="5812", country="US"), channel=t.CONTACTLESS,
    )  # fmt: skip
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = authorization_pb2_grpc.AuthorizationServiceStub(channel).Authorize(
            request, metadata=(("authorization", f"Bearer {secret}"),), timeout=5
        )
    if answer.decision != t.APPROVE or answer.replayed:
        raise BenchError(f"the purchase to replay was not a fresh approval: {answer}")
    return request.SerializeToString()


def replays(metrics_port: int) -> float:
    time.sleep(METRICS_SETTLE_S)
    return scrape(metrics_port).get((REPLAYS, ()), 0.0)


def measure(options: argparse.Namespace, h2load_bin: str, work_dir: Path) -> dict[str, Any]:
    admin_token = secrets.token_urlsafe(24)
    with stores(prepare_dir(work_dir / "stores")) as backing:
        real_port, metrics_port, null_port = free_port(), free_port(), free_port()
        real_env = {
            "REDIS_URL": backing.redis_url,
            "DATABASE_URL": backing.database_url,
            "AUTHZ_LISTEN_ADDR": f"127.0.0.1:{real_port}",
            "AUTHZ_WORKERS": str(options.workers),
            "AUTHZ_METRICS_PORT": str(metrics_port),
            "AUTHZ_ADMIN_TOKEN": admin_token,
            "AUTHZ_KEY_PREFIX": f"h2load{secrets.token_hex(3)}",
            "AUTHZ_LOG_LEVEL": "WARNING",
        }
        real = Child("authz-server", "authz_server", [], server_env(real_env), work_dir)
        null = start_null_server(null_port, options.workers, work_dir)
        try:
            wait_ready(real, real_port, options.workers, forks_workers=options.workers > 1)
            wait_ready(null, null_port, options.workers, forks_workers=True)
            _tenant, secret, (card_id,) = seed_tenant(f"127.0.0.1:{real_port}", admin_token, 1)
            body = work_dir / "authorize.bin"
            body.write_bytes(grpc_frame(decide_once(real_port, secret, card_id)))
            ports = {"null": null_port, "real": real_port}

            def run(server: str, requests: int) -> dict[str, Any]:
                before = replays(metrics_port)
                result = h2load(h2load_bin, ports[server], body, secret, requests, options.clients, options.streams)
                grown = replays(metrics_port) - before
                expected = requests if server == "real" else 0
                if grown != expected:
                    raise BenchError(f"{server}: the replay counter grew by {grown:g} for {requests} calls")
                return result

            for server in ports:
                run(server, WARMUP_REQUESTS)
            pairs: list[dict[str, Any]] = []
            for number in range(options.repeats):
                order = ("real", "null") if number % 2 == 0 else ("null", "real")
                pair: dict[str, Any] = {server: run(server, options.requests) for server in order}
                pair["first"] = order[0]
                pair["ratio"] = pair["real"]["per_s"] / pair["null"]["per_s"]
                print(
                    f"pair {number + 1}: real replay {pair['real']['per_s']:,.0f}/s, "
                    f"null {pair['null']['per_s']:,.0f}/s (real / null {pair['ratio']:.2f}, {order[0]} first)",
                    flush=True,
                )
                pairs.append(pair)
        finally:
            real.stop()
            null.stop()
    pairs.sort(key=lambda pair: pair["ratio"])
    return {
        "config": {
            "workers": options.workers,
            "clients": options.clients,
            "streams_per_client": options.streams,
            "requests": options.requests,
            "repeats": options.repeats,
            "stack": "embedded" if backing.embedded_redis and backing.embedded_postgres else "REDIS_URL/DATABASE_URL",
        },
        "pairs": pairs,
        "median": pairs[(len(pairs) - 1) // 2],
    }


def print_report(result: dict[str, Any]) -> None:
    config, median = result["config"], result["median"]
    print(
        f"\nh2load, {config['clients']} connections x {config['streams_per_client']} streams, "
        f"{config['requests']:,} calls a phase, {config['workers']} workers; "
        f"the median of {len(result['pairs'])} pair(s)"
    )
    print(f"{'server':<13} {'calls/s':>9} {'mean ms':>8} {'max ms':>8}")
    for server, label in (("real", "real, replay"), ("null", "null")):
        numbers = median[server]
        print(f"{label:<13} {numbers['per_s']:>9,.0f} {numbers['mean_ms']:>8.2f} {numbers['max_ms']:>8.2f}")
    ratios = ", ".join(f"{pair['ratio']:.2f}" for pair in result["pairs"])
    print(f"real replay / null: {median['ratio']:.2f} (pairs: {ratios})")


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.h2load_check", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each server (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="h2load connections (default 4)")
    parser.add_argument("--streams", type=int, default=16, help="calls in flight per connection (default 16)")
    parser.add_argument("--requests", type=int, default=40_000, help="calls per phase (default 40,000)")
    parser.add_argument("--repeats", type=int, default=3, help="pairs, the order alternating (default 3)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    options = parser.parse_args(argv)
    for name in ("workers", "clients", "streams", "requests", "repeats"):
        if getattr(options, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    h2load_bin = shutil.which("h2load")
    if h2load_bin is None:
        print("h2load is not installed (Debian: apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="zentra-h2load-"))
    try:
        result = measure(options, h2load_bin, work_dir)
    except BenchError as error:
        print(f"h2load check failed: {error}\n(logs in {work_dir})", file=sys.stderr)
        return 1
    shutil.rmtree(work_dir, ignore_errors=True)
    print_report(result)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=1))
    print(f"written {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
