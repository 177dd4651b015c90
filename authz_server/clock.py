"""The business clock. Decisions, windows and timestamps read time only through a Clock,
so tests can move it across day, week, month and year boundaries without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class SettableClock:
    """A clock that stands still until told otherwise (tests only)."""

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def set_ms(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def advance_ms(self, delta_ms: int) -> None:
        self._now_ms += delta_ms
