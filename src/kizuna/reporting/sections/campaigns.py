"""Campaign performance: engagement per run, MRR change since selection, lift as marts.campaign_lift has it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section, Table


def campaign_performance(ctx: ReportContext) -> Section:
    section = Section("campaigns", ctx.t("campaigns"), ["campaign_performance", "ops.campaign_recipients"])
    _engagement(ctx, section)
    _mrr_change_since_selection(ctx, section)
    _campaign_lift(ctx, section)
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


def _mrr_change_since_selection(ctx: ReportContext, section: Section) -> None:
    """Per campaign and group: the customers' MRR in the month they were first selected against now.

    MRR change since selection, treatment and holdout side by side: a description of each group, not lift
    (the lift, CSQL rate and expansion MRR per customer in 30/90-day windows, is the mart's: _campaign_lift).
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
                   coalesce(t.mrr, 0)::DOUBLE PRECISION AS mrr_then, coalesce(n.mrr, 0)::DOUBLE PRECISION AS mrr_now,
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
        section.notes.append(ctx.t("no_mrr_change", month=month))
        return
    frame["change"] = (frame["mrr_now"] - frame["mrr_then"]) / frame["mrr_then"].where(frame["mrr_then"] > 0)
    if not (frame["variant"] == "holdout").any():
        section.notes.append(ctx.t("no_holdout"))
    frame["group"] = frame["variant"].map(lambda v: ctx.t(v) if v in ("treatment", "holdout") else str(v))
    measured = frame.dropna(subset=["change"])
    if measured.empty:
        # Bars of nothing would be bare axes: say why there is no MRR change instead.
        section.notes.append(ctx.t("no_mrr_change", month=month))
    else:
        _mrr_change_chart(ctx, section, measured)
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


def _mrr_change_chart(ctx: ReportContext, section: Section, measured: pd.DataFrame) -> None:
    title = f"{ctx.t('mrr_change_chart')} ({ctx.reporting_month:%Y-%m})"
    section.charts.append(
        Chart(
            # MRR change since selection, not the mart's lift: the file keeps its first name, campaign_lift.png,
            # because the report tests (and anyone linking the PNG) read it by that name.
            "campaign_lift",
            title,
            charts.bars(
                measured.assign(category=measured["campaign"], series=measured["group"], value=measured["change"]),
                title=title,
                category_title=ctx.t("campaign"),
                value_title=ctx.t("mrr_change"),
                value_format=charts.PERCENT,
                series_title=ctx.t("variant"),
                label_angle=-30,  # campaign names are long: slanted, they do not run into each other
            ),
        )
    )


# What the section shows of marts.campaign_lift: the figures and their intervals are the mart's own.
LIFT_COLUMNS = (
    "campaign",
    "window_days",
    "treatment_customers",
    "holdout_customers",
    "treatment_customers_waiting",
    "holdout_customers_waiting",
    "treatment_csql_rate",
    "holdout_csql_rate",
    "csql_rate_lift",
    "csql_rate_lift_ci_low",
    "csql_rate_lift_ci_high",
    "treatment_expansion_mrr_per_customer",
    "holdout_expansion_mrr_per_customer",
    "expansion_mrr_per_customer_lift",
    "expansion_mrr_per_customer_lift_ci_low",
    "expansion_mrr_per_customer_lift_ci_high",
    "is_holdout_too_small",
)


def _campaign_lift(ctx: ReportContext, section: Section) -> None:
    """Per campaign (pooled: each customer once) and window: treatment against holdout, as marts.campaign_lift has it.

    The lift and its 95% interval are the mart's (dbt doc block campaign_lift); the report only lays them out and
    computes none. Without the mart (tracking not built yet) the section is what it was: nothing added, nothing
    reported missing, since the MRR change since selection above stands on its own.
    """
    mart = "campaign_lift"
    if not ctx.has(mart):
        return
    section.sources.append(mart)
    if not ctx.require(section, mart, *LIFT_COLUMNS):
        return
    frame = ctx.df(
        f"""SELECT {", ".join(LIFT_COLUMNS)} FROM marts.{mart}
            WHERE scope = 'campaign' AND breakdown = 'all' ORDER BY campaign, window_days"""
    )
    if frame.empty:
        section.notes.append(ctx.t("no_campaign_lift"))
        return
    section.tables.append(
        Table(
            ctx.t("lift_table"),
            [ctx.t(c) for c in ("campaign", "window", "group_sizes", "waiting", "csql_rate", "csql_rate_lift")]
            + [ctx.t(c) for c in ("expansion_per_customer", "expansion_lift")],
            [_lift_row(ctx, r) for _, r in frame.iterrows()],
            [False, False, True, True, True, True, True, True],
        )
    )


def _lift_row(ctx: ReportContext, r: pd.Series) -> list[str]:
    """One campaign and window: each group's figure (treatment / holdout), then the mart's lift [its interval]."""

    def pair(column: str, fmt: Callable[[Any], str]) -> str:
        return f"{fmt(r[f'treatment_{column}'])} / {fmt(r[f'holdout_{column}'])}"

    def lift(column: str, fmt: Callable[[Any], str]) -> str:
        if r["is_holdout_too_small"]:
            return f"{fmt(r[column])} {ctx.t('too_small')}"
        return f"{fmt(r[column])} [{fmt(r[f'{column}_ci_low'])}, {fmt(r[f'{column}_ci_high'])}]"

    def signed_money(value: Any) -> str:
        text = ctx.money(value)
        return text if text.startswith("-") or text == "–" else f"+{text}"

    return [
        str(r["campaign"]),
        ctx.t("window_days", days=int(r["window_days"])),
        pair("customers", ctx.number),
        pair("customers_waiting", ctx.number),
        pair("csql_rate", ctx.pct),
        lift("csql_rate_lift", ctx.points),
        pair("expansion_mrr_per_customer", ctx.money),
        lift("expansion_mrr_per_customer_lift", signed_money),
    ]
