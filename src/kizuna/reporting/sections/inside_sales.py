"""Inside-sales KPIs: activity, CSQLs and won expansion MRR over the last 12 months (inside_sales_kpis_monthly)."""

from __future__ import annotations

import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section, Table, long_series

INSIDE_SALES_LAYERS = (
    ("activity", ["accounts_approached", "effective_conversations"], ",.0f", False),
    ("intermediate", ["csqls_created", "csqls_to_opportunity"], ",.0f", False),
    ("final", ["won_expansion_mrr"], ",.0f", True),
)


def inside_sales(ctx: ReportContext) -> Section:
    mart = "inside_sales_kpis_monthly"
    section = Section("inside_sales", ctx.t("inside_sales"), [mart])
    if not ctx.require(section, mart):
        return section
    available = ctx.columns(mart)
    wanted = [c for _, cols, _, _ in INSIDE_SALES_LAYERS for c in cols] + [
        "csql_to_opportunity_rate",
        "share_of_expansion_mrr",
        "nrr_contribution",
    ]
    for absent in [c for c in wanted if c not in available]:
        section.missing.append(ctx.t("missing_column", mart=mart, column=absent))
    present = [c for c in wanted if c in available]
    if not present:
        return section
    frame = ctx.df(
        f"""SELECT month, {", ".join(f"{c}::DOUBLE PRECISION AS {c}" for c in present)} FROM marts.{mart}
            WHERE month <= ? ORDER BY month DESC LIMIT 12""",
        [ctx.reporting_month],
    ).sort_values("month")
    divisor, unit, money_format = ctx.money_unit
    for layer, columns, fmt, money in INSIDE_SALES_LAYERS:
        cols = [c for c in columns if c in present]
        if not cols:
            continue
        title = ctx.t(layer)
        section.charts.append(
            Chart(
                f"inside_sales_{layer}",
                title,
                charts.lines(
                    long_series(frame, ctx, cols, divisor if money else 1.0),
                    title=title,
                    value_title=unit if money else ctx.t("count"),
                    value_format=money_format if money else fmt,
                    x_title=ctx.t("month"),
                    series_title=ctx.t("series"),
                ),
            )
        )
    last = frame[frame["month"] == pd.Timestamp(ctx.reporting_month)]
    if not last.empty:
        row = last.iloc[0]

        def fmt_value(column: str) -> str:
            if column.endswith(("_rate", "share_of_expansion_mrr", "nrr_contribution")):
                return ctx.pct(row[column], 2 if column == "nrr_contribution" else 1)
            return ctx.money(row[column]) if column.endswith("_mrr") else ctx.number(row[column])

        section.tables.append(
            Table(
                f"{ctx.t('inside_sales')} {ctx.reporting_month.strftime('%Y-%m')}",
                [ctx.t("series"), ctx.reporting_month.strftime("%Y-%m")],
                [[ctx.t(c), fmt_value(c)] for c in present],
                [False, True],
            )
        )
    return section
