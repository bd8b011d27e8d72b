"""The plan's calendar and settings: due dates in Japanese business days, SLA days as people write them."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from kizuna.core.settings import Settings
from kizuna.crm.plan import add_business_days


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (dt.date(2026, 12, 4), 1, dt.date(2026, 12, 7)),  # Friday + 1: Monday
        (dt.date(2026, 12, 30), 2, dt.date(2027, 1, 4)),  # over New Year's Day (a national holiday) and a weekend
        (dt.date(2026, 11, 20), 1, dt.date(2026, 11, 24)),  # Monday 23 November is 勤労感謝の日
        (dt.date(2026, 12, 5), 0, dt.date(2026, 12, 5)),
    ],
    ids=["weekend", "new-year", "labour-thanksgiving", "zero"],
)
def test_due_dates_skip_weekends_and_holidays(start: dt.date, days: int, due: dt.date) -> None:
    assert add_business_days(start, days) == due


def test_sla_days_are_read_as_rank_equals_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_CRM_SLA_DAYS", " A=3, B=4 ,C=6")
    assert Settings().crm_sla_days == {"A": 3, "B": 4, "C": 6}
    monkeypatch.setenv("KIZUNA_CRM_SLA_DAYS", "A=one")
    with pytest.raises(ValidationError, match=r"KIZUNA_CRM_SLA_DAYS .A=one.: write rank=days pairs"):
        Settings()
