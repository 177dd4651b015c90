"""Spend windows: UTC calendar periods. A period id names the window a timestamp falls in;
a counter whose stored period id differs from the current one is from an earlier window and
counts as zero."""

from __future__ import annotations

from datetime import UTC, datetime

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


def period_ids(now_ms: int) -> dict[int, str]:
    """The id of the current period of every windowed interval at `now_ms` (UTC).

    Day "20261124", ISO week "2026W48" (weeks start Monday; the ISO year can differ from
    the calendar year around New Year), month "202611", year "2026", lifetime "0"."""
    assert now_ms >= 0, now_ms
    moment = datetime.fromtimestamp(now_ms // 1000, tz=UTC)
    iso_year, iso_week, _ = moment.isocalendar()
    return {
        types_pb2.DAILY: moment.strftime("%Y%m%d"),
        types_pb2.WEEKLY: f"{iso_year}W{iso_week:02d}",
        types_pb2.MONTHLY: moment.strftime("%Y%m"),
        types_pb2.YEARLY: moment.strftime("%Y"),
        types_pb2.LIFETIME: "0",
    }
