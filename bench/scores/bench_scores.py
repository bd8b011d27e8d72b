"""Benchmark: scores at 1M customers; feature build, training and scoring, each with wall time and peak memory.

    python bench/scores/bench_scores.py [--customers 1000000] [--workdir /tmp/kizuna-bench-scores] [--reuse]
                                        [--history-months 24] [--steps upstream,features,train,score,deals]

1. The demo (`kizuna demo-data`, seed 42, as of 2026-11-23) is generated, staged and published without the
   gate (bench/gate measures that). --reuse keeps the files, and the published warehouse when there is one.
2. Each step runs in its own process, so its peak RSS (os.wait4) is its own; DuckDB's memory is in it:
   - upstream: the seed and models int_customer_features_monthly reads (the revenue team's), no tests
   - features: `dbt build` of the scoring models and their data tests, with scoring_history_months snapshots
   - train: load the labelled snapshots (capped, kizuna.scoring.features.MAX_TRAINING_ROWS) and train churn
     and expansion as the daily step does: evaluation on the later months, then a refit on all
   - score: the as-of snapshot's customers: both probabilities, explanations in two languages, the mart
   - deals: the deal win model and forecasts of open deals
The load average is printed with every step: other benchmarks share this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kizuna.core.runtime import quiet_third_parties

quiet_third_parties()

AS_OF = dt.date(2026, 11, 23)
SEED = 42
STEPS = ("upstream", "features", "train", "score", "deals")
SCORING = "path:models/intermediate/scoring"


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def settings_for(work: Path):  # type: ignore[no-untyped-def]
    from kizuna.core.settings import Settings

    return Settings(source_dir=work / "src", warehouse=work / "warehouse.duckdb", var_dir=work / "var")


def prepare(work: Path, customers: int, reuse: bool) -> None:
    """Demo files, staged and published into the warehouse (skipped with --reuse when already there)."""
    from kizuna.core.warehouse import connect, publish_incoming, staged_load_id, table_exists
    from kizuna.demo.generate import generate_demo_data
    from kizuna.sources.ingest import stage_sources

    settings = settings_for(work)
    if reuse and settings.warehouse.exists():
        with connect(settings.warehouse, read_only=True) as con:
            if table_exists(con, "raw", "customers"):
                row = con.execute("SELECT count(*) FROM raw.customers").fetchone()
                print(f"reusing {settings.warehouse} ({row[0] if row else 0:,} customers)")
                return
    if not (reuse and (settings.source_dir / "customers.csv").exists()):
        shutil.rmtree(work, ignore_errors=True)
        started = time.perf_counter()
        generate_demo_data(settings.source_dir, customers, SEED, AS_OF)
        print(f"demo data: {time.perf_counter() - started:.0f} s")
    settings.warehouse.unlink(missing_ok=True)
    started = time.perf_counter()
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        load_id = staged_load_id(con)
        assert load_id is not None
        publish_incoming(con, load_id)
    print(f"ingest and publish: {time.perf_counter() - started:.0f} s (load {load()})")


def dbt(work: Path, command: str, select: list[str], history_months: int) -> None:
    from kizuna.transform.dbt_runner import (
        _release_duckdb,
        dbt_args,
        dbt_env,
        plain_invoker,
        read_run_results,
        run_results_path,
    )

    settings = settings_for(work)
    variables = {"as_of": AS_OF.isoformat(), "scoring_history_months": history_months}
    args = dbt_args(settings, command, ["--vars", json.dumps(variables), "--quiet", *select])
    os.environ.update(dbt_env(settings, AS_OF))
    try:
        error = plain_invoker()(args)
    finally:
        _release_duckdb()  # dbt-duckdb keeps its connection open; the checks below open the file again
    nodes = read_run_results(run_results_path(settings))
    for node in nodes:
        if node.resource_type == "model":
            print(f"  {node.name.split('.')[-1]}: {node.seconds:.1f} s")
    failed = [n for n in nodes if n.status in ("error", "fail")]
    if error or failed:
        raise SystemExit(f"dbt {command} failed: {error or ''} {[(n.name, n.message) for n in failed]}")


def step_upstream(work: Path, history_months: int) -> None:
    select = ["--select", "+int_customer_features_monthly", "--exclude", SCORING]
    dbt(work, "build", [*select, "--exclude-resource-type", "test", "unit_test"], history_months)


def step_features(work: Path, history_months: int) -> None:
    from kizuna.core.warehouse import connect
    from kizuna.scoring.features import FEATURES_TABLE

    dbt(work, "build", ["--select", SCORING], history_months)
    with connect(settings_for(work).warehouse, read_only=True) as con:
        row = con.execute(
            f"SELECT count(*), count(DISTINCT snapshot_on), count(*) FILTER (WHERE has_outcome) FROM {FEATURES_TABLE}"
        ).fetchone()
    assert row is not None
    print(f"  {row[0]:,} customer snapshots in {row[1]} snapshots, {row[2]:,} labelled")


def step_train(work: Path) -> None:
    from threadpoolctl import threadpool_limits

    from kizuna.core.warehouse import connect
    from kizuna.scoring.features import load_training_rows
    from kizuna.scoring.training import train_scores

    settings = settings_for(work)
    with threadpool_limits(limits=settings.scores_threads):
        started = time.perf_counter()
        with connect(settings.warehouse, read_only=True) as con:
            labelled, total = load_training_rows(con, settings.scores_seed)
        print(f"  loaded {len(labelled):,} of {total:,} labelled rows in {time.perf_counter() - started:.1f} s")
        scores = train_scores(labelled, settings.scores_model, settings.scores_seed, settings.scores_validation_months)
    for name, trained in scores.items():
        e = trained.evaluation
        print(
            f"  {name}: validation ROC AUC {e.roc_auc:.3f}, Brier {e.brier:.4f} (base rate {e.brier_of_base_rate:.4f}),"
            f" {e.train_rows:,} train / {e.validation_rows:,} validation rows"
        )
    (work / "scores.pickle").write_bytes(pickle.dumps(scores))


def step_score(work: Path) -> None:
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from kizuna.core.warehouse import connect
    from kizuna.scoring.deals import FORECAST_COLUMNS
    from kizuna.scoring.features import load_scoring_rows
    from kizuna.scoring.run import score_customers, write_marts

    settings = settings_for(work)
    scores = pickle.loads((work / "scores.pickle").read_bytes())  # written by step_train above
    with threadpool_limits(limits=settings.scores_threads), connect(settings.warehouse) as con:
        started = time.perf_counter()
        rows = load_scoring_rows(con)
        loaded = time.perf_counter()
        customers = score_customers(rows, scores)
        scored = time.perf_counter()
        customers["model_version"], customers["scored_at"] = "bench", dt.datetime(2026, 11, 23, 6)
        write_marts(con, customers, pd.DataFrame(columns=[*FORECAST_COLUMNS, "model_version", "as_of", "scored_at"]))
    explained = (customers["churn_factors_en"] != "").sum()
    print(
        f"  {len(customers):,} customers: load {loaded - started:.1f} s, probabilities and factors "
        f"{scored - loaded:.1f} s, write {time.perf_counter() - scored:.1f} s; {explained:,} with churn factors"
    )


def step_deals(work: Path) -> None:
    from threadpoolctl import threadpool_limits

    from kizuna.core.warehouse import connect
    from kizuna.scoring.deals import closed_deals, forecast_deals, train_deal_model

    settings = settings_for(work)
    with threadpool_limits(limits=settings.scores_threads), connect(settings.warehouse, read_only=True) as con:
        closed = closed_deals(con, AS_OF)
        model, evaluation, _ = train_deal_model(closed, settings.scores_model, settings.scores_seed)
        del closed
        deals = forecast_deals(con, AS_OF, model)
    auc = f", validation ROC AUC {evaluation.roc_auc:.3f} on {evaluation.validation_deals:,}" if evaluation else ""
    print(f"  {len(deals):,} open deals forecast{auc}")


def run_child(step: str, args: argparse.Namespace) -> tuple[float, float, float, int]:
    """The step in its own process: wall seconds, CPU seconds (user + system), its peak RSS in GB, exit status.
    On this shared machine CPU time is the steadier figure: wall time stretches with the other benchmarks."""
    command = [sys.executable, __file__, "--child", step, "--workdir", str(args.workdir)]
    command += ["--history-months", str(args.history_months)]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, cpu, usage.ru_maxrss / 1024 / 1024, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-scores"))
    parser.add_argument("--reuse", action="store_true", help="Keep the demo files and published warehouse.")
    parser.add_argument("--history-months", type=int, default=24, help="Training snapshots (dbt var).")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--memory-limit", help="DuckDB memory_limit for dbt (KIZUNA_DUCKDB_MEMORY_LIMIT, 2.5GB).")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work: Path = args.workdir

    if args.child:
        {
            "upstream": lambda: step_upstream(work, args.history_months),
            "features": lambda: step_features(work, args.history_months),
            "train": lambda: step_train(work),
            "score": lambda: step_score(work),
            "deals": lambda: step_deals(work),
        }[args.child]()
        return

    if args.memory_limit:
        os.environ["KIZUNA_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    print(f"DuckDB memory_limit for dbt: {os.environ.get('KIZUNA_DUCKDB_MEMORY_LIMIT', '2.5GB')}")
    prepare(work, args.customers, args.reuse)
    results = []
    for step in args.steps.split(","):
        print(f"{step} (load before: {load()})", flush=True)
        seconds, cpu, peak, code = run_child(step, args)
        results.append((step, seconds, cpu, peak, code, load()))
        print(
            f"{step}: {seconds:.1f} s wall, {cpu:.1f} s CPU, peak {peak:.2f} GB, exit {code}, load {load()}", flush=True
        )
        if code != 0:
            break
    print(f"\n{'step':<10} {'wall s':>8} {'CPU s':>8} {'peak GB':>8}  load after (1/5/15 min)")
    for step, seconds, cpu, peak, code, after in results:
        print(f"{step:<10} {seconds:>8.1f} {cpu:>8.1f} {peak:>8.2f}  {after}{'' if code == 0 else '  FAILED'}")


if __name__ == "__main__":
    main()
