"""How long an approval's hold lives before the expiry sweeper releases it (issue #5): the
program's default (AUTHZ_HOLD_EXPIRY_S, 7 days), longer where card networks allow final
amounts to arrive late — lodging and car rental, 31 days."""

from __future__ import annotations

import functools

DAY_S = 24 * 3600
# (first MCC, last MCC) inclusive -> hold lifetime in seconds.
EXTENDED_HOLD_MCC_RANGES_S: tuple[tuple[int, int, int], ...] = (
    (3501, 3999, 31 * DAY_S),  # lodging (hotel chains)
    (7011, 7011, 31 * DAY_S),  # lodging (hotels, motels, resorts)
    (3351, 3500, 31 * DAY_S),  # car rental agencies
    (7512, 7512, 31 * DAY_S),  # car rental
)


@functools.lru_cache(maxsize=1024)
def hold_lifetime_s(mcc: str, default_s: int) -> int:
    """Seconds an approval's hold lives for a purchase in `mcc` (a validated 4-digit code)."""
    code = int(mcc)
    for first, last, lifetime_s in EXTENDED_HOLD_MCC_RANGES_S:
        if first <= code <= last:
            return max(lifetime_s, default_s)
    return default_s


def holds_member(tenant_id: str, authorization_id: str, card_id: str) -> str:
    """A hold's member in its shard's holds set; ids never contain "|" (validation.py)."""
    return f"{tenant_id}|{authorization_id}|{card_id}"
