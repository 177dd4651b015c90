"""The card projection in Redis: what the hot path knows of a card (DESIGN §2). Written by
card administration after Postgres, and parsed by the hot path when its cached policy is
stale."""

from __future__ import annotations

from authz_server.controls import controls_from_json, controls_to_json
from authz_server.policy import CardPolicy
from authz_server.redis_state.keys import Keyspace
from authz_server.redis_state.scripts import Scripts
from authz_server.store.cards import CardRow


async def project_card(scripts: Scripts, keyspace: Keyspace, card: CardRow) -> bool:
    """Writes the card's projection unless Redis already holds this version or a newer one."""
    key = keyspace.card(card.shard, card.tenant_id, card.card_id)
    written = await scripts.project_card(
        keys=[key],
        args=[
            card.policy_version,
            card.state,
            card.currency,
            card.account_ref,
            controls_to_json(card.controls),
        ],
    )
    return bool(written)


def policy_from_projection(card_id: str, fields: list[bytes | str]) -> CardPolicy:
    """A CardPolicy from the projection fields (version, state, currency, account_ref, controls)."""
    version, state, currency, account_ref, controls = (f.decode() if isinstance(f, bytes) else f for f in fields)
    return CardPolicy(card_id, int(state), currency, account_ref, int(version), controls_from_json(controls))
