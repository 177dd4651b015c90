"""What the ledger writer reads about cards, kept for the life of the process.

A card's account_ref and currency are set when it is issued and never change, and a row of
card_versions (the card's state and controls at one policy_version) is never rewritten: only
new versions are added. So each is read from Postgres once, not once per batch. Only what was
found is kept; a card or version that is not there (yet) is asked for again next time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import asyncpg

from authz_server.controls import controls_from_json
from ledger_writer.evidence import CardAtVersion

CardKey = tuple[str, str]  # (tenant_id, card_id)
VersionKey = tuple[str, str, int]  # (tenant_id, card_id, policy_version)
_K = TypeVar("_K")
_V = TypeVar("_V")


class CardFacts:
    """Account refs by card and cards at a policy version, read through from Postgres. Each
    map holds at most `entries_max` entries (plus one batch's); when one is full it starts
    over (the next batches read again what they need), which bounds memory without
    bookkeeping per read."""

    def __init__(self, entries_max: int) -> None:
        assert entries_max >= 1, f"entries_max={entries_max} must be at least 1"
        self.entries_max = entries_max
        self._accounts: dict[CardKey, str] = {}
        self._versions: dict[VersionKey, CardAtVersion] = {}

    async def account_refs(self, conn: asyncpg.Connection, keys: Iterable[CardKey]) -> dict[CardKey, str]:
        """The account_ref of every card in `keys` that exists."""
        known = self._accounts
        wanted = set(keys)
        found = {key: known[key] for key in wanted if key in known}
        missing = [key for key in wanted if key not in known]
        if missing:
            tenants, cards = (list(column) for column in zip(*missing, strict=True))
            rows = await conn.fetch(
                """SELECT tenant_id, card_id, account_ref FROM cards
                   WHERE (tenant_id, card_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
                tenants,
                cards,
            )
            fresh = {(r["tenant_id"], r["card_id"]): r["account_ref"] for r in rows}
            self._remember(known, fresh)
            found.update(fresh)
        return found

    async def at_versions(
        self, conn: asyncpg.Connection, keys: Iterable[VersionKey]
    ) -> dict[VersionKey, CardAtVersion]:
        """Every card in `keys` (tenant, card, policy_version) as it was at that version, if
        that version exists; version 0 (no card) is never looked up."""
        known = self._versions
        wanted = {key for key in keys if key[2] > 0}
        found = {key: known[key] for key in wanted if key in known}
        missing = [key for key in wanted if key not in known]
        if missing:
            tenants, cards, versions = (list(column) for column in zip(*missing, strict=True))
            rows = await conn.fetch(
                """SELECT v.tenant_id, v.card_id, v.policy_version, v.state, v.controls, c.account_ref, c.currency
                   FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(tenant_id, card_id, policy_version)
                   JOIN card_versions v USING (tenant_id, card_id, policy_version)
                   JOIN cards c USING (tenant_id, card_id)""",
                tenants,
                cards,
                versions,
            )
            fresh = {
                (r["tenant_id"], r["card_id"], r["policy_version"]): CardAtVersion(
                    r["account_ref"], r["currency"].strip(), r["state"], controls_from_json(r["controls"])
                )
                for r in rows
            }
            self._remember(known, fresh)
            found.update(fresh)
        return found

    def known(
        self, card_keys: Iterable[CardKey], version_keys: Iterable[VersionKey]
    ) -> tuple[dict[CardKey, str], dict[VersionKey, CardAtVersion]] | None:
        """What `account_refs` and `at_versions` would return, if every key is already in
        memory (no Postgres needed); None if any is not."""
        accounts = self._accounts
        versions = self._versions
        try:
            return (
                {key: accounts[key] for key in card_keys},
                {key: versions[key] for key in version_keys if key[2] > 0},
            )
        except KeyError:
            return None

    def _remember(self, known: dict[_K, _V], fresh: dict[_K, _V]) -> None:
        if len(known) + len(fresh) > self.entries_max:
            known.clear()
        known.update(fresh)
