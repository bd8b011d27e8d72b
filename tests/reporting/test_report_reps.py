"""The report's per-rep page: each rep's figures from hand-made deals, a team row equal to the team mart.

The warehouse is written by hand as a build of 2026-12-05 would leave it: two reps, Aoki (inside sales) and Baba
(account executive). Aoki's CSQL S1 is handed to Baba, answered late (an SLA breach) and won by Baba in November:
both are credited with its MRR. The expected figures are computed here from the deals and touches, not from the
marts; August (before the window) and December (in progress) hold figures that must not appear.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kizuna.core.settings import Settings
from kizuna.reporting.report import build_report
from kizuna.reporting.sections import ReportContext
from kizuna.reporting.sections.inside_sales_reps import (
    OWNER_MART,
    REP_COLUMNS,
    TEAM_MART,
    TRAILING_MONTHS,
    inside_sales_by_rep,
    months_back,
)
from tests.reporting.demo_warehouse import AS_OF as DEMO_AS_OF

AS_OF = dt.date(2026, 12, 5)  # reporting month 2026-11, trailing window 2026-09..2026-11
AUG, SEP, OCT, NOV, DEC = (dt.date(2026, m, 1) for m in (8, 9, 10, 11, 12))
AOKI, BABA = "is.aoki@example.co.jp", "ae.baba@example.co.jp"

# csql, creator, closer, month created, handed off, answer, SLA breached, at opportunity, month won, won MRR
CSQLS = [
    ("S0", AOKI, AOKI, AUG, False, None, False, False, None, 0),
    ("S1", AOKI, BABA, SEP, True, "accepted", True, True, NOV, 100_000),  # shared credit, the one SLA breach
    ("S2", AOKI, BABA, OCT, True, "rejected", False, False, None, 0),
    ("S3", BABA, BABA, NOV, False, None, False, True, NOV, 24_000),  # created and closed by Baba: credited once
    ("S4", AOKI, AOKI, DEC, False, None, False, False, None, 0),
]
# month, owner, customer, effective conversation
TOUCHES = [
    (AUG, AOKI, "C9", True),
    (SEP, AOKI, "C1", True),
    (SEP, AOKI, "C2", False),
    (OCT, AOKI, "C1", False),  # Aoki first, then Baba: C1 counts for both, once for the team
    (OCT, BABA, "C1", True),
    (NOV, AOKI, "C2", True),
    (NOV, AOKI, "C3", True),
    (DEC, AOKI, "C3", True),
]
MONTHS = (AUG, SEP, OCT, NOV, DEC)
OWNER_COLUMNS = [
    "accounts_approached",
    "accounts_first_approached",
    "effective_conversations",
    "csqls_created",
    "intent_csqls_created",
    "csqls_handed_off",
    "csqls_accepted",
    "csqls_rejected",
    "csqls_to_opportunity",
    "csqls_received",
    "csqls_sla_breached",
    "csqls_won_as_creator",
    "csqls_won_as_closer",
    "csqls_won_credited",
    "won_expansion_mrr_as_creator",
    "won_expansion_mrr_as_closer",
    "won_expansion_mrr_credited",
]
# inside_sales_kpis_monthly_by_owner as dbt builds it from CSQLS and TOUCHES, written out by hand.
OWNER_ROWS = [  # month, owner, then OWNER_COLUMNS in order
    (AUG, AOKI, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (SEP, AOKI, 2, 2, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
    (SEP, BABA, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0),
    (OCT, AOKI, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (OCT, BABA, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
    (NOV, AOKI, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 100_000, 0, 100_000),
    (NOV, BABA, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 2, 2, 24_000, 124_000, 124_000),
    (DEC, AOKI, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
]
# inside_sales_kpis_monthly: each account and CSQL once.
TEAM_ROWS = [  # month, accounts_approached, effective_conversations, csqls_created, csqls_to_opportunity, csqls_won, MRR
    (AUG, 1, 1, 1, 0, 0, 0),
    (SEP, 2, 1, 1, 1, 0, 0),
    (OCT, 1, 1, 1, 0, 0, 0),
    (NOV, 2, 2, 1, 1, 2, 124_000),
    (DEC, 1, 1, 1, 0, 0, 0),
]


def write_warehouse(path: Path, *, owner_mart: bool = True, owner_rows: bool = True) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        team = pd.DataFrame(
            TEAM_ROWS,
            columns=[
                "month",
                "accounts_approached",
                "effective_conversations",
                "csqls_created",
                "csqls_to_opportunity",
                "csqls_won",
                "won_expansion_mrr",
            ],
        )
        con.register("team", team.assign(is_complete=team["month"] < DEC))
        con.execute(f"CREATE TABLE marts.{TEAM_MART} AS SELECT * FROM team")
        if owner_mart:
            owners = pd.DataFrame(OWNER_ROWS if owner_rows else [], columns=["month", "owner_email", *OWNER_COLUMNS])
            con.register("owners", owners.assign(is_complete=owners["month"] < DEC))
            con.execute(f"CREATE TABLE marts.{OWNER_MART} AS SELECT * FROM owners")
    finally:
        con.close()


def expected(first: dt.date, last: dt.date) -> dict[str, list[float]]:
    """Per rep and for the team, the page's figures of months first..last, straight from CSQLS and TOUCHES."""

    def within(month: dt.date | None) -> bool:
        return month is not None and first <= month <= last

    def figures(owner: str | None) -> list[float]:
        mine = [c for c in CSQLS if within(c[3]) and owner in (None, c[1])]
        received = [c for c in CSQLS if within(c[3]) and c[4] and owner in (None, c[2])]
        touches = [t for t in TOUCHES if within(t[0]) and owner in (None, t[1])]
        accounts = len({(t[0], t[1] if owner else None, t[2]) for t in touches})  # distinct per month (and rep)
        won = [c for c in CSQLS if within(c[8])]
        return [
            accounts,
            sum(t[3] for t in touches),
            len(mine),
            sum(c[4] for c in mine),
            sum(c[5] == "accepted" for c in mine),
            sum(c[5] == "rejected" for c in mine),
            sum(c[7] for c in mine),
            len(received),
            sum(c[6] for c in received),
            sum(c[9] for c in won if owner in (None, c[1])),
            sum(c[9] for c in won if owner in (None, c[2])),
        ]

    owners = sorted(
        {t[1] for t in TOUCHES if within(t[0])}
        | {c[1] for c in CSQLS if within(c[3])}  # creators
        | {c[2] for c in CSQLS if within(c[3]) and c[4]}  # those handed to
        | {o for c in CSQLS if within(c[8]) for o in c[1:3]}  # creators and closers of won CSQLs
    )
    return {**{o: figures(o) for o in owners}, "Team total": figures(None)}


