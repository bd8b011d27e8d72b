"""Day 2's dbt build, incremental against a full refresh, side by side on the same warehouse (docs/incremental.md).

    python bench/incremental/bench_incremental.py [--customers 10000 100000] [--rounds 2] [--workdir DIR] [--reuse]
    make bench-incremental BENCH_INCREMENTAL_SIZES="10000 100000 1000000"   # the same, from the Makefile

At 1M customers: day 1's build alone takes several minutes and ≈ 3 GB (DuckDB's memory_limit is 2GB), the day-1
export ≈ 3 GB on disk and each warehouse copy ≈ 2 GB under --workdir: run it on a quiet machine.

Day 1 (the demo, seed 42, as of 2026-11-23) is built whole; its next day (`kizuna demo-data --next-day-of`,
default change rate) is loaded onto it. Each round copies that warehouse twice and builds day 2 on the copies, in
alternating order: incremental from the month kizuna.transform.rebuild_months finds, and `--full-refresh`. Beside
them, a quiet day: day 1's export again, a day later, incremental from the as-of month (what a day whose changes reach
no further back costs; the realistic next day's failed and settled payments and merge reach years back). The whole project is built each time
(models and data tests, as the daily run does); the two incremental models' own seconds come from run_results.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from kizuna.core.settings import Settings  # noqa: E402
from kizuna.demo.generate import generate_demo_data  # noqa: E402
from kizuna.demo.next_day import next_day_demo_data  # noqa: E402
from kizuna.transform import dbt_runner, rebuild_months  # noqa: E402
from tests.dbt.helpers import replace_source_dir  # noqa: E402

AS_OF = date(2026, 11, 23)
MODELS = ("int_mrr_movements_classified", "mrr_kpis_monthly")


def prepare(workdir: Path, customers: int, reuse: bool) -> tuple[Path, Path, date, date]:
    """workdir/day2.duckdb: day 1 built, day 2's raw tables loaded; the next day and the first month to rebuild."""
    base = workdir / "day2.duckdb"
    if not (reuse and base.exists()):
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        generate_demo_data(workdir / "day1", customers, 42, AS_OF)
        day, _ = next_day_demo_data(workdir / "day1", workdir / "day2", 42)
        (workdir / "next_day.txt").write_text(day.isoformat(), encoding="utf-8")
        replace_source_dir(base, workdir / "day1")
        started = time.perf_counter()
        dbt_runner.build(Settings(warehouse=base, var_dir=workdir / "var"), AS_OF)
        print(f"day 1 built in {time.perf_counter() - started:.1f} s", flush=True)
        con = duckdb.connect(str(base))
        try:
            con.execute("CREATE SCHEMA day1_raw")
            for table in ("subscriptions", "invoices", "fx_rates"):
                con.execute(f"CREATE TABLE day1_raw.{table} AS SELECT * FROM raw.{table}")
        finally:
            con.close()
        replace_source_dir(base, workdir / "day2")
    quiet = workdir / "quiet.duckdb"
    if not (reuse and quiet.exists()):  # day 1 as built (base still holds its models), its raw tables again
        shutil.copy(base, quiet)
        replace_source_dir(quiet, workdir / "day1")
    next_day = date.fromisoformat((workdir / "next_day.txt").read_text(encoding="utf-8"))
    con = duckdb.connect(str(base))
    try:
        started = time.perf_counter()
        month = rebuild_months.earliest_month_changed(con, "day1_raw", "raw", next_day)
        print(f"first month to rebuild: {month:%Y-%m} (found in {time.perf_counter() - started:.2f} s)", flush=True)
    finally:
        con.close()
    return base, quiet, next_day, month


def build(base: Path, workdir: Path, name: str, next_day: date, month: date | None) -> tuple[float, dict[str, float]]:
    warehouse = workdir / f"{name}.duckdb"
    shutil.copy(base, warehouse)
    settings = Settings(warehouse=warehouse, var_dir=workdir / "var", full_refresh=month is None)
    started = time.perf_counter()
    result = dbt_runner.build(settings, next_day, rebuild_from_month=month)
    seconds = time.perf_counter() - started
    models = {n.name.split(".")[-1]: n.seconds for n in result.nodes if n.name.split(".")[-1] in MODELS}
    warehouse.unlink()
    return seconds, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000], help="one size or several")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-incremental"))
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    table = [measure(args.workdir / str(customers), customers, args.rounds, args.reuse) for customers in args.customers]
    print("\n" + "\n".join(line for lines in table for line in lines))


def measure(workdir: Path, customers: int, rounds: int, reuse: bool) -> list[str]:
    """The three ways at one size, alternating each round; the table's lines (medians)."""
    base, quiet, next_day, month = prepare(workdir, customers, reuse)
    ways: dict[str, tuple[Path, date | None]] = {
        f"day 2, incremental from {month:%Y-%m} (the month found)": (base, month),
        "day 2, full refresh": (base, None),
        f"a quiet day (no change), incremental from {next_day:%Y-%m}": (quiet, next_day.replace(day=1)),
    }
    times: dict[str, list[tuple[float, dict[str, float]]]] = {way: [] for way in ways}
    for round_ in range(rounds):
        order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
        for way in order:
            times[way].append(build(ways[way][0], workdir, "copy", next_day, ways[way][1]))
            load = os.getloadavg()[0]
            print(f"round {round_ + 1}: {way}: {times[way][-1][0]:.1f} s {times[way][-1][1]} (load {load:.1f})")
    lines = [f"{customers:,} customers, day 2 = {next_day}, {rounds} rounds (median):"]
    for way, runs in times.items():
        whole = statistics.median(r[0] for r in runs)
        parts = ", ".join(f"{m} {statistics.median(r[1].get(m, 0.0) for r in runs):.1f} s" for m in MODELS)
        lines.append(f"| {way} | {whole:.1f} s | {parts} |")
    print("\n".join(lines), flush=True)
    return lines


if __name__ == "__main__":
    main()
