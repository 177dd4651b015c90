"""Redis key names. Every key of a card carries its shard's hash tag `{s<n>}` so that one
decision script touches one slot and runs unchanged on Redis Cluster (DESIGN §2).

Replay records are keyed by tenant and authorization id, whatever the card's shard, so that
"same id, different card" is caught on the hot path; this holds on a single Redis node (the
supported deployment today). On Redis Cluster they would have to move into the card's shard
(see docs/decisions.md, "Redis Cluster")."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keyspace:
    prefix: str
    shard_count: int

    def shard_of(self, card_id: str) -> int:
        """Stable shard of a card: CRC-32 of its id, modulo the deployment's shard count."""
        return zlib.crc32(card_id.encode()) % self.shard_count

    def card(self, shard: int, tenant_id: str, card_id: str) -> str:
        """Hash: the card's projection (state, currency, account, controls, policy version)."""
        return f"{self.prefix}:{{s{shard}}}:card:{tenant_id}:{card_id}"

    def usage(self, shard: int, tenant_id: str, card_id: str) -> str:
        """Hash: window counters, `<bucket>|p` period id, `<bucket>|a` amount, `<bucket>|c` count."""
        return f"{self.prefix}:{{s{shard}}}:use:{tenant_id}:{card_id}"

    def replay(self, tenant_id: str, authorization_id: str) -> str:
        """Hash: the stored answer to an authorization id (and what it reserved)."""
        return f"{self.prefix}:replay:{tenant_id}:{authorization_id}"

    def reversal(self, tenant_id: str, reversal_id: str) -> str:
        """Hash: a reversal's stored answer (authorization, requested, released, remaining)."""
        return f"{self.prefix}:reversal:{tenant_id}:{reversal_id}"

    def clearing(self, tenant_id: str, clearing_id: str) -> str:
        """Hash: a clearing's stored result (outcome and amounts), for replays."""
        return f"{self.prefix}:clearing:{tenant_id}:{clearing_id}"

    def stream(self, shard: int) -> str:
        """Stream: decision records of the shard, appended by the decision script only."""
        return f"{self.prefix}:{{s{shard}}}:decisions"

    def streams(self) -> list[str]:
        return [self.stream(shard) for shard in range(self.shard_count)]

    def override(self, shard: int, tenant_id: str, card_id: str) -> str:
        """Hash: a one-time review override (ReviewService, resolved APPROVED), read by authorize.lua."""
        return f"{self.prefix}:{{s{shard}}}:override:{tenant_id}:{card_id}"

    def holds(self, shard: int) -> str:
        """Sorted set: the shard's live holds (member "<tenant>|<authorization id>"), scored by
        when they expire; the expiry sweeper reads it."""
        return f"{self.prefix}:{{s{shard}}}:holds"

    def projection_marker(self) -> str:
        """String: set once the projection has been built from Postgres; holds the shard count."""
        return f"{self.prefix}:projection"
