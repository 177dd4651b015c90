"""Spend windows: UTC calendar periods. A period id names the window a timestamp falls in;
a counter whose stored period id differs from the current one is from an earlier window and
counts as zero."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from zentra.cards.v1 import types_pb2

# Counter bucket letter of each windowed interval, in the order limits are checked.
WINDOW_LETTERS: dict[int, str] = {
    types_pb2.DAILY: "D",
    types_pb2.WEEKLY: "W",
    types_pb2.MONTHLY: "M",
    types_pb2.YEARLY: "Y",
    types_pb2.LIFETIME: "L",
}
WINDOW_ORDER: tuple[int, ...] = tuple(WINDOW_LETTERS)


MS_PER_DAY = 86_400_000


def period_ids(now_ms: int) -> Mapping[int, str]:
    """The id of the current period of every windowed interval at `now_ms` (UTC).

    Day "20261124", ISO week "2026W48" (weeks start Monday; the ISO year can differ from
    the calendar year around New Year), month "202611", year "2026", lifetime "0". Every
    period changes only at a UTC midnight, so the ids are computed once per day."""
    assert now_ms >= 0, now_ms
    return _periods_of_day(now_ms // MS_PER_DAY)


@functools.lru_cache(maxsize=8)
def _periods_of_day(day: int) -> Mapping[int, str]:
    moment = datetime.fromtimestamp(day * (MS_PER_DAY // 1000), tz=UTC)
    iso_year, iso_week, _ = moment.isocalendar()
    return MappingProxyType(
        {
            types_pb2.DAILY: moment.strftime("%Y%m%d"),
            types_pb2.WEEKLY: f"{iso_year}W{iso_week:02d}",
            types_pb2.MONTHLY: moment.strftime("%Y%m"),
            types_pb2.YEARLY: moment.strftime("%Y"),
            types_pb2.LIFETIME: "0",
        }
    )
