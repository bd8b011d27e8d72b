"""Cohort retention: heatmaps of logo and net MRR retention of the latest cohorts."""

from __future__ import annotations

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
    frame = ctx.df(
        f"""SELECT cohort_month, months_since_start, {", ".join(rates)}
            FROM marts.cohort_retention_monthly
            WHERE cohort_month >= ?::DATE - to_months(?) AND months_since_start <= ? AND month <= ?""",
        [ctx.reporting_month, COHORTS - 1, COHORTS - 1, ctx.reporting_month],
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
