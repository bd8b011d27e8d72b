"""Benchmark: selecting every shipped campaign over a built warehouse (default: the 1M gate benchmark's).

    python bench/campaigns/bench_select.py [--warehouse /tmp/kizuna-bench-gate/warehouse.duckdb]

Each selection runs exactly as a send would, inside a transaction that is rolled back (preview), so the
warehouse is left as it was. Run `kizuna build --warehouse ...` first so the marts exist.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from kizuna.campaigns.preview import preview_campaign
from kizuna.campaigns.spec import load_campaigns
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect

AS_OF = dt.date(2026, 11, 23)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", type=Path, default=Path("/tmp/kizuna-bench-gate/warehouse.duckdb"))
    args = parser.parse_args()
    settings = Settings(warehouse=args.warehouse)
    with connect(settings.warehouse) as con:
        customers, contacts = con.execute(
            "SELECT (SELECT count(*) FROM marts.customers), (SELECT count(*) FROM marts.contacts)"
        ).fetchone() or (0, 0)
        print(f"marts: {customers:,} customers, {contacts:,} contacts")
        total = 0.0
        for campaign in load_campaigns(settings.campaigns_dir):
            if campaign.kind != "email":
                continue
            t = time.perf_counter()
            result = preview_campaign(con, settings, campaign, AS_OF)
            spent = time.perf_counter() - t
            total += spent
            excluded = sum(result.excluded.values())
            print(
                f"{campaign.name}: {spent:.1f} s  treatment={result.treatment:,} holdout={result.holdout:,} "
                f"excluded={excluded:,}"
            )
        print(f"all email campaigns: {total:.1f} s")


if __name__ == "__main__":
    main()
