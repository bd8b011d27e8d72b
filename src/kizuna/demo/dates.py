"""Calendar arithmetic on numpy arrays: day numbers, month indexes and Tokyo wall-clock seconds."""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

EPOCH = date(1970, 1, 1)
_EPOCH_MONTH = 1970 * 12
DAY_SECONDS = 86_400
NONE = -1  # "no value" in any int column; the writer turns it into an empty field


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def month_index(d: date) -> int:
    """Months since year 0: consecutive months differ by one, whatever the year."""
    return d.year * 12 + d.month - 1


# Lookup tables for 1900-2199: a gather is several times faster than datetime64 conversions.
_FIRST_MONTH = 1900 * 12
_FIRST_DAYS = (
    (np.arange(_FIRST_MONTH, 2200 * 12 + 1) - _EPOCH_MONTH)
    .astype("datetime64[M]")
    .astype("datetime64[D]")
    .astype(np.int64)
)
_FIRST_DAY = int(_FIRST_DAYS[0])
_MONTH_OF_DAY = np.repeat(np.arange(_FIRST_MONTH, 2200 * 12), np.diff(_FIRST_DAYS))


def days_of(months: IntArray | int, day: IntArray | int) -> IntArray:
    """Day numbers of `day` (1..28, so it exists in every month) in the given month indexes."""
    return _FIRST_DAYS[np.asarray(months, dtype=np.int64) - _FIRST_MONTH] + np.asarray(day, dtype=np.int64) - 1


def weekday(days: IntArray) -> IntArray:
    """Monday 0 .. Sunday 6 (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def to_workday(days: IntArray) -> IntArray:
    """Move Saturdays and Sundays back to the Friday before: people log work on workdays."""
    wd = weekday(days)
    return days - np.where(wd >= 5, wd - 4, 0)


def office_seconds(days: IntArray, rng: np.random.Generator, start_hour: int = 9, hours: int = 10) -> IntArray:
    """Tokyo wall-clock timestamps (seconds since the epoch, no offset) within office hours of `days`."""
    within = rng.integers(0, hours * 3600, size=len(days))
    return days * DAY_SECONDS + start_hour * 3600 + within


def month_index_of(days: IntArray) -> IntArray:
    """Month indexes (as month_index) of day numbers."""
    return _MONTH_OF_DAY[days - _FIRST_DAY]
