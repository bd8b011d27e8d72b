"""The send window and Japanese business days: when campaigns may send."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kizuna.core.calendar import SendWindow, non_business_reason, outside_send_window
from kizuna.core.settings import Settings

TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("moment", "window", "business_days_only", "reason"),
    [
        (datetime(2026, 11, 24, 10, 0, tzinfo=TOKYO), "09:00-18:00", True, None),
        (datetime(2026, 11, 24, 8, 59, tzinfo=TOKYO), "09:00-18:00", True, "outside 09:00-18:00"),
        (datetime(2026, 11, 24, 18, 0, tzinfo=TOKYO), "09:00-18:00", True, "outside 09:00-18:00"),
        (datetime(2026, 11, 23, 10, 0, tzinfo=TOKYO), "09:00-18:00", True, "national holiday (勤労感謝の日)"),
        (datetime(2026, 11, 22, 10, 0, tzinfo=TOKYO), "09:00-18:00", True, "is a Sunday"),
        (datetime(2026, 11, 22, 10, 0, tzinfo=TOKYO), "09:00-18:00", False, None),
        (datetime(2026, 11, 24, 23, 59, tzinfo=TOKYO), "00:00-24:00", True, None),
        # 01:30 UTC is 10:30 in Tokyo: the window is read in the business time zone, not the machine's
        (datetime(2026, 11, 24, 1, 30, tzinfo=ZoneInfo("UTC")), "09:00-18:00", True, None),
        (datetime(2026, 1, 12, 10, 0, tzinfo=TOKYO), "09:00-18:00", True, "national holiday (成人の日)"),
    ],
    ids=[
        "weekday-inside",
        "weekday-before-start",
        "weekday-at-end-excluded",
        "labour-thanksgiving-day",
        "sunday",
        "sunday-when-every-day-allowed",
        "all-day-window",
        "utc-moment-read-in-tokyo",
        "coming-of-age-day-moving-monday",
    ],
)
def test_outside_send_window(moment: datetime, window: str, business_days_only: bool, reason: str | None) -> None:
    settings = Settings(send_window=window, send_on_business_days_only=business_days_only)
    got = outside_send_window(settings, moment)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def test_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="KIZUNA_SEND_WINDOW"):
        SendWindow.parse("18:00-09:00")


def test_substitute_holiday_is_not_a_business_day() -> None:
    # 2025-11-24 (Mon) is the substitute holiday for Labour Thanksgiving Day falling on a Sunday
    assert non_business_reason(datetime(2025, 11, 24).date()) is not None
