"""The Redis step alone: the decision script (authorize.lua) called directly, closed loop.

`python -m loadtest.redis_only --workload W --redis-url URL --concurrency C --duration-s D`
sends EVALSHA authorize.lua with the KEYS and ARGV the server would send for the workload's
purchases, through the server's own decision lane (authz_server/redis_state/lane.py: one
pipelined connection, hiredis), C calls in flight, for D seconds, and prints the phase result as
JSON (the shape `loadtest.loadgen` prints).

Why: this is the ceiling of the Redis step as the server sees it, one EVALSHA per decision from
a Python asyncio process. The benchmark runs as many of these processes as the server has
workers, splitting the concurrency, so that the comparison is process for process; `--start-at`
lines their measured phases up in time.

How the KEYS and ARGV are "the server's": while preparing, each purchase goes once through the
server's own `Decider.decide` (plan against the card's projection, `script_args`, and whatever
else the server adds), with a stand-in for the script that records what it was sent instead of
running it. The purchase carries a placeholder authorization id, so every key and argument that
holds the id is known; per call only those, the fingerprint, the send time and the attempt id
are filled in (positions from authorize.lua's header, checked against `script_args` at start).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvloop

from authz_server.clock import SystemClock
from authz_server.config import Settings
from authz_server.decisions import Decider, ScriptArg, script_args
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.lane import ScriptLane
from authz_server.redis_state.scripts import Scripts
from authz_server.server import redis_client
from authz_server.validation import validate_authorize
from loadtest.loadgen import (
    AUTHORIZATION_ID_TAG,
    LatencyHistogram,
    Tally,
    Workload,
    authorization_id,
    cpu_seconds,
    phase_result,
    source_index,
)
from zentra.cards.v1 import authorization_pb2
from zentra.cards.v1 import types_pb2 as t

# Positions in authorize.lua's ARGV (0-based; see the script's header) of what differs per call
# besides the authorization id.
ARGV_FINGERPRINT = 0
ARGV_SENT_AT_MS = 2
ARGV_DECIDED_AT_MS = 8
ARGV_ATTEMPT = 12
PROJECTION_FIELDS = ("v", "st", "cur", "acct", "ctl")  # what project_card.lua writes, in policy order
PIPELINE_COUNT_MAX = 1000  # projection reads sent per round trip while preparing
ID_PLACEHOLDER = "bench-id-placeholder"  # the authorization id of the purchases while preparing
FINGERPRINT_BYTES = 16  # the server's blake2b digest size (decisions.py)
FAIL_CLOSED_TAGS = (b"B", b"L")  # backlog bound reached, script started too late
# What the stand-in script answers once the decider has the card's policy: a decision (approve),
# which ends `decide` after one round trip.
DECIDED = [b"D", b"1", b"1", b"1", b"0", b""]


@dataclass(frozen=True)
class PreparedPurchase:
    """One purchase's KEYS and ARGV as the server sends them, for the placeholder id: the
    positions holding the id are split around it, to be joined with each call's id."""

    purchase_bytes: bytes
    keys: list[str]
    args: list[ScriptArg]
    keys_with_id: list[tuple[int, str, str]]  # (position, text before the id, text after)
    args_with_id: list[tuple[int, str, str]]


class RecordingScripts:
    """Stands in for the Decider's authorize caller while preparing: `call` records the KEYS and ARGV
    the Decider sends and answers as the script would, without running it. A caller with no
    policy for the card (policy version 0) gets the card's projection, like from the real script,
    and re-plans; a card without a projection is "decided" at once (the script would decline)."""

    def __init__(self, projections: dict[str, list[bytes]]) -> None:
        self.projections = projections
        self.sent: tuple[list[str], list[ScriptArg]] | None = None

    async def call(self, keys: Sequence[str], args: Sequence[ScriptArg], deadline: float | None = None) -> list[bytes]:
        """What the Decider's authorize caller gets (authz_server/redis_state/lane.py)."""
        self.sent = (list(keys), list(args))
        projection = self.projections.get(keys[0])
        if int(args[1]) == 0 and projection is not None:
            return [b"S", *projection]
        return DECIDED


