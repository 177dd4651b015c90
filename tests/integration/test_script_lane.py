"""The decision lane (authz_server/redis_state/lane.py) against the real Redis: replies reach
their own callers, in order, whatever happens to the callers or the connection."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from authz_server.redis_state import lane as lane_module
from authz_server.redis_state.lane import ScriptLane
from tests.support.stack import Backing

# Echoes its key and arguments; fails on demand; can take a while.
ECHO = """
if ARGV[1] == "fail" then return redis.error_reply("ERR asked to fail") end
if ARGV[1] == "slow" then local t = redis.call("TIME"); local stop = t[1] * 1000000 + t[2] + 200000
  repeat t = redis.call("TIME") until t[1] * 1000000 + t[2] >= stop end
redis.call("SET", KEYS[1], ARGV[2])
return {KEYS[1], ARGV[2], tonumber(ARGV[3])}
"""


@pytest.fixture
async def client(backing: Backing) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(backing.redis_url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def lane(backing: Backing) -> AsyncIterator[ScriptLane]:
    # Its own client, named, so that a test can find (and kill) the lane's connection and no
    # other: the session's shared server runs scripts on the same Redis.
    own = aioredis.from_url(backing.redis_url, client_name=LANE_CLIENT_NAME)
    the_lane = ScriptLane(own, own.register_script(ECHO))
    yield the_lane
    await the_lane.aclose()
    await own.aclose()


LANE_CLIENT_NAME = f"lanetest-{secrets.token_hex(4)}"


def key(name: str) -> str:
    return f"lanetest:{secrets.token_hex(4)}:{name}"


async def test_concurrent_calls_get_their_own_replies(lane: ScriptLane, client: aioredis.Redis) -> None:
    keys = [key(str(i)) for i in range(500)]
    replies = await asyncio.gather(*(lane.call([k], ["ok", f"value-{i}", i]) for i, k in enumerate(keys)))
    assert replies == [[k.encode(), f"value-{i}".encode(), i] for i, k in enumerate(keys)]
    assert await client.get(keys[123]) == b"value-123"


async def test_an_error_reply_fails_only_its_caller(lane: ScriptLane) -> None:
    k = key("x")
    results = await asyncio.gather(
        lane.call([k], ["ok", "a", 1]), lane.call([k], ["fail", "b", 2]), lane.call([k], ["ok", "c", 3]),
        return_exceptions=True,
    )  # fmt: skip
    assert results[0] == [k.encode(), b"a", 1] and results[2] == [k.encode(), b"c", 3]
    assert isinstance(results[1], ResponseError) and "asked to fail" in str(results[1])


async def test_script_cache_flushed_reloads_the_script(lane: ScriptLane, client: aioredis.Redis) -> None:
    k = key("flush")
    assert await lane.call([k], ["ok", "before", 1]) == [k.encode(), b"before", 1]
    await client.script_flush()
    assert await lane.call([k], ["ok", "after", 2]) == [k.encode(), b"after", 2]
    assert await client.get(k) == b"after"


async def test_a_caller_that_gives_up_does_not_shift_the_replies(lane: ScriptLane) -> None:
    k = key("slow")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await lane.call([k], ["slow", "late", 1])
    # The abandoned call still ran; its reply is read and dropped, not handed to the next caller.
    assert await lane.call([k], ["ok", "next", 2]) == [k.encode(), b"next", 2]


async def test_a_killed_connection_fails_the_waiting_calls_and_the_next_call_reconnects(
    lane: ScriptLane, client: aioredis.Redis
) -> None:
    k = key("kill")
    await lane.call([k], ["ok", "first", 1])
    lane_ids = [c["id"] for c in await client.client_list() if c.get("name") == LANE_CLIENT_NAME]
    assert lane_ids, "the lane's connection is not to be seen"
    await client.client_pause(5000, all=False)  # scripts (writes) wait; CLIENT commands do not
    try:
        waiting = asyncio.ensure_future(lane.call([k], ["ok", "doomed", 2]))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        for client_id in lane_ids:
            await client.client_kill_filter(_id=client_id)
        with pytest.raises(RedisConnectionError):
            await waiting
    finally:
        await client.client_unpause()
    assert await lane.call([k], ["ok", "again", 3]) == [k.encode(), b"again", 3]


async def test_unreachable_redis_fails_fast_then_retries(client: aioredis.Redis) -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    the_lane = ScriptLane(dead, client.register_script(ECHO))
    try:
        with pytest.raises((RedisConnectionError, OSError)):
            await the_lane.call(["k"], ["ok", "v", 1])
        # Within the reconnect interval the lane does not try again: it says so at once.
        with pytest.raises(RedisConnectionError, match="unreachable"):
            await the_lane.call(["k"], ["ok", "v", 1])
        await asyncio.sleep(lane_module.RECONNECT_INTERVAL_S)
        with pytest.raises((RedisConnectionError, OSError)) as tried:
            await the_lane.call(["k"], ["ok", "v", 1])
        assert "unreachable" not in str(tried.value)
    finally:
        await the_lane.aclose()
        await dead.aclose()


async def test_the_lane_uses_the_clients_database(backing: Backing) -> None:
    base = backing.redis_url.rsplit("/", 1)[0]
    other = aioredis.from_url(f"{base}/5")
    the_lane = ScriptLane(other, other.register_script(ECHO))
    try:
        k = key("db5")
        await the_lane.call([k], ["ok", "in five", 1])
        assert await other.get(k) == b"in five"
        default = aioredis.from_url(f"{base}/0")
        assert await default.get(k) is None
        await default.aclose()
        await other.delete(k)
    finally:
        await the_lane.aclose()
        await other.aclose()


async def test_a_closed_lane_refuses_calls(lane: ScriptLane) -> None:
    k = key("closed")
    await lane.call([k], ["ok", "v", 1])
    await lane.aclose()
    with pytest.raises(RedisConnectionError):
        await lane.call([k], ["ok", "v", 2])
