"""When campaigns may send: inside the send window, on Japanese business days (weekends and national holidays off)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from kizuna.core.settings import Settings


@dataclass(frozen=True)
class SendWindow:
    """Local times [start, end) in the business time zone; end 24:00 is midnight at the end of the day."""

    start: time
    end: time | None  # None: until midnight

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        """'09:00-18:00' → SendWindow; the setting's pattern already checked the shape."""
        first, _, second = text.partition("-")
        start = time.fromisoformat(first)
        end = None if second == "24:00" else time.fromisoformat(second)
        if end is not None and end <= start:
            raise ValueError(f"send window {text!r}: the end must be after the start (KIZUNA_SEND_WINDOW)")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{'24:00' if self.end is None else format(self.end, '%H:%M')}"


@lru_cache(maxsize=8)
def _japan_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("JP", years=year, language="ja")


def holiday_name(day: date) -> str | None:
    """The national holiday's name (in Japanese) on that day, or None."""
    name = _japan_holidays(day.year).get(day)
    return str(name) if name else None


def non_business_reason(day: date) -> str | None:
    """Why a day is not a Japanese business day (weekend or national holiday), or None when it is one."""
    if day.weekday() >= 5:
        return f"{day.isoformat()} is a {day:%A}"
    name = holiday_name(day)
    return f"{day.isoformat()} is a national holiday ({name})" if name else None


def outside_send_window(settings: Settings, now: datetime | None = None) -> str | None:
    """None when campaigns may send now; otherwise why not, for the run summary ("outside the send window: …")."""
    local = (now or datetime.now(ZoneInfo(settings.timezone))).astimezone(ZoneInfo(settings.timezone))
    if settings.send_on_business_days_only:
        reason = non_business_reason(local.date())
        if reason:
            return reason
    window = SendWindow.parse(settings.send_window)
    if not window.contains(local.time()):
        return f"{local:%H:%M} {settings.timezone} is outside {window} (KIZUNA_SEND_WINDOW)"
    return None
