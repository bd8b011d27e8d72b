"""Next actions and risks per deal and per customer, on hand-made rows: signals, missing touches, rank bands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kizuna.scoring.deals import forecast_deals
from kizuna.scoring.next_actions import (
    MIN_BAND_WINS,
    RulesError,
    TouchHistory,
    customer_next_actions,
    deal_next_actions,
    signal_rules,
)

AS_OF = dt.date(2024, 6, 10)


def signals(*rows: tuple[str, str, float, float, str | None]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "signal", "signal_value", "signal_threshold", "signal_detail"])


def history(rows: list[tuple[str, str | None, str, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["deal_type", "rank", "activity_type", "share", "won_deals"])


# Renewals: rank A's own history (6 wins) prefers meetings; the type as a whole prefers calls.
RENEWAL_HISTORY = history(
    [
        ("renewal", None, "call", 0.5, 20),
        ("renewal", None, "meeting", 0.3, 20),
        ("renewal", "A", "meeting", 5 / 6, 6),
        ("renewal", "A", "call", 0.5, 6),
        ("renewal", "B", "email", 1.0, MIN_BAND_WINS - 1),
    ]
)


def deals(*rows: tuple[str, str, str | None, str | None, int]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["deal_type", "customer_id", "rank", "recent_touch_types", "days_since_last_activity"]
    )


def test_deals_of_the_same_type_get_the_touch_each_one_lacks() -> None:
    got = deal_next_actions(
        deals(
            ("renewal", "c1", "A", "call", 3),  # had a call, lacks the meeting 83% of A's wins had
            ("renewal", "c2", "A", "email,meeting", 3),  # had the meeting: the call is what it lacks
            ("renewal", "c3", "B", None, 3),  # B has too few wins of its own: the type's history speaks
        ),
        signals(),
        RENEWAL_HISTORY,
    )
    assert got.next_action_en.tolist() == [
        "Book a meeting (83% of won renewal deals of rank A had one in their last 30 days; this deal has none)",
        "Call the customer (50% of won renewal deals of rank A had one in their last 30 days; this deal has none)",
        "Call the customer (50% of won renewal deals had one in their last 30 days; this deal has none)",
    ]
    assert (
        got.next_action_ja[0]
        == "打ち合わせを設定する（ランクAの受注した更新商談の83%が受注前30日以内に実施、この商談では未実施）"
    )
    assert got.risk_en.isna().all()


def test_a_signal_leads_the_action_and_every_signal_names_its_risk() -> None:
    got = deal_next_actions(
        deals(("renewal", "c1", "A", "call,meeting", 45), ("renewal", "c2", "A", "call,meeting", 2)),
        signals(
            ("c1", "no_recent_touch", 45.0, 30.0, "A"),
            ("c1", "renewal_upcoming", 20.0, 60.0, "2024-06-30"),
            ("c1", "a_signal_without_a_rule", 1.0, 1.0, None),
        ),
        RENEWAL_HISTORY,
    )
    # c1: the renewal is more urgent than the silence; no touch is missing, so the signal's action stands alone
    assert got.next_action_en[0] == "Confirm the renewal and its terms"
    assert got.risk_en[0] == "no activity on this deal in 45 days; renewal in 20 days; no touch in 45 days"
    assert got.risk_ja[0] == "この商談で45日間活動なし、更新まで20日、45日間接点なし"
    # c2: every common touch done, no signal: the type's most common touch, as before
    assert got.next_action_en[1] == "Book a meeting (before 83% of won renewal deals of rank A)"
    assert pd.isna(got.risk_en[1])


def test_a_deal_with_no_history_is_told_to_call() -> None:
    got = deal_next_actions(deals(("new", "c1", None, None, 0)), signals(), RENEWAL_HISTORY)
    assert (got.next_action_en[0], got.next_action_ja[0]) == ("Call the customer", "電話する")


def test_customer_next_action_is_the_most_urgent_signals() -> None:
    got = customer_next_actions(
        signals(
            ("c1", "near_plan_limit", 0.92, 0.8, None),
            ("c1", "follow_up_due", 3.0, 0.0, "2024-06-07"),
            ("c2", "cross_sell_fit", 1.0, 1.0, "analytics"),
            ("c3", "a_signal_without_a_rule", 1.0, 1.0, None),
        )
    ).set_index("customer_id")
    assert list(got.index) == ["c1", "c2"]
    assert got.loc["c1", "next_action_en"] == "Follow up as agreed (review date 2024-06-07)"
    assert got.loc["c1", "risk_en"] == "follow-up due 3 days ago; plan usage at 92%"
    assert got.loc["c2", "next_action_ja"] == "analyticsを紹介する"


def test_band_history_needs_enough_wins() -> None:
    h = TouchHistory.from_frame(RENEWAL_HISTORY)
    assert h.scope("renewal", "A")[0] == "A" and h.scope("renewal", "B")[0] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("signals: {x: {priority: 1, action: {en: a}, risk: {en: r, ja: r}}}", r"signals\.x\.action must give"),
        (
            "signals: {x: {priority: 1, action: {en: '{days}', ja: a}, risk: {en: r, ja: r}}}",
            r"rules\.yml: signals\.x\.action\.en: KeyError\('days'\)",
        ),
        ("signals: {x: {priority: high}}", r"signals\.x\.priority must be an integer"),
    ],
    ids=["missing-language", "unknown-placeholder", "priority-not-int"],
)
def test_a_bad_rules_file_names_the_signal_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        signal_rules(path)


def test_forecast_deals_reads_rank_bands_and_recent_touches_from_the_warehouse() -> None:
    """The SQL side: won deals' touches per type and rank band, the customer's touches of the last 30 days."""
    con = duckdb.connect()
    for schema in ("staging", "intermediate", "marts"):
        con.execute(f"CREATE SCHEMA {schema}")
    con.execute(
        "CREATE TABLE intermediate.int_customers_scored AS SELECT * FROM (VALUES "
        + ", ".join(f"('w{i}', 'A')" for i in range(MIN_BAND_WINS))
        + ", ('o1', 'A'), ('o2', 'A')) t(customer_id, customer_rank)"
    )
    won = [(f"W{i}", f"w{i}", "renewal", "2024-05-01", "2024-05-20", True) for i in range(MIN_BAND_WINS)]
    open_ = [("O1", "o1", "renewal", "2024-06-01", None, None), ("O2", "o2", "renewal", "2024-06-01", None, None)]
    con.execute(
        """CREATE TABLE staging.stg_crm__deals (deal_id VARCHAR, customer_id VARCHAR, deal_type VARCHAR,
           stage VARCHAR, amount DECIMAL(18,2), created_at TIMESTAMP, closed_at TIMESTAMP, is_won BOOLEAN,
           lead_source VARCHAR)"""
    )
    con.executemany(
        "INSERT INTO staging.stg_crm__deals VALUES (?, ?, ?, 'proposal', 1000, ?, ?, ?, 'inbound')", won + open_
    )
    # every winner had a meeting before winning, three of five a call; o1 had a meeting lately, o2 a call
    touches = [(f"w{i}", "meeting", "2024-05-10") for i in range(MIN_BAND_WINS)]
    touches += [(f"w{i}", "call", "2024-05-12") for i in range(3)]
    touches += [("o1", "meeting", "2024-06-05"), ("o2", "call", "2024-06-05"), ("o2", "meeting", "2024-04-01")]
    con.execute(
        "CREATE TABLE staging.stg_crm__activities (customer_id VARCHAR, activity_type VARCHAR, occurred_at TIMESTAMP)"
    )
    con.executemany("INSERT INTO staging.stg_crm__activities VALUES (?, ?, ?)", touches)
    con.execute(
        """CREATE TABLE intermediate.int_customer_features_monthly (customer_id VARCHAR, snapshot_on DATE,
           is_scoring_snapshot BOOLEAN, mrr DOUBLE, usage_vs_3_month_average DOUBLE, plan_usage_ratio DOUBLE,
           days_since_last_touch DOUBLE, tenure_months DOUBLE, tickets_last_90_days DOUBLE)"""
    )
    con.execute(
        """CREATE TABLE marts.customer_signals AS SELECT 'o2' AS customer_id, 'renewal_upcoming' AS signal,
           20.0 AS signal_value, 60.0 AS signal_threshold, '2024-06-30' AS signal_detail"""
    )
    got = forecast_deals(con, AS_OF, None).set_index("deal_id")
    assert list(got.index) == ["O1", "O2"]
    assert got.loc["O1", "next_action_en"].startswith("Call the customer (60% of won renewal deals of rank A")
    assert got.loc["O2", "next_action_en"] == (
        "Confirm the renewal and its terms; Book a meeting (100% of won renewal deals of rank A had one in their "
        "last 30 days; this deal has none)"
    )
    assert got.loc["O2", "risk_en"] == "renewal in 20 days" and pd.isna(got.loc["O1", "risk_en"])


def test_remembered_texts_are_those_of_each_row() -> None:
    """The day's fill remembers texts across customers; values equal to Python (1 and True, 1 and 1.0) but
    printed differently, and missing values, still get their own text."""
    from kizuna.scoring.next_actions import SignalRule, _filler, advise

    rule = SignalRule("odd", 1, {"en": "act {detail}", "ja": "{detail}"}, {"en": "{value:.1f}/{detail}", "ja": "r"})
    rules = {"odd": rule}
    fill = _filler()
    rows = [
        [("odd", 1, 2, "1")],
        [("odd", 1.0, 2, 1)],
        [("odd", True, 2, True)],
        [("odd", float("nan"), None, None)],
        [("odd", None, 2, float("nan"))],
        [("odd", 1, 2, "1")],
    ]
    for signal_rows in rows:
        assert advise(signal_rows, rules, fill) == advise(signal_rows, rules)
    assert [advise(r, rules, fill).actions["en"] for r in rows[:3]] == ["act 1", "act 1", "act True"]


def test_deals_alike_share_texts_and_each_keeps_its_own() -> None:
    """deal_next_actions makes each text once for deals alike: every row must still read as deal_next_action
    says for that row alone (ranks missing, quiet days either side of QUIET_DEAL_DAYS, customers sharing signal
    rows, a customer with a deal and no signal, recent touch types in another order)."""
    from kizuna.scoring.next_actions import _advice_by_customer, deal_next_action

    rows = (
        ("renewal", "c1", "A", "call", 3),
        ("renewal", "c2", "A", "call", 3),  # c2 has c1's signal rows: the same advice
        ("renewal", "c1", "A", "call", 15),
        ("renewal", "c2", "A", "call", 16),
        ("renewal", "c3", "A", "call", 16),  # other signals, else as c2's deal
        ("renewal", "c4", "A", "call", 16),  # no signal at all
        ("renewal", "c4", None, "call", 16),
        ("renewal", "c4", "B", "meeting,call", 14),
        ("renewal", "c4", "B", "call,meeting", 40),
        ("new", "c4", None, None, 0),
        ("new", "c1", None, None, 0),
    )
    signal_rows = signals(
        ("c1", "no_recent_touch", 45.0, 30.0, "A"),
        ("c2", "no_recent_touch", 45.0, 30.0, "A"),
        ("c3", "renewal_upcoming", 20.0, 60.0, "2024-06-30"),
        ("c3", "no_recent_touch", 45.0, 30.0, "A"),
    )
    got = deal_next_actions(deals(*rows), signal_rows, RENEWAL_HISTORY)
    advice = _advice_by_customer(signal_rows, signal_rules())
    history_ = TouchHistory.from_frame(RENEWAL_HISTORY)
    expected = [
        deal_next_action(t, r, frozenset(recent.split(",")) if recent else frozenset(), d, advice.get(c), history_)
        for t, c, r, recent, d in rows
    ]
    # as the rows were built before: a frame of deal_next_action's dicts, dtypes and missing values included
    pd.testing.assert_frame_equal(got, pd.DataFrame(expected, columns=list(expected[0])))
    assert got.risk_en[2] == "no activity on this deal in 15 days; no touch in 45 days"
    assert got.risk_en[3] == "no activity on this deal in 16 days; no touch in 45 days"
    assert pd.isna(got.risk_en[9]) and got.risk_en[5] == "no activity on this deal in 16 days"
