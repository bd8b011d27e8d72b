"""The shipped daily call list: follow-ups due are on it whatever the rank, and each customer gets its own action."""

from __future__ import annotations

from kizuna.campaigns.call_list import build_call_list
from kizuna.campaigns.spec import load_campaigns
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from tests.campaigns.test_select import AS_OF, build_marts


def test_a_follow_up_due_is_called_first_with_its_own_next_action(settings: Settings) -> None:
    build_marts(settings.warehouse)
    [daily] = [c for c in load_campaigns(Settings().campaigns_dir) if c.name == "daily_call_list"]
    with connect(settings.warehouse) as con:
        # the real mart has days_to_renewal; the hand-made one of test_select has no use for it
        con.execute("ALTER TABLE marts.customers ADD COLUMN days_to_renewal INTEGER")
        # C7 is rank C with nothing else to call about; its rep said "later" with 2026-11-20 to come back
        con.execute(
            "INSERT INTO marts.customer_signals VALUES ('C7', 'follow_up_due', DATE '2026-11-20', '2026-11-20', 3, 0)"
        )
        build_call_list(con, daily, "r1", AS_OF)
        rows = con.execute(
            "SELECT customer_id, next_action FROM ops.call_list WHERE run_id = 'r1' ORDER BY priority"
        ).fetchall()
    listed = dict(rows)
    assert rows[0] == ("C7", "約束どおりフォローする（再確認日 2026-11-20）")
    assert "C4" not in listed  # rank C without a follow-up: not on the list
    assert listed["C1"] == "上位プランを提案する"  # near its plan limit: its own action
    assert listed["C2"] == daily.next_action  # no open signal: the campaign's sentence
