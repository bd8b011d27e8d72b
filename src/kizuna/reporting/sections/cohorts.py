"""Cohort retention: heatmaps of logo and net MRR retention of the latest cohorts."""

from __future__ import annotations

from datetime import date

import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section

COHORTS = 18


def cohort_retention(ctx: ReportContext) -> Section:
    section = Section("cohorts", ctx.t("cohorts"), ["cohort_retention_monthly"])
    needed = ("cohort_month", "months_since_start", "logo_retention_rate")
    if not ctx.require(section, "cohort_retention_monthly", *needed):
        return section
    rates = [
        c for c in ("logo_retention_rate", "net_mrr_retention_rate") if c in ctx.columns("cohort_retention_monthly")
    ]
    # The first cohort shown, COHORTS - 1 months before the reporting month (in Python: the same on every engine).
    back = ctx.reporting_month.year * 12 + ctx.reporting_month.month - 1 - (COHORTS - 1)
    first_cohort = date(back // 12, back % 12 + 1, 1)
    frame = ctx.df(
        f"""SELECT cohort_month, months_since_start, {", ".join(rates)}
            FROM marts.cohort_retention_monthly
            WHERE cohort_month >= ? AND months_since_start <= ? AND month <= ?""",
        [first_cohort, COHORTS - 1, ctx.reporting_month],
    )
    frame["y"] = pd.to_datetime(frame["cohort_month"]).dt.strftime("%Y-%m")
    frame["x"] = frame["months_since_start"].astype(int)
    for rate in rates:
        data = frame[["x", "y", rate]].rename(columns={rate: "value"}).dropna()
        data["value"] = data["value"].astype(float)
        title = f"{ctx.t('cohorts')}: {ctx.t(rate)}"
        section.charts.append(
            Chart(
                f"cohort_{rate}",
                title,
                charts.heatmap(
                    data,
                    title=title,
                    x_title=ctx.t("months_since_start"),
                    y_title=ctx.t("cohort_month"),
                    value_title=ctx.t(rate),
                    value_format=".0%",
                ),
            )
        )
    return section