async def read_projections(
    client: aioredis.Redis, keyspace: Keyspace, tenant_id: str, card_ids: list[str]
) -> dict[str, list[bytes]]:
    """The projection fields of each card that has one, by its card key."""
    projections: dict[str, list[bytes]] = {}
    for start in range(0, len(card_ids), PIPELINE_COUNT_MAX):
        batch = [
            keyspace.card(keyspace.shard_of(c), tenant_id, c) for c in card_ids[start : start + PIPELINE_COUNT_MAX]
        ]
        async with client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hmget(key, PROJECTION_FIELDS)
            rows = await pipe.execute()
        projections.update({key: fields for key, fields in zip(batch, rows, strict=True) if fields[0] is not None})
    return projections


def check_argv_layout(settings: Settings) -> None:
    """Asserts that script_args puts the per-call values where this module patches them."""
    purchase = validate_authorize(
        authorization_pb2.AuthorizeRequest(
            authorization_id="a",
            card_id="c",
            amount_minor=1,
            currency="USD",
            merchant=t.Merchant(mcc="5411", country="US"),
            channel=t.CARD_PRESENT,
        )
    )
    args = script_args(b"fingerprint", None, None, purchase, 123_456, settings, "payload", "attempt")
    assert args[ARGV_FINGERPRINT] == b"fingerprint" and args[ARGV_DECIDED_AT_MS] == 123_456, args
    assert args[ARGV_ATTEMPT] == "attempt", args
    sent_at_ms = args[ARGV_SENT_AT_MS]
    assert isinstance(sent_at_ms, int) and abs(sent_at_ms - time.time() * 1000) < 60_000, args


def _split_at_id(values: Sequence[ScriptArg]) -> list[tuple[int, str, str]]:
    found = []
    for position, value in enumerate(values):
        if isinstance(value, str) and ID_PLACEHOLDER in value:
            head, tail = value.split(ID_PLACEHOLDER)
            found.append((position, head, tail))
    return found


async def prepare(client: aioredis.Redis, workload: Workload, settings: Settings) -> list[PreparedPurchase]:
    """Every purchase's KEYS and ARGV, as the server's Decider builds them (see the docstring)."""
    keyspace = Keyspace(workload.key_prefix, workload.shard_count)
    requests = [authorization_pb2.AuthorizeRequest.FromString(p) for p in workload.purchases]
    card_ids = sorted({r.card_id for r in requests})
    recorder = RecordingScripts(await read_projections(client, keyspace, workload.tenant_id, card_ids))
    decider = Decider(settings, client, Scripts.register(client), keyspace, SystemClock(), authorize_caller=recorder)
    decider.ready = True
    prepared: list[PreparedPurchase] = []
    for purchase_bytes, request in zip(workload.purchases, requests, strict=True):
        request.authorization_id = ID_PLACEHOLDER
        recorder.sent = None
        await decider.decide(workload.tenant_id, workload.key_id, request, validate_authorize(request), None)
        assert recorder.sent is not None, "the decider sent nothing to the script"
        keys, args = recorder.sent
        keys_with_id, args_with_id = _split_at_id(keys), _split_at_id(args)
        assert keys_with_id and args_with_id, "the replay key and the decision record carry the authorization id"
        prepared.append(PreparedPurchase(purchase_bytes, keys, args, keys_with_id, args_with_id))
    return prepared


