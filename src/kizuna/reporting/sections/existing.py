"""Existing-customer revenue by company size and tenure band, and churn reasons (existing_customer_revenue_monthly)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section, Table


def band_order(labels: Sequence[str], last: str = "unknown") -> list[str]:
    """Band labels such as '1-49', '50-299', '1000+' by their lower bound (as text, '1000+' would come second);
    `last` (no value known) and anything without a leading number after them."""

    def key(label: str) -> tuple[int, float, str]:
        match = re.match(r"\d+", label)
        if label == last:
            return (2, 0.0, label)
        return (0, float(match.group()), label) if match else (1, 0.0, label)

    return sorted(dict.fromkeys(labels), key=key)


def existing_revenue(ctx: ReportContext) -> Section:
    mart = "existing_customer_revenue_monthly"
    section = Section("existing", ctx.t("existing"), [mart])
    if not ctx.require(section, mart, "breakdown", "band", "existing_mrr"):
        return section
    month = ctx.reporting_month
    optional = [c for c in ("starting_customers", "churned_customers", "customer_churn_rate", "nrr", "grr")]
    optional = [c for c in optional if c in ctx.columns(mart)]
    extra = "".join(f", {c}::DOUBLE PRECISION AS {c}" for c in optional)
    frame = ctx.df(
        f"""SELECT breakdown, band, existing_mrr::DOUBLE PRECISION AS existing_mrr{extra}
            FROM marts.{mart} WHERE month = ? AND breakdown IN ('company_size', 'tenure') ORDER BY breakdown, band""",
        [month],
    )
    if frame.empty:
        section.notes.append(ctx.t("no_rows", mart=mart, month=month.strftime("%Y-%m")))
        return section
    divisor, unit, money_format = ctx.money_unit
    for breakdown in ("company_size", "tenure"):
        part = frame[frame["breakdown"] == breakdown]
        if part.empty:
            continue
        # Bands in numeric order (1-49, 50-299, 300-999, 1000+, unknown last), whatever the dbt vars' bounds.
        part = part.assign(band=part["band"].map(ctx.band_label))
        bands = band_order([str(b) for b in part["band"]], last=ctx.t("band_unknown"))
        part = part.set_index("band", drop=False).loc[bands]
        title = f"{ctx.t('existing_mrr')}: {ctx.t(breakdown)} {month.strftime('%Y-%m')}"
        section.charts.append(
            Chart(
                f"existing_mrr_{breakdown}",
                title,
                charts.bars(
                    part.assign(category=part["band"], value=part["existing_mrr"] / divisor),
                    title=title,
                    category_title=ctx.t(breakdown),
                    value_title=unit,
                    value_format=money_format,
                    sort=bands,
                ),
            )
        )
        formats: dict[str, Callable[[Any], str]] = {
            "starting_customers": ctx.number,
            "churned_customers": ctx.number,
            "customer_churn_rate": ctx.pct,
            "nrr": ctx.pct,
            "grr": ctx.pct,
        }
        section.tables.append(
            Table(
                title,
                [ctx.t(breakdown), ctx.t("existing_mrr")] + [ctx.t(c) for c in optional],
                [
                    [str(r["band"]), ctx.money(r["existing_mrr"])] + [formats[c](r[c]) for c in optional]
                    for _, r in part.iterrows()
                ],
                [False] + [True] * (1 + len(optional)),
            )
        )
    return section


def churn_reasons(ctx: ReportContext) -> Section:
    mart = "existing_customer_revenue_monthly"
    section = Section("reasons", ctx.t("reasons"), [mart])
    if not ctx.require(section, mart, "breakdown", "band", "churned_customers"):
        return section
    first = date(ctx.reporting_month.year - 1, ctx.reporting_month.month, 1)
    churned_mrr = ", sum(churned_mrr)::DOUBLE PRECISION AS churned_mrr" if "churned_mrr" in ctx.columns(mart) else ""
    frame = ctx.df(
        f"""SELECT band AS reason, sum(churned_customers)::DOUBLE PRECISION AS churned_customers{churned_mrr}
            FROM marts.{mart} WHERE breakdown = 'cancel_reason' AND month > ? AND month <= ?
            GROUP BY band HAVING sum(churned_customers) > 0 ORDER BY churned_customers DESC, reason""",
        [first, ctx.reporting_month],
    )
    if frame.empty:
        section.notes.append(ctx.t("no_rows", mart=mart, month=ctx.reporting_month.strftime("%Y-%m")))
        return section
    # Codes in people's words; a code and a CRM text may read the same, so add them up after translating.
    frame = (
        frame.assign(reason=frame["reason"].map(ctx.reason))
        .groupby("reason", as_index=False, sort=False)
        .sum()
        .sort_values("churned_customers", ascending=False, kind="stable")
    )
    section.charts.append(
        Chart(
            "churn_reasons",
            ctx.t("reasons"),
            charts.bars(
                frame.assign(category=frame["reason"], value=frame["churned_customers"]),
                title=ctx.t("reasons"),
                category_title=ctx.t("reason"),
                value_title=ctx.t("churned_customers"),
                value_format=",.0f",
                label_angle=-30,
            ),
        )
    )
    headers = [ctx.t("reason"), ctx.t("churned_customers")] + ([ctx.t("churned_mrr")] if churned_mrr else [])
    section.tables.append(
        Table(
            ctx.t("reasons"),
            headers,
            [
                [str(r["reason"]), ctx.number(r["churned_customers"])]
                + ([ctx.money(r["churned_mrr"])] if churned_mrr else [])
                for _, r in frame.iterrows()
            ],
            [False] + [True] * (len(headers) - 1),
        )
    )
    return section
