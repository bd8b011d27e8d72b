"""Rank A/B/C: customers and MRR of the reporting month by today's rank, and movement since the last report."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section, Table


def _rank_snapshot_path(ctx: ReportContext, as_of: date) -> Path:
    return ctx.snapshot_dir / f"ranks-{as_of.isoformat()}.csv"


def ranks(ctx: ReportContext) -> Section:
    section = Section("ranks", ctx.t("ranks"), ["customers", "customer_mrr_monthly"])
    if not ctx.require(section, "customers", "rank", "status", "mrr"):
        return section
    none = ctx.t("no_rank")
    month = ctx.reporting_month
    if ctx.require(section, "customer_mrr_monthly", "customer_id", "month", "mrr", "is_customer"):
        # Ranks are today's (the customers mart keeps no history), counts and MRR the reporting month's, so
        # the totals are the headline's; customers paying then but without a rank now show as "none".
        frame = ctx.df(
            """SELECT coalesce(c.rank, ?) AS rank, count(*) AS customers, sum(m.mrr)::DOUBLE PRECISION AS mrr
               FROM marts.customer_mrr_monthly m LEFT JOIN marts.customers c ON c.customer_id = m.customer_id
               WHERE m.month = ? AND m.is_customer GROUP BY 1 ORDER BY rank""",
            [none, month],
        )
        section.notes.append(ctx.t("rank_basis", as_of=ctx.as_of.isoformat(), month=month.strftime("%Y-%m"), none=none))
    else:
        frame = ctx.df(
            """SELECT rank, count(*) AS customers, sum(mrr)::DOUBLE PRECISION AS mrr FROM marts.customers
               WHERE status = 'active' AND rank IS NOT NULL GROUP BY rank ORDER BY rank"""
        )
    frame["category"] = frame["rank"]
    divisor, unit, money_format = ctx.money_unit
    section.charts.append(
        Chart(
            "rank_customers",
            ctx.t("rank_customers"),
            charts.bars(
                frame.assign(value=frame["customers"].astype(float)),
                title=f"{ctx.t('rank_customers')} {month:%Y-%m}",
                category_title=ctx.t("rank"),
                value_title=ctx.t("customers"),
                value_format=",.0f",
                sort=["A", "B", "C", none],
            ),
        )
    )
    section.charts.append(
        Chart(
            "rank_mrr",
            ctx.t("rank_mrr"),
            charts.bars(
                frame.assign(value=frame["mrr"] / divisor),
                title=f"{ctx.t('rank_mrr')} {month:%Y-%m}",
                category_title=ctx.t("rank"),
                value_title=unit,
                value_format=money_format,
                sort=["A", "B", "C", none],
            ),
        )
    )
    total = float(frame["mrr"].sum()) or 1.0
    section.tables.append(
        Table(
            f"{ctx.t('ranks')} {month:%Y-%m}",
            [ctx.t("rank"), ctx.t("customers"), ctx.t("mrr"), ctx.t("share_of_mrr")],
            [[r.rank, ctx.number(r.customers), ctx.money(r.mrr), ctx.pct(r.mrr / total)] for r in frame.itertuples()],
            [False, True, True, True],
        )
    )
    _rank_movement(ctx, section)
    return section


def _rank_movement(ctx: ReportContext, section: Section) -> None:
    """Movement between this report's ranks and those the latest earlier report recorded (the mart has no history)."""
    current = ctx.df("SELECT customer_id, rank FROM marts.customers")
    ctx.snapshot_dir.mkdir(parents=True, exist_ok=True)
    earlier = sorted(
        p for p in ctx.snapshot_dir.glob("ranks-*.csv") if p.stem.removeprefix("ranks-") < ctx.as_of.isoformat()
    )
    current.to_csv(_rank_snapshot_path(ctx, ctx.as_of), index=False)
    if not earlier:
        section.notes.append(ctx.t("no_snapshot"))
        return
    previous_path = earlier[-1]
    previous = pd.read_csv(previous_path, dtype=str, keep_default_na=False)
    none = ctx.t("no_rank")
    merged = previous.merge(current, on="customer_id", how="outer", suffixes=("_before", "_now"))
    merged = merged.fillna({"rank_before": none, "rank_now": none}).replace({"rank_before": {"": none}})
    merged["rank_now"] = merged["rank_now"].fillna(none)
    moves = merged.groupby(["rank_before", "rank_now"]).size().reset_index(name="value")
    moves = moves[(moves["rank_before"] != none) | (moves["rank_now"] != none)]
    previous_day = previous_path.stem.removeprefix("ranks-")
    title = ctx.t("rank_movement", previous=previous_day)
    order = ["A", "B", "C", none]
    section.charts.append(
        Chart(
            "rank_movement",
            title,
            charts.heatmap(
                moves.rename(columns={"rank_now": "x", "rank_before": "y"}).assign(value=lambda d: d["value"] * 1.0),
                title=title,
                x_title=ctx.t("current_rank"),
                y_title=ctx.t("previous_rank"),
                value_title=ctx.t("customers"),
                value_format=",.0f",
                text=True,
                x_sort=order,
                y_sort=order,
            ),
        )
    )
