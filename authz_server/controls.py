"""A card's spend controls as plain domain values, and their two encodings: the public proto
(SpendControls) and the compact JSON kept in Postgres and in the Redis projection.

The JSON carries one thing the proto does not: the `scope` of every MCC-scoped limit, the
policy_version at which that limit (interval + MCC set) was first set. Its counters are
keyed by it, so such a limit counts from the moment it is set (DESIGN §3) and keeps counting
across later updates that leave it in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from zentra.cards.v1 import types_pb2


@dataclass(frozen=True, slots=True)
class Limit:
    interval: int  # types_pb2.Interval
    amount_minor: int  # 0 = no amount cap
    max_count: int  # 0 = no count cap
    mccs: tuple[str, ...]  # sorted; empty = every purchase
    scope: int = 0  # 0 for unscoped limits; see the module docstring

    def to_proto(self) -> types_pb2.SpendLimit:
        return types_pb2.SpendLimit(
            interval=self.interval,  # type: ignore[arg-type]  # proto enum int
            amount_minor=self.amount_minor,
            max_count=self.max_count,
            mccs=self.mccs,
        )


@dataclass(frozen=True, slots=True)
class Controls:
    limits: tuple[Limit, ...] = ()
    allowed_mccs: frozenset[str] = frozenset()
    blocked_mccs: frozenset[str] = frozenset()
    allowed_channels: frozenset[int] = frozenset()
    allowed_countries: frozenset[str] = frozenset()
    blocked_countries: frozenset[str] = frozenset()
    review_threshold_minor: int = 0


def controls_from_proto(msg: types_pb2.SpendControls) -> Controls:
    """Domain controls from a validated proto; scopes are assigned by `assign_scopes`."""
    return Controls(
        limits=tuple(
            Limit(lim.interval, lim.amount_minor, lim.max_count, tuple(sorted(set(lim.mccs))))
            for lim in msg.spending_limits
        ),
        allowed_mccs=frozenset(msg.allowed_mccs),
        blocked_mccs=frozenset(msg.blocked_mccs),
        allowed_channels=frozenset(msg.allowed_channels),
        allowed_countries=frozenset(msg.allowed_countries),
        blocked_countries=frozenset(msg.blocked_countries),
        review_threshold_minor=msg.review_threshold_minor,
    )


def controls_to_proto(controls: Controls) -> types_pb2.SpendControls:
    return types_pb2.SpendControls(
        spending_limits=[limit.to_proto() for limit in controls.limits],
        allowed_mccs=sorted(controls.allowed_mccs),
        blocked_mccs=sorted(controls.blocked_mccs),
        allowed_channels=sorted(controls.allowed_channels),  # type: ignore[arg-type]  # proto enum int
        allowed_countries=sorted(controls.allowed_countries),
        blocked_countries=sorted(controls.blocked_countries),
        review_threshold_minor=controls.review_threshold_minor,
    )


def assign_scopes(new: Controls, previous: Controls | None, version: int) -> Controls:
    """Gives every MCC-scoped limit of `new` its scope: the scope of the same (interval, MCC
    set) in `previous` if it was there already, else `version` (the version being written)."""
    known = {(lim.interval, lim.mccs): lim.scope for lim in (previous.limits if previous else ()) if lim.mccs}
    limits = tuple(
        Limit(
            lim.interval,
            lim.amount_minor,
            lim.max_count,
            lim.mccs,
            known.get((lim.interval, lim.mccs), version) if lim.mccs else 0,
        )
        for lim in new.limits
    )
    return Controls(
        limits,
        new.allowed_mccs,
        new.blocked_mccs,
        new.allowed_channels,
        new.allowed_countries,
        new.blocked_countries,
        new.review_threshold_minor,
    )


def controls_to_json(controls: Controls) -> str:
    """Compact, canonical JSON (sorted sets) for Postgres and the Redis projection."""
    return json.dumps(
        {
            "limits": [
                [lim.interval, lim.amount_minor, lim.max_count, list(lim.mccs), lim.scope] for lim in controls.limits
            ],
            "am": sorted(controls.allowed_mccs),
            "bm": sorted(controls.blocked_mccs),
            "ch": sorted(controls.allowed_channels),
            "ac": sorted(controls.allowed_countries),
            "bc": sorted(controls.blocked_countries),
            "rt": controls.review_threshold_minor,
        },
        separators=(",", ":"),
    )


def controls_from_json(text: str | bytes) -> Controls:
    data = json.loads(text)
    return Controls(
        limits=tuple(Limit(int(i), int(a), int(c), tuple(m), int(s)) for i, a, c, m, s in data["limits"]),
        allowed_mccs=frozenset(data["am"]),
        blocked_mccs=frozenset(data["bm"]),
        allowed_channels=frozenset(int(c) for c in data["ch"]),
        allowed_countries=frozenset(data["ac"]),
        blocked_countries=frozenset(data["bc"]),
        review_threshold_minor=int(data["rt"]),
    )
