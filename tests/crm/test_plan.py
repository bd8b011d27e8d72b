"""The plan's calendar and settings: due dates in Japanese business days, SLA days as people write them."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from pydantic import ValidationError

from kizuna.core.settings import Settings
from kizuna.crm.plan import add_business_days, build_plan
from kizuna.scoring.next_actions import signal_rules
from tests.crm.conftest import AS_OF, customer_id


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


def test_an_account_off_the_call_list_gets_its_most_urgent_signals_action(crm_settings: Settings) -> None:
    """Listed customers carry the call list's action; the others (131..240) their signals' (next_actions.yml)."""
    rules = signal_rules()
    with duckdb.connect(str(crm_settings.warehouse), read_only=True) as con:
        plan = build_plan(con, crm_settings, AS_OF)
        listed = dict(
            con.execute("SELECT customer_id, next_action FROM ops.call_list WHERE as_of = ?", [AS_OF]).fetchall()
        )
    actions = {a.customer_id: a.values["kizuna_next_action"] for a in plan.accounts}
    assert actions[customer_id(4)] == listed[customer_id(4)]  # on the list: its row's action
    assert actions[customer_id(132)] == rules["usage_drop"].action["ja"]
    assert actions[customer_id(135)] == rules["near_plan_limit"].action["ja"]
    both = min(("usage_drop", "near_plan_limit"), key=lambda s: rules[s].priority)
    assert actions[customer_id(140)] == rules[both].action["ja"]
    assert actions[customer_id(131)] is None  # no signal, not listed: nothing to say
