"""Runs reference.sql (the monthly KPIs in one DuckDB statement) on a warehouse; writes them to a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

HERE = Path(__file__).parent
FX_CSV = HERE.parents[1] / "dbt_project" / "seeds" / "fx_rates.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--past-due-churn-days", type=int, default=30)
    parser.add_argument("--business-utc-offset-hours", type=int, default=9)
    parser.add_argument("--memory-limit", default="2.5GB")
    args = parser.parse_args()
    sql = (
        (HERE / "reference.sql")
        .read_text()
        .format(
            as_of=args.as_of,
            past_due_churn_days=args.past_due_churn_days,
            business_utc_offset_hours=args.business_utc_offset_hours,
            fx_csv=FX_CSV,
        )
    )
    con = duckdb.connect(
        str(args.warehouse), config={"memory_limit": args.memory_limit, "preserve_insertion_order": False}
    )
    try:
        con.execute(sql)
        con.execute(f"COPY bench_kpis TO '{args.out}' (HEADER)")
    finally:
        con.close()


if __name__ == "__main__":
    main()
