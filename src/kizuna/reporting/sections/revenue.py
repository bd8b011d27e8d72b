"""Revenue sections from mrr_kpis_monthly: the MRR bridge, the MRR and ARR trend, NRR/GRR and churn rates."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section, Table, long_series

TREND_MONTHS = 24


def mrr_bridge(ctx: ReportContext) -> Section:
    section = Section("bridge", ctx.t("bridge"), ["mrr_kpis_monthly"])
    if not ctx.require(section, "mrr_kpis_monthly", "starting_mrr", "ending_mrr"):
        return section
    steps = ["new_mrr", "expansion_mrr", "reactivation_mrr", "contraction_mrr", "churned_mrr", "fx_impact_mrr"]
    present = [s for s in steps if s in ctx.columns("mrr_kpis_monthly")]
    for absent in sorted(set(steps) - set(present)):
        section.missing.append(ctx.t("missing_column", mart="mrr_kpis_monthly", column=absent))
    cols = ", ".join(f"{c}::DOUBLE PRECISION AS {c}" for c in ["starting_mrr", *present, "ending_mrr"])
    month = ctx.reporting_month
    frame = ctx.df(f"SELECT {cols} FROM marts.mrr_kpis_monthly WHERE month = ?", [month])
    if frame.empty:
        section.notes.append(ctx.t("no_rows", mart="mrr_kpis_monthly", month=month.strftime("%Y-%m")))
        return section
    row = frame.iloc[0]
    divisor, unit, fmt = ctx.money_unit
    signs = {"contraction_mrr": -1.0, "churned_mrr": -1.0}  # stored as positive amounts lost
    starting, ending = float(row["starting_mrr"]), float(row["ending_mrr"])
    bridge = [(ctx.t("starting_mrr"), starting / divisor, "total", ctx.money(starting))]
    total = starting
    for step in present:
        amount = signs.get(step, 1.0) * float(row[step] or 0.0)
        total += amount
        bridge.append((ctx.t(step), amount / divisor, "change", ctx.money(amount)))
    bridge.append((ctx.t("ending_mrr"), ending / divisor, "total", ctx.money(ending)))
    title = f"{ctx.t('bridge')} {month.strftime('%Y-%m')}"
    section.charts.append(
        Chart("mrr_bridge", title, charts.waterfall(bridge, title=title, value_title=unit, value_format=fmt))
    )
    section.tables.append(
        Table(
            title,
            [ctx.t("series"), ctx.t("mrr")],
            [[ctx.t("starting_mrr"), ctx.money(row["starting_mrr"])]]
            + [[ctx.t(s), ctx.money(signs.get(s, 1.0) * float(row[s] or 0.0))] for s in present]
            + [[ctx.t("ending_mrr"), ctx.money(row["ending_mrr"])]],
            [False, True],
        )
    )
    diff = float(row["ending_mrr"]) - total
    if abs(diff) >= 1:
        section.notes.append(ctx.t("bridge_mismatch", diff=ctx.money(diff)))
    return section


def _kpi_trend(ctx: ReportContext, columns: Sequence[str]) -> pd.DataFrame:
    present = [c for c in columns if c in ctx.columns("mrr_kpis_monthly")]
    cols = ", ".join(f"{c}::DOUBLE PRECISION AS {c}" for c in present)
    return ctx.df(
        f"SELECT month, {cols} FROM marts.mrr_kpis_monthly WHERE month <= ? ORDER BY month DESC LIMIT ?",
        [ctx.reporting_month, TREND_MONTHS],
    ).sort_values("month")


def mrr_trend(ctx: ReportContext) -> Section:
    section = Section("trend", ctx.t("trend"), ["mrr_kpis_monthly"])
    if not ctx.require(section, "mrr_kpis_monthly", "ending_mrr"):
        return section
    frame = _kpi_trend(ctx, ["ending_mrr", "ending_customers", "arpa"])
    frame["mrr"] = frame["ending_mrr"]
    frame["arr"] = frame["ending_mrr"] * 12
    divisor, unit, money_format = ctx.money_unit
    for key in ("mrr", "arr"):
        section.charts.append(
            Chart(
                f"{key}_trend",
                ctx.t(key),
                charts.lines(
                    long_series(frame, ctx, [key], divisor),
                    title=ctx.t(key),
                    value_title=unit,
                    value_format=money_format,
                    x_title=ctx.t("month"),
                    series_title=ctx.t("series"),
                ),
            )
        )
    recent = frame.tail(6).iloc[::-1]
    headers = [ctx.t("month"), ctx.t("mrr"), ctx.t("arr")]
    extra = [c for c in ("ending_customers", "arpa") if c in frame]
    headers += [ctx.t("customers") if c == "ending_customers" else ctx.t("arpa") for c in extra]
    rows = [
        [ctx.month_label(r.month), ctx.money(r.mrr), ctx.money(r.arr)]
        + [ctx.number(r.ending_customers) if c == "ending_customers" else ctx.money(r.arpa) for c in extra]
        for r in recent.itertuples()
    ]
    section.tables.append(Table(ctx.t("trend"), headers, rows, [False] + [True] * (len(headers) - 1)))
    return section


def _rate_lines(ctx: ReportContext, section: Section, name: str, title: str, columns: Sequence[str]) -> None:
    present = [c for c in columns if c in ctx.columns("mrr_kpis_monthly")]
    for absent in [c for c in columns if c not in present]:
        section.missing.append(ctx.t("missing_column", mart="mrr_kpis_monthly", column=absent))
    if not present:
        return
    frame = _kpi_trend(ctx, present)
    section.charts.append(
        Chart(
            name,
            title,
            charts.lines(
                long_series(frame, ctx, present),
                title=title,
                value_title=ctx.t("rate"),
                value_format=charts.PERCENT,
                x_title=ctx.t("month"),
                series_title=ctx.t("series"),
            ),
        )
    )
    last = frame[frame["month"] == pd.Timestamp(ctx.reporting_month)]
    if not last.empty:
        row = last.iloc[0]
        section.tables.append(
            Table(
                f"{title} {ctx.reporting_month.strftime('%Y-%m')}",
                [ctx.t(c) for c in present],
                [[ctx.pct(row[c]) for c in present]],
                [True] * len(present),
            )
        )


def retention(ctx: ReportContext) -> Section:
    section = Section("retention", ctx.t("retention"), ["mrr_kpis_monthly"])
    if not ctx.require(section, "mrr_kpis_monthly"):
        return section
    _rate_lines(ctx, section, "nrr_grr_monthly", f"{ctx.t('retention')}: {ctx.t('monthly')}", ["nrr", "grr"])
    _rate_lines(
        ctx,
        section,
        "nrr_grr_trailing",
        f"{ctx.t('retention')}: {ctx.t('trailing')}",
        ["trailing_12m_nrr", "trailing_12m_grr"],
    )
    return section


def churn_rates(ctx: ReportContext) -> Section:
    section = Section("churn", ctx.t("churn"), ["mrr_kpis_monthly"])
    if ctx.require(section, "mrr_kpis_monthly"):
        columns = ["customer_churn_rate", "gross_revenue_churn_rate", "net_revenue_churn_rate"]
        _rate_lines(ctx, section, "churn_rates", ctx.t("churn"), columns)
    return section
