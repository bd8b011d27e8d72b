"""The monthly MRR KPIs as an analyst would compute them in pandas, from the raw tables; writes a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

FX_CSV = Path(__file__).parents[2] / "dbt_project" / "seeds" / "fx_rates.csv"


def month_number(dates: pd.Series) -> pd.Series:
    return (dates.dt.year * 12 + dates.dt.month - 1).astype("float64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--past-due-churn-days", type=int, default=30)
    parser.add_argument("--business-utc-offset-hours", type=int, default=9)
    args = parser.parse_args()
    as_of = pd.Timestamp(args.as_of)

    con = duckdb.connect(str(args.warehouse), read_only=True)
    subs = con.sql("select * from raw.subscriptions").df()
    invoices = con.sql(
        "select subscription_id, issued_at, status from raw.invoices where status in ('paid', 'open')"
    ).df()
    con.close()
    # Invoice times are stored in UTC; their business date is the day in the business time zone.
    invoices["issued_on"] = (invoices["issued_at"] + pd.Timedelta(hours=args.business_utc_offset_hours)).dt.normalize()

    # MRR: a given mrr, else amount per billing period, rounded to the currency's unit.
    subs["currency"] = subs["currency"].fillna("JPY").str.upper()
    derived = (subs["amount"].astype(float) / subs["billing_period_months"]).where(subs["billing_period_months"] > 0)
    digits = np.where(subs["currency"] == "JPY", 0, 2)
    rounded = np.sign(derived) * np.floor(np.abs(derived) * 10.0**digits + 0.5) / 10.0**digits
    subs["mrr"] = subs["mrr"].astype(float).fillna(pd.Series(rounded, index=subs.index))

    # past_due: ends past_due_churn_days after the oldest open invoice after the last paid one.
    last_paid = invoices[invoices["status"] == "paid"].groupby("subscription_id")["issued_at"].max()
    open_ = invoices[(invoices["status"] == "open") & (invoices["issued_on"] <= as_of)]
    open_ = open_.join(last_paid.rename("last_paid_at"), on="subscription_id")
    open_ = open_[open_["last_paid_at"].isna() | (open_["issued_at"] > open_["last_paid_at"])]
    since = open_.groupby("subscription_id")["issued_on"].min()
    subs = subs.join(since.rename("past_due_since"), on="subscription_id")
    churn_on = subs["past_due_since"] + pd.Timedelta(days=args.past_due_churn_days)
    use = (subs["status"] == "past_due") & churn_on.notna() & (subs["end_date"].isna() | (churn_on < subs["end_date"]))
    subs["end"] = pd.to_datetime(subs["end_date"]).where(~use, churn_on)
    subs["start"] = pd.to_datetime(subs["start_date"])

    # Months counted: snapshot day (month end, or the as-of date) in [start, end).
    last_month = int(month_number(pd.Series([as_of])).iloc[0])
    subs = subs[subs["start"] <= as_of]
    first = month_number(subs["start"]).to_numpy().astype("int64")
    end = subs["end"]
    before_end = end - pd.Timedelta(days=1)
    # the last month whose month end is before the end; the as-of month needs the as-of date before it
    last_closed = np.where(before_end.dt.is_month_end, month_number(before_end), month_number(before_end) - 1)
    last_closed = np.where(end.isna(), last_month, np.nan_to_num(last_closed, nan=last_month))
    live_on_as_of = (end.isna() | (end > as_of)).to_numpy()
    last = np.where(live_on_as_of, last_month, np.minimum(last_closed, last_month - 1))
    counts = np.maximum(last.astype("int64") - first + 1, 0)
    rows = subs.loc[subs.index.repeat(counts)].copy()
    rows["m"] = np.repeat(first, counts) + rows.groupby(level=0).cumcount().to_numpy()
    is_last = rows["m"] == last_month
    rows["paused"] = (rows["status"] == "paused") & is_last
    rows["local"] = np.where((rows["status"] == "trialing") | rows["paused"], 0.0, rows["mrr"].fillna(0.0))

    # FX: the month's rate, else the latest earlier, else the earliest.
    fx = pd.read_csv(FX_CSV, parse_dates=["month"])
    fx = fx[fx["reporting_currency"] == "JPY"]
    fx["m"] = month_number(fx["month"]).astype("int64")
    months = np.arange(rows["m"].min(), last_month + 2)
    rate_table = []
    for currency in rows["currency"].unique():
        if currency == "JPY":
            rate_table.append(pd.DataFrame({"m": months, "currency": currency, "rate": 1.0}))
            continue
        r = fx[fx["currency"] == currency].sort_values("m")
        grid = pd.merge_asof(pd.DataFrame({"m": months}), r[["m", "rate"]], on="m").bfill()
        rate_table.append(grid.assign(currency=currency))
    rates = pd.concat(rate_table)

    def converted(frame: pd.DataFrame, month_col: str) -> pd.Series:
        joined = frame[[month_col, "currency", "local"]].merge(
            rates, left_on=[month_col, "currency"], right_on=["m", "currency"], how="left"
        )
        # exact: hundredths of the amount times millionths of the rate, in integers (float products of
        # e.g. 8.33 * 150.6 land on either side of a half), rounded half away from zero
        product = np.round(joined["local"].to_numpy() * 100).astype("int64") * np.round(
            joined["rate"].fillna(0).to_numpy() * 1_000_000
        ).astype("int64")
        half_away = np.sign(product) * ((np.abs(product) + 50_000_000) // 100_000_000)
        value = np.where(joined["currency"] == "JPY", joined["local"], half_away)
        return pd.Series(value, index=frame.index)

    rows["mrr_rep"] = converted(rows, "m")
    rows["next_m"] = rows["m"] + 1
    rows["mrr_next_rate"] = converted(rows, "next_m")

    current = rows.groupby(["customer_id", "m"]).agg(mrr=("mrr_rep", "sum"), paused=("paused", "any"))
    nxt = (
        rows[rows["m"] < last_month]
        .groupby(["customer_id", "next_m"])
        .agg(previous_mrr=("mrr_rep", "sum"), previous_at_rate=("mrr_next_rate", "sum"))
    )
    nxt.index.names = ["customer_id", "m"]
    cm = current.join(nxt, how="outer").fillna(
        {"mrr": 0.0, "paused": False, "previous_mrr": 0.0, "previous_at_rate": 0.0}
    )
    cm = cm.reset_index()
    first_paid = rows[rows["local"] > 0].groupby("customer_id")["m"].min().rename("first_paid")
    cm = cm.join(first_paid, on="customer_id", how="inner")
    cm = cm[cm["m"] >= cm["first_paid"]]
    cm["fx_impact"] = cm["previous_at_rate"] - cm["previous_mrr"]
    cm["is_customer"] = (cm["mrr"] > 0) | cm["paused"]
    cm["was_customer"] = cm["previous_mrr"] > 0
    cm = cm[cm["is_customer"] | cm["was_customer"]]
    cm["movement_mrr"] = cm["mrr"] - cm["previous_mrr"] - cm["fx_impact"]
    cm["movement"] = np.select(
        [
            cm["is_customer"] & (cm["m"] == cm["first_paid"]),
            cm["is_customer"] & ~cm["was_customer"],
            cm["was_customer"] & ~cm["is_customer"],
            cm["movement_mrr"] > 0,
            cm["movement_mrr"] < 0,
        ],
        ["new", "reactivation", "churn", "expansion", "contraction"],
        "none",
    )
    by = cm.groupby("m")
    kpis = pd.DataFrame({"starting_mrr": by["previous_mrr"].sum()})
    for movement, column, sign in (
        ("new", "new_mrr", 1), ("expansion", "expansion_mrr", 1), ("contraction", "contraction_mrr", -1),
        ("churn", "churned_mrr", -1), ("reactivation", "reactivation_mrr", 1),
    ):  # fmt: skip
        kpis[column] = sign * cm[cm["movement"] == movement].groupby("m")["movement_mrr"].sum()
    kpis["fx_impact_mrr"] = by["fx_impact"].sum()
    kpis["ending_mrr"] = by["mrr"].sum()
    kpis["starting_customers"] = by["was_customer"].sum()
    kpis["churned_customers"] = (cm["movement"] == "churn").groupby(cm["m"]).sum()
    kpis["ending_customers"] = by["is_customer"].sum()
    year_ago = cm[cm["mrr"] > 0][["customer_id", "m", "mrr"]].copy()
    year_ago["m"] += 12
    followed = year_ago.merge(cm[["customer_id", "m", "mrr"]], on=["customer_id", "m"], how="left", suffixes=("_y", ""))
    followed["mrr"] = followed["mrr"].fillna(0.0)
    followed["kept"] = np.minimum(followed["mrr"], followed["mrr_y"])
    t12 = followed.groupby("m")[["mrr_y", "mrr", "kept"]].sum()
    kpis = kpis.reindex(np.arange(rows["m"].min(), last_month + 1)).fillna(0)
    kpis["trailing_12m_nrr"] = t12["mrr"] / t12["mrr_y"]
    kpis["trailing_12m_grr"] = t12["kept"] / t12["mrr_y"]
    kpis.index = [f"{m // 12}-{m % 12 + 1:02d}-01" for m in kpis.index]
    kpis.index.name = "month"
    kpis.to_csv(args.out)


if __name__ == "__main__":
    main()