class Calls:
    """KEYS and ARGV of call `index` of the phase tagged `id_tag`, replays included (the same
    schedule of replays as the gRPC load generator)."""

    def __init__(self, prepared: Sequence[PreparedPurchase], id_tag: str) -> None:
        self._prepared = prepared
        self._id_tag = id_tag

    def call(self, index: int) -> tuple[list[str], list[ScriptArg]]:
        source = source_index(index)
        ident = authorization_id(self._id_tag, source)
        purchase = self._prepared[source % len(self._prepared)]
        keys = list(purchase.keys)
        for position, head, tail in purchase.keys_with_id:
            keys[position] = head + ident + tail
        args = list(purchase.args)
        for position, head, tail in purchase.args_with_id:
            args[position] = head + ident + tail
        request = AUTHORIZATION_ID_TAG + bytes((len(ident),)) + ident.encode() + purchase.purchase_bytes
        now_ms = time.time_ns() // 1_000_000
        args[ARGV_FINGERPRINT] = hashlib.blake2b(request, digest_size=FINGERPRINT_BYTES).digest()
        args[ARGV_SENT_AT_MS] = now_ms
        args[ARGV_DECIDED_AT_MS] = now_ms
        args[ARGV_ATTEMPT] = f"{ident}.{index}"
        return keys, args


def count(tally: Tally, result: list[Any]) -> None:
    tag = result[0]
    if tag in (b"D", b"R"):
        decision, reason = int(result[1]), int(result[2])
        tally.decisions[f"{t.Decision.Name(decision)}/{t.Reason.Name(reason)}"] += 1
        tally.replayed += tag == b"R"
    elif tag in FAIL_CLOSED_TAGS:
        tally.decisions["DECLINE/SYSTEM_UNAVAILABLE"] += 1
    elif tag == b"X":
        tally.errors["ALREADY_EXISTS"] += 1
    else:
        tally.errors[f"unexpected tag {tag!r}"] += 1


async def closed_loop(
    lane: ScriptLane, calls: Calls, concurrency: int, duration_s: float
) -> tuple[float, LatencyHistogram, Tally]:
    latency = LatencyHistogram()
    tally = Tally()
    indexes = itertools.count()
    started = time.perf_counter()
    stop_at = started + duration_s

    async def caller() -> None:
        while (sent := time.perf_counter()) < stop_at:
            keys, args = calls.call(next(indexes))
            try:
                result: Any = await lane.call(keys, args)
            except Exception as error:  # any failure is counted, and the phase goes on
                tally.errors[type(error).__name__] += 1
            else:
                count(tally, result)
            latency.record(time.perf_counter() - sent)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - started, latency, tally


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload.load(args.workload)
    settings = replace(
        Settings(),
        redis_url=args.redis_url,
        key_prefix=workload.key_prefix,
        shard_count=workload.shard_count,
        redis_pool_size=args.concurrency,
    )
    check_argv_layout(settings)
    client = redis_client(settings)
    try:
        scripts = Scripts.register(client)
        await scripts.load_all(client)
        prepared = await prepare(client, workload, settings)
        lane = ScriptLane(client, scripts.authorize)  # the server's own way of calling the script
        if args.warmup_s > 0:
            await closed_loop(lane, Calls(prepared, f"{args.id_tag}w"), args.concurrency, args.warmup_s)
        if args.start_at:
            await asyncio.sleep(max(0.0, args.start_at - time.time()))
        cpu_before = cpu_seconds()
        calls = Calls(prepared, f"{args.id_tag}c")
        seconds, latency, tally = await closed_loop(lane, calls, args.concurrency, args.duration_s)
        result = phase_result("closed", None, seconds, latency, tally, cpu_seconds() - cpu_before)
        await lane.aclose()
    finally:
        await client.aclose()
    return {"mode": "closed", "concurrency": args.concurrency, "phases": [result]}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.redis_only", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workload", type=Path, required=True, help="JSON written by loadtest.seed")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--concurrency", type=int, default=64, help="EVALSHA calls in flight")
    parser.add_argument("--duration-s", type=float, required=True)
    parser.add_argument("--warmup-s", type=float, default=0.0, help="calls first, not measured")
    parser.add_argument("--start-at", type=float, default=0.0, help="wall-clock time (epoch s) to start measuring")
    parser.add_argument("--id-tag", required=True, help="prefix of this process's authorization ids")
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 10_000:
        parser.error("--concurrency must be in [1, 10000]")
    if not 0 < args.duration_s <= 3600 or not 0 <= args.warmup_s <= 3600:
        parser.error("--duration-s must be in (0, 3600] and --warmup-s in [0, 3600]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    result = uvloop.run(run(parse_args(argv)))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
