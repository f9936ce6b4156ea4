"""Timestamps as the APIs write them (ISO-8601, milliseconds, `Z`) and a strictly increasing clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def epoch_ms(year: int, month: int, day: int) -> int:
    """Milliseconds since the epoch of midnight UTC on a date."""
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


# Generated data lives in 2023-2025; the day table covers it (and a few years of wall clock) so that
# formatting a timestamp is a table lookup plus integer formatting, not a datetime round trip.
_TABLE_START_DAY = epoch_ms(2023, 1, 1) // DAY_MS
_DAY_STRINGS = [
    (datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=n)).strftime("%Y-%m-%d") for n in range(366 * 8)
]
_MINUTE_STRINGS = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
_SECOND_STRINGS = [f"{s:02d}." for s in range(60)]
_MILLI_STRINGS = [f"{ms:03d}Z" for ms in range(1000)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_tables() -> tuple[int, list[str], list[str], list[str], list[str]]:
    """The tables behind `iso`, for a loop that inlines it: (first day, days, minutes, seconds, ms).

    They are small on purpose: a table of all 60,000 "SS.mmmZ" strings looks faster in isolation but
    misses the CPU cache on every page.
    """
    return _TABLE_START_DAY, _DAY_STRINGS, _MINUTE_STRINGS, _SECOND_STRINGS, _MILLI_STRINGS


def iso(ms: int) -> str:
    """Format epoch milliseconds as `2024-03-01T12:00:00.000Z`."""
    day, rest = divmod(ms, DAY_MS)
    n = day - _TABLE_START_DAY
    if 0 <= n < len(_DAY_STRINGS):
        minute, rest = divmod(rest, 60_000)
        second, milli = divmod(rest, 1000)
        return f"{_DAY_STRINGS[n]}T{_MINUTE_STRINGS[minute]}:{_SECOND_STRINGS[second]}{_MILLI_STRINGS[milli]}"
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class MonotonicClock:
    """Wall-clock milliseconds, forced strictly increasing and above a floor.

    Mutations stamp records with this clock, so a changed record is always newer than every
    generated record (whose timestamps stay below the floor) and than every earlier change.

    Args:
        floor_ms: Every timestamp handed out is greater than this.
    """

    def __init__(self, floor_ms: int) -> None:
        self._floor = floor_ms
        self._last = floor_ms
        self._lock = threading.Lock()

    def next_ms(self) -> int:
        """The next timestamp in epoch milliseconds."""
        with self._lock:
            self._last = max(int(time.time() * 1000), self._last + 1)
            return self._last

    def next_iso(self) -> str:
        """The next timestamp, formatted."""
        return iso(self.next_ms())
