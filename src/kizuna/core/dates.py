"""Business dates: 'today' is a date in the business time zone, never the machine's."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def business_today(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def parse_as_of(value: str | None, timezone: str, name: str = "--as-of") -> date:
    """A YYYY-MM-DD string, or today in the business time zone when empty; name is what the error calls it."""
    if not value:
        return business_today(timezone)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name} {value!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-23") from exc
