"""Benchmark: kizuna's fields on 100,000 HubSpot companies through the batch endpoints, the stand-in answering
every request after 100 ms.

    python -m bench.crm.bench_crm_hubspot [--accounts 100000] [--latency 0.1] [--workdir /tmp/kizuna-bench-crm]

The HubSpot stand-in of the tests runs in its own process on 127.0.0.1 with the companies 1..N. A hand-made
warehouse holds N active customers whose customer_id is the company id (as when customers come from the
HubSpot source). Timed: the first sync (company ids confirmed by batch read, 100 per call; every company's ten
kizuna properties by batch update, 100 per call; the ledger), and a second sync of the same day (nothing to
send). Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date
from pathlib import Path

import duckdb
from pydantic import SecretStr

from kizuna.core.runtime import quiet_third_parties

quiet_third_parties()

from bench.harness.standin import start_standin  # noqa: E402
from kizuna import pipeline  # noqa: E402
from kizuna.core.settings import Settings  # noqa: E402

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"  # the stand-in's token (tests/standins/hubspot_api.py)
AS_OF = date(2026, 12, 4)


def build_warehouse(path: Path, accounts: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts")
    con.execute(
        f"""CREATE TABLE marts.customers AS
            SELECT CAST(i AS VARCHAR) AS customer_id, '株式会社ベンチ' || i AS name, NULL::VARCHAR AS owner_email,
                   'active' AS status, CASE WHEN i % 10 = 0 THEN 'A' WHEN i % 3 = 0 THEN 'B' ELSE 'C' END AS rank,
                   'C' AS revenue_rank, (i % 100)::DOUBLE AS growth_potential_score,
                   (i * 7 % 100)::DOUBLE AS relationship_score, (i % 97)::DOUBLE AS health_score
            FROM range(1, {accounts} + 1) t(i)"""
    )
    con.execute(
        f"""CREATE TABLE marts.customer_signals AS SELECT CAST(i AS VARCHAR) AS customer_id, 'usage_drop' AS signal
            FROM range(1, {accounts} + 1, 4) t(i)"""
    )
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-crm"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    build_warehouse(args.workdir / "warehouse.duckdb", args.accounts)
    process, url = start_standin("hubspot_api", "--companies", args.accounts, "--latency", args.latency)
    try:
        settings = Settings(
            warehouse=args.workdir / "warehouse.duckdb",
            var_dir=args.workdir / "var",
            crm_target="hubspot",
            hubspot_token=SecretStr(TOKEN),
            hubspot_base_url=url,
        )
        for label in ("first sync", "second sync"):
            started = time.perf_counter()
            summary = pipeline.crm_sync(settings, AS_OF)
            seconds = time.perf_counter() - started
            print(
                f"{label}: {seconds:.1f} s, {summary.accounts_updated:,} accounts updated "
                f"({summary.accounts_unchanged:,} unchanged), {summary.requests:,} requests, "
                f"{len(summary.errors)} errors",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