def cells(values: list[float]) -> list[str]:
    return [f"{v:,.0f}" for v in values[:-2]] + [f"¥{v:,.0f}" for v in values[-2:]]


def test_the_page_shows_each_rep_and_the_team_as_the_deals_say(tmp_path: Path) -> None:
    warehouse = tmp_path / "reps.duckdb"
    write_warehouse(warehouse)
    result = build_report(Settings(warehouse=warehouse, var_dir=tmp_path / "var"), AS_OF, "en")
    assert result.errors == {}
    assert "inside_sales_by_rep" not in result.missing
    page = next(s for s in result.sections if s.key == "inside_sales_by_rep")
    month, window = page.section.tables
    assert month.title == "Inside-sales KPIs by rep 2026-11"
    assert window.title == "Inside-sales KPIs by rep: trailing 3 months (2026-09–2026-11)"
    assert month.columns[1:] == [
        "Accounts approached",
        "Effective conversations",
        "CSQLs created",
        "Handed off",
        "Accepted",
        "Rejected",
        "CSQLs to opportunity",
        "CSQLs received",
        "SLA breaches",
        "Won expansion MRR as creator",
        "Won expansion MRR as closer",
    ]
    for table, first in ((month, NOV), (window, SEP)):
        want = expected(first, NOV)
        assert [row[0] for row in table.rows] == list(want)  # reps by e-mail, the team last
        for row in table.rows:
            assert row[1:] == cells(want[row[0]]), (table.title, row[0])
    # The shared credit: S1's 100,000 is Aoki's as creator and Baba's as closer, and the team's once.
    team = {row[0]: row for row in window.rows}
    assert team[AOKI][10:] == ["¥100,000", "¥0"] and team[BABA][10:] == ["¥24,000", "¥124,000"]
    assert team["Team total"][10:] == ["¥124,000", "¥124,000"]
    assert team[BABA][9] == "1" and team["Team total"][9] == "1"  # the one SLA breach, Baba's to keep
    assert team[AOKI][1] == "5" and team[BABA][1] == "1" and team["Team total"][1] == "5"  # C1 twice in October

    html = result.path.read_text(encoding="utf-8")
    assert '<a href="#inside_sales_by_rep">Inside-sales KPIs by rep</a>' in html  # in the contents
    assert "Shared credit: a won CSQL is credited in full to both its creator and its closer" in html
    pngs = {p.stem for p in result.png_paths}
    assert {"inside_sales_by_rep_handoff", "inside_sales_by_rep_won"} <= pngs


