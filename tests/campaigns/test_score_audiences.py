"""Audiences and call lists on marts.customer_scores: today's scores only, and nobody (said aloud) without them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from kizuna.campaigns.call_list import build_call_list
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.select import audience_sql, select_recipients
from kizuna.campaigns.spec import Campaign, CampaignFileError, load_campaign
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from tests.campaigns.test_select import AS_OF, build_marts, recipients

STALE = AS_OF - dt.timedelta(days=1)
USAGE_DOWN = (
    "usage down 42% against its 3-month average; no touch for 75 days",
    "利用が直近3か月平均より42%減少、75日間接触なし",
)
# customer_id, as_of, churn_risk, (churn_factors_en, churn_factors_ja). The customers of test_select: C1 and C6 are
# the rank A accounts, C5 is churned. Stale rows (an earlier day's run) hold the opposite picture on purpose.
TODAY = [
    ("C1", AS_OF, 0.6, ("plan at 95% of its limit", "プラン上限の95%まで利用")),  # exactly at the bound
    ("C2", AS_OF, 0.59, ("", "")),
    ("C3", AS_OF, 0.9, USAGE_DOWN),
    ("C4", AS_OF, 0.2, ("", "")),
    ("C5", AS_OF, 0.99, USAGE_DOWN),  # churned already: status active keeps it out
    ("C6", AS_OF, 0.05, ("", "")),
]
STALE_ROWS = [
    ("C2", STALE, 0.95, USAGE_DOWN),
    ("C4", STALE, 0.97, USAGE_DOWN),
    ("C6", STALE, 0.9, USAGE_DOWN),
    ("C7", STALE, 0.8, USAGE_DOWN),  # no score today at all
]


def write_scores(path: Path, rows: list[tuple[str, dt.date, float, tuple[str, str]]]) -> None:
    """marts.customer_scores as kizuna.scoring.run.write_marts leaves it, with known values."""
    with connect(path) as con:
        con.execute(
            "CREATE OR REPLACE TABLE marts.customer_scores (customer_id VARCHAR, as_of DATE, churn_risk DOUBLE, "
            "expansion_propensity DOUBLE, churn_factors_ja VARCHAR, churn_factors_en VARCHAR, "
            "expansion_factors_ja VARCHAR, expansion_factors_en VARCHAR, model_version VARCHAR, scored_at TIMESTAMP)"
        )
        con.executemany(
            "INSERT INTO marts.customer_scores VALUES (?, ?, ?, 0.1, ?, ?, '', '', 'gbm-test', '2026-11-23 03:00:00')",
            [(c, on, risk, ja, en) for c, on, risk, (en, ja) in rows],
        )


@pytest.fixture
def marts_settings(settings: Settings) -> Settings:
    build_marts(settings.warehouse)
    return settings


def call_list(**overrides: object) -> Campaign:
    return Campaign.model_validate({"name": "calls", "kind": "call_list", **overrides})


def listed(settings: Settings, campaign: Campaign, run_id: str) -> list[tuple[str, str | None]]:
    """(customer_id, signals) of one run's call list, in priority order."""
    with connect(settings.warehouse) as con:
        build_call_list(con, campaign, run_id, AS_OF)
        return con.execute(
            "SELECT customer_id, signals FROM ops.call_list WHERE run_id = ? ORDER BY priority", [run_id]
        ).fetchall()


def test_churn_risk_selects_todays_scores_at_or_above_the_bound(marts_settings: Settings) -> None:
    write_scores(marts_settings.warehouse, TODAY + STALE_ROWS)
    campaign = Campaign.model_validate(
        {"name": "save", "template": "renewal_reminder", "audience": {"churn_risk": {"min": 0.6}}}
    )
    with connect(marts_settings.warehouse) as con:
        select_recipients(con, campaign, "r1", AS_OF)
        reasons = con.execute("SELECT reasons FROM ops.campaign_recipients WHERE customer_id = 'C3'").fetchone()
    # C2 (0.95), C4, C6 and C7 qualify only on the stale day's scores; C5 has churned.
    assert set(recipients(marts_settings, "r1")) == {"C1", "C3"}
    assert reasons is not None
    assert json.loads(reasons[0]) == {
        "churn_risk": 0.9,
        "churn_factors_en": USAGE_DOWN[0],
        "churn_factors_ja": USAGE_DOWN[1],
        "status": "active",
        "lawful_basis": "consent",
    }


