"""Campaign performance: engagement per run (campaign_performance) and treatment against holdout since selection."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section, Table


def campaign_performance(ctx: ReportContext) -> Section:
    section = Section("campaigns", ctx.t("campaigns"), ["campaign_performance", "ops.campaign_recipients"])
    _engagement(ctx, section)
    _treatment_vs_holdout(ctx, section)
    return section


def _engagement(ctx: ReportContext, section: Section) -> None:
    mart = "campaign_performance"
    if not ctx.require(section, mart, "campaign", "sent"):
        return
    wanted = [
        "run_id",
        "template",
        "locale",
        "sent",
        "delivery_rate",
        "human_open_rate",
        "click_rate",
        "unsubscribe_rate",
    ]
    present = [c for c in wanted if c in ctx.columns(mart)]
    frame = ctx.df(f"SELECT campaign, {', '.join(present)} FROM marts.{mart} ORDER BY run_id DESC NULLS LAST LIMIT 20")
    if frame.empty:
        return

    def cell(column: str, value: Any) -> str:
        if column.endswith("_rate"):
            return ctx.pct(value)
        return ctx.number(value) if column == "sent" else ("" if value is None or pd.isna(value) else str(value))

    section.tables.append(
        Table(
            ctx.t("engagement"),
            [ctx.t("campaign")] + [ctx.t(c) for c in present],
            [[str(r["campaign"])] + [cell(c, r[c]) for c in present] for _, r in frame.iterrows()],
            [False] + [c == "sent" or c.endswith("_rate") for c in present],
        )
    )


def _treatment_vs_holdout(ctx: ReportContext, section: Section) -> None:
    """Per campaign and group: the customers' MRR in the month they were first selected against now.

    A first reading of lift from what exists today (ops.campaign_recipients and customer_mrr_monthly);
    the tracking mart will add CSQLs and expansion within 30/90 days.
    """
    if not ctx.has("campaign_recipients", "ops"):
        section.missing.append(ctx.t("missing_mart", mart="ops.campaign_recipients"))
        return
    if "variant" not in ctx.columns("campaign_recipients", "ops"):
        section.missing.append(ctx.t("missing_column", mart="ops.campaign_recipients", column="variant"))
        return
    if not ctx.require(section, "customer_mrr_monthly", "customer_id", "month", "mrr"):
        return
    frame = ctx.df(
        """
        WITH picked AS (
            SELECT campaign, customer_id, min(variant) AS variant,  -- a customer stays in one group per campaign
                   CAST(date_trunc('month', min(as_of)) AS DATE) AS selected_month
            FROM ops.campaign_recipients WHERE as_of <= ? GROUP BY campaign, customer_id
            HAVING CAST(date_trunc('month', min(as_of)) AS DATE) <= ?  -- measured in the reporting month
        ),
        measured AS (
            SELECT p.campaign, p.variant, p.customer_id,
                   coalesce(t.mrr, 0)::DOUBLE AS mrr_then, coalesce(n.mrr, 0)::DOUBLE AS mrr_now,
                   coalesce(t.mrr, 0) > 0 AND coalesce(n.mrr, 0) = 0 AS churned
            FROM picked p
            LEFT JOIN marts.customer_mrr_monthly t ON t.customer_id = p.customer_id AND t.month = p.selected_month
            LEFT JOIN marts.customer_mrr_monthly n
                   ON n.customer_id = p.customer_id AND n.month = ?
        )
        SELECT campaign, variant, count(*) AS customers, sum(mrr_then) AS mrr_then, sum(mrr_now) AS mrr_now,
               avg(churned::INTEGER) AS churned_rate
        FROM measured GROUP BY campaign, variant ORDER BY campaign, variant DESC
        """,
        [ctx.as_of, ctx.reporting_month, ctx.reporting_month],
    )
    month = ctx.reporting_month.strftime("%Y-%m")
    if frame.empty:
        section.notes.append(ctx.t("no_lift", month=month))
        return
    frame["change"] = (frame["mrr_now"] - frame["mrr_then"]) / frame["mrr_then"].where(frame["mrr_then"] > 0)
    if not (frame["variant"] == "holdout").any():
        section.notes.append(ctx.t("no_holdout"))
    frame["group"] = frame["variant"].map(lambda v: ctx.t(v) if v in ("treatment", "holdout") else str(v))
    measured = frame.dropna(subset=["change"])
    if measured.empty:
        # Bars of nothing would be bare axes: say why there is no lift instead.
        section.notes.append(ctx.t("no_lift", month=month))
    else:
        _lift_chart(ctx, section, measured)
    section.tables.append(
        Table(
            f"{ctx.t('campaigns')} {month}",
            [
                ctx.t("campaign"),
                ctx.t("variant"),
                ctx.t("selected_customers"),
                ctx.t("mrr_then"),
                ctx.t("mrr_now"),
                ctx.t("mrr_change"),
                ctx.t("churned_since"),
            ],
            [
                [
                    str(r["campaign"]),
                    str(r["group"]),
                    ctx.number(r["customers"]),
                    ctx.money(r["mrr_then"]),
                    ctx.money(r["mrr_now"]),
                    ctx.pct(r["change"]),
                    ctx.pct(r["churned_rate"]),
                ]
                for _, r in frame.iterrows()
            ],
            [False, False, True, True, True, True, True],
        )
    )


def _lift_chart(ctx: ReportContext, section: Section, measured: pd.DataFrame) -> None:
    title = f"{ctx.t('lift_chart')} ({ctx.reporting_month:%Y-%m})"
    section.charts.append(
        Chart(
            "campaign_lift",
            title,
            charts.bars(
                measured.assign(category=measured["campaign"], series=measured["group"], value=measured["change"]),
                title=title,
                category_title=ctx.t("campaign"),
                value_title=ctx.t("mrr_change"),
                value_format=".1%",
                series_title=ctx.t("variant"),
                label_angle=-30,  # campaign names are long: slanted, they do not run into each other
            ),
        )
    )