@pytest.mark.parametrize("months", [1, TRAILING_MONTHS], ids=["reporting-month", "trailing-window"])
def test_the_team_row_is_the_team_mart(tmp_path: Path, months: int) -> None:
    """Where the team mart has a figure, the team row is its sum over the months; the others add up over reps."""
    warehouse = tmp_path / "reps.duckdb"
    write_warehouse(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        ctx = ReportContext(con, AS_OF, "ja", "JPY", tmp_path)
        table = inside_sales_by_rep(ctx).tables[0 if months == 1 else 1]
        first = months_back(NOV, months - 1)
        team_mart = con.execute(
            f"SELECT sum(accounts_approached), sum(effective_conversations), sum(csqls_created), "
            f"sum(csqls_to_opportunity), sum(won_expansion_mrr) FROM marts.{TEAM_MART} WHERE month BETWEEN ? AND ?",
            [first, NOV],
        ).fetchone()
    team = table.rows[-1]
    assert team[0] == "チーム合計"
    shown = dict(zip([c.column for c in REP_COLUMNS], team[1:], strict=True))
    accounts, conversations, created, to_opportunity, won = team_mart
    assert shown["accounts_approached"] == f"{accounts:,.0f}"
    assert shown["effective_conversations"] == f"{conversations:,.0f}"
    assert shown["csqls_created"] == f"{created:,.0f}"
    assert shown["csqls_to_opportunity"] == f"{to_opportunity:,.0f}"
    assert shown["won_expansion_mrr_as_creator"] == shown["won_expansion_mrr_as_closer"] == f"{won:,.0f}円"


def test_the_team_row_is_the_team_mart_on_the_demo(demo_warehouse_path: Path, tmp_path: Path) -> None:
    """On the demo's dbt-built marts, every rep row is the owner mart's and the team row the team mart's."""
    with duckdb.connect(str(demo_warehouse_path), read_only=True) as con:
        section = inside_sales_by_rep(ReportContext(con, DEMO_AS_OF, "en", "JPY", tmp_path))
        month = ReportContext(con, DEMO_AS_OF, "en", "JPY", tmp_path).reporting_month
        for table, first in zip(section.tables, (month, months_back(month, TRAILING_MONTHS - 1)), strict=True):
            team = con.execute(
                f"SELECT sum(accounts_approached), sum(csqls_created), sum(won_expansion_mrr) FROM marts.{TEAM_MART} "
                "WHERE month BETWEEN ? AND ?",
                [first, month],
            ).fetchone()
            reps = con.execute(
                f"SELECT owner_email, sum(csqls_created) FROM marts.{OWNER_MART} WHERE month BETWEEN ? AND ? "
                "GROUP BY owner_email ORDER BY owner_email",
                [first, month],
            ).fetchall()
            assert [row[0] for row in table.rows] == [r[0] for r in reps] + ["Team total"]
            assert [row[3] for row in table.rows[:-1]] == [f"{r[1]:,.0f}" for r in reps]
            assert table.rows[-1][1:4:2] == [f"{team[0]:,.0f}", f"{team[1]:,.0f}"]
            assert table.rows[-1][10:] == [f"¥{float(team[2]):,.0f}"] * 2
    assert float(team[2]) > 0 and len(reps) >= 2


@pytest.mark.parametrize(
    ("owner_mart", "owner_rows", "line"),
    [
        (False, False, "not available yet (mart inside_sales_kpis_monthly_by_owner missing)"),
        (True, False, "no rep to show for 2026-09–2026-11 (no owner in inside_sales_kpis_monthly_by_owner)"),
    ],
    ids=["older-warehouse", "no-owner"],
)
def test_without_the_mart_or_an_owner_one_line_says_so(
    tmp_path: Path, owner_mart: bool, owner_rows: bool, line: str
) -> None:
    warehouse = tmp_path / "reps.duckdb"
    write_warehouse(warehouse, owner_mart=owner_mart, owner_rows=owner_rows)
    result = build_report(Settings(warehouse=warehouse, var_dir=tmp_path / "var"), AS_OF, "en")
    assert result.errors == {}
    page = next(s for s in result.sections if s.key == "inside_sales_by_rep")
    assert page.section.missing + page.section.notes == [line]
    assert not page.section.tables and not page.charts
    assert line in result.path.read_text(encoding="utf-8")