def test_expansion_range_and_the_shipped_example(marts_settings: Settings) -> None:
    write_scores(marts_settings.warehouse, TODAY)
    shipped = load_campaign(marts_settings.campaigns_dir / "churn_risk_save.yml")
    narrow = call_list(audience={"churn_risk": {"min": 0.5, "max": 0.8}, "expansion_propensity": {"max": 0.1}})
    with connect(marts_settings.warehouse) as con:
        sql, params = audience_sql(narrow, AS_OF, con=con)
        assert {r[0] for r in con.execute(sql, params).fetchall()} == {"C1", "C2"}
        renewing = call_list(audience={"churn_risk": {"min": 0.6}, "renewal_within_days": 60})
        sql, params = audience_sql(renewing, AS_OF, con=con)  # beside the renewals join: C3 renews in 61 days
        assert {r[0] for r in con.execute(sql, params).fetchall()} == {"C1"}
    assert [c for c, _ in listed(marts_settings, shipped, "r1")] == ["C1", "C3"]  # rank A before B, then risk


@pytest.mark.parametrize("kind", ["call_list", "email"])
@pytest.mark.parametrize("scores", [None, STALE_ROWS], ids=["no-scores-mart", "only-an-earlier-day"])
def test_without_todays_scores_nobody_is_selected_and_the_note_says_so(
    marts_settings: Settings, scores: list | None, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    if scores is not None:
        write_scores(marts_settings.warehouse, scores)
    audience = {"churn_risk": {"min": 0.6}}
    campaign = (
        call_list(audience=audience)
        if kind == "call_list"
        else Campaign.model_validate({"name": "calls", "template": "renewal_reminder", "audience": audience})
    )
    with caplog.at_level(logging.WARNING, logger="kizuna.campaigns.select"):
        summary = run_campaign(marts_settings, campaign, "r1", AS_OF)
    assert summary.selected == 0 and summary.sent == 0
    assert "no scores as of 2026-11-23" in summary.note
    assert "calls: no scores as of 2026-11-23" in caplog.text
    with connect(marts_settings.warehouse) as con:
        table = "ops.call_list" if kind == "call_list" else "ops.campaign_recipients"
        assert con.execute(f"SELECT count(*) FROM {table} WHERE run_id = 'r1'").fetchone() == (0,)


def test_call_list_puts_the_at_risk_account_first_only_with_todays_scores(marts_settings: Settings) -> None:
    rank_a = call_list(audience={"ranks": ["A"]})
    # C1 and C6 are both rank A; C1 has a signal, so it leads without scores.
    before = listed(marts_settings, rank_a, "before")
    assert before == [("C1", "near_plan_limit"), ("C6", None)]

    write_scores(marts_settings.warehouse, STALE_ROWS)  # C6 at 0.9, but of an earlier day: not used
    assert listed(marts_settings, rank_a, "stale") == before

    write_scores(marts_settings.warehouse, [("C1", AS_OF, 0.1, ("", "")), ("C6", AS_OF, 0.72, USAGE_DOWN)])
    assert listed(marts_settings, rank_a, "scored") == [
        ("C6", "churn risk 72%: 利用が直近3か月平均より42%減少"),  # the campaign's locale (ja), top factor only
        ("C1", "near_plan_limit, churn risk 10%"),
    ]
    english = listed(marts_settings, call_list(audience={"ranks": ["A"]}, locale="en"), "scored-en")
    assert english[0] == ("C6", "churn risk 72%: usage down 42% against its 3-month average")


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ("{churn_risk: {max: 1.5}}", "key audience.churn_risk: Value error, max must be between 0 and 1"),
        ("{expansion_propensity: {min: -0.1}}", "key audience.expansion_propensity: Value error, min must be"),
        ("{churn_risk: {min: 0.8, max: 0.6}}", "key audience.churn_risk: Value error, min (0.8) is greater"),
    ],
    ids=["churn-risk-over-1", "expansion-under-0", "min-over-max"],
)
def test_score_bounds_are_probabilities(tmp_path: Path, audience: str, message: str) -> None:
    path = tmp_path / "save.yml"
    path.write_text(f"name: save\nkind: call_list\naudience: {audience}\n", encoding="utf-8")
    with pytest.raises(CampaignFileError, match=r"save\.yml") as info:
        load_campaign(path)
    assert message in str(info.value)
