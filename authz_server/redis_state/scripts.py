"""The Lua scripts, loaded once from their .lua files and called by SHA. redis-py's
AsyncScript reloads a script on NOSCRIPT (after a Redis restart, failover or SCRIPT FLUSH)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript


def lua_source(name: str) -> str:
    return (resources.files("authz_server.redis_state") / "lua" / f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    authorize: AsyncScript
    tombstone: AsyncScript
    project_card: AsyncScript
    reverse: AsyncScript
    clear: AsyncScript
    expire: AsyncScript

    @classmethod
    def register(cls, client: aioredis.Redis) -> Scripts:
        return cls(
            authorize=client.register_script(lua_source("authorize")),
            tombstone=client.register_script(lua_source("tombstone")),
            project_card=client.register_script(lua_source("project_card")),
            reverse=client.register_script(lua_source("reverse")),
            clear=client.register_script(lua_source("clear")),
            expire=client.register_script(lua_source("expire")),
        )

    def all(self) -> tuple[AsyncScript, ...]:
        return (self.authorize, self.tombstone, self.project_card, self.reverse, self.clear, self.expire)

    async def load_all(self, client: aioredis.Redis) -> None:
        """Loads every script into Redis's cache (start-up and health probe)."""
        for script in self.all():
            sha = await client.script_load(script.script)
            assert sha == script.sha, (sha, script.sha)
