"""What the ledger writer remembers about cards between batches (ledger_writer/cards.py): the
same answers Postgres gives, a card or policy version that was missing is read again rather
than remembered as missing, later policy versions never change what an earlier version was,
what is known can be answered without Postgres (a batch is then prepared ahead), and the
memory stays within its bound."""

from __future__ import annotations

import asyncpg

from ledger_writer.cards import CardFacts
from tests.support.api import Api, TenantKeys, bearer
from tests.support.stack import Ledger
from zentra.cards.v1 import card_pb2
from zentra.cards.v1 import types_pb2 as t


def read(ledger: Ledger, facts: CardFacts, cards: list[tuple[str, str]], versions: list[tuple[str, str, int]]):  # type: ignore[no-untyped-def]
    async def both():  # type: ignore[no-untyped-def]
        conn: asyncpg.Connection
        async with ledger.writer.pool.acquire() as conn:
            return await facts.account_refs(conn, cards), await facts.at_versions(conn, versions)

    return ledger.server.call(both())


def test_cards_are_read_once_and_missing_ones_again(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    facts = CardFacts(entries_max=100)
    card = api.issue_card(tenant, t.SpendControls(blocked_mccs=["7995"]))
    key = (tenant.tenant_id, card.card_id)
    accounts, versions = read(ledger, facts, [key, (tenant.tenant_id, "card_not_yet")], [(*key, 1), (*key, 2)])
    assert accounts == {key: card.account_ref}, "an unknown card has no account"
    assert set(versions) == {(*key, 1)}, "version 2 does not exist yet"
    assert versions[(*key, 1)].controls.blocked_mccs == frozenset({"7995"})

    api.cards.UpdateSpendControls(
        card_pb2.UpdateSpendControlsRequest(
            card_id=card.card_id, spend_controls=t.SpendControls(blocked_mccs=["5812"])
        ),
        metadata=bearer(tenant.admin),
    )
    later = api.issue_card(tenant)
    later_key = (tenant.tenant_id, later.card_id)
    accounts, versions = read(ledger, facts, [key, later_key], [(*key, 1), (*key, 2), (*key, 0)])
    assert accounts == {key: card.account_ref, later_key: later.account_ref}, "a card missing before is read again"
    assert versions[(*key, 1)].controls.blocked_mccs == frozenset({"7995"}), "version 1 stays what it was"
    assert versions[(*key, 2)].controls.blocked_mccs == frozenset({"5812"}), "version 2, missing before, is read"
    assert (*key, 0) not in versions, "version 0 (no card) is never looked up"

    known = facts.known([key, later_key], [(*key, 1), (*key, 2), (*key, 0)])
    assert known is not None, "everything read is known without Postgres"
    assert known[0] == accounts and set(known[1]) == {(*key, 1), (*key, 2)}
    assert facts.known([(tenant.tenant_id, "card_not_yet")], []) is None, "an unknown card needs Postgres"
    assert facts.known([key], [(*key, 3)]) is None, "so does an unknown version"


def test_memory_stays_within_its_bound(api: Api, tenant: TenantKeys, ledger: Ledger) -> None:
    facts = CardFacts(entries_max=3)
    issued = [api.issue_card(tenant) for _ in range(5)]
    keys = [(tenant.tenant_id, c.card_id) for c in issued]
    for key in keys:
        accounts, versions = read(ledger, facts, [key], [(*key, 1)])
        assert accounts == {key: issued[keys.index(key)].account_ref}
        assert set(versions) == {(*key, 1)}
        assert len(facts._accounts) <= 3 and len(facts._versions) <= 3
    accounts, _ = read(ledger, facts, keys, [])
    assert accounts == {key: c.account_ref for key, c in zip(keys, issued, strict=True)}, "all found after a reset"
