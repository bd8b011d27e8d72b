"""The pipeline's steps as the benchmark runs them, one per process: python -m bench.harness.steps STEP [options].

Each step calls the same library function `kizuna run` calls, times the work itself (imports excluded) and prints
one RESULT_PREFIX line with the figures; bench/harness/measure.py adds wall time and peak memory from outside.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from bench.harness.measure import RESULT_PREFIX
from kizuna.core.runtime import quiet_third_parties

quiet_third_parties()

from kizuna.core.settings import Settings  # noqa: E402


def report(work_seconds: float, **details: Any) -> None:
    print(RESULT_PREFIX + json.dumps({"work_seconds": work_seconds, **details}, default=str), flush=True)


def settings_for(args: argparse.Namespace) -> Settings:
    work: Path = args.workdir
    return Settings(
        source_dir=args.source_dir,
        warehouse=work / "warehouse.duckdb",
        var_dir=work / "var",
        outbox_dir=work / "var" / "outbox",
        events_dir=work / "var" / "events",
    )


def demo(args: argparse.Namespace) -> None:
    from kizuna.demo.generate import generate_demo_data

    shutil.rmtree(args.source_dir, ignore_errors=True)
    started = time.perf_counter()
    rows = generate_demo_data(args.source_dir, args.customers, args.seed, args.as_of)
    seconds = time.perf_counter() - started
    megabytes = sum(p.stat().st_size for p in args.source_dir.iterdir()) / 1e6
    (args.source_dir / ".complete").write_text(json.dumps({"rows": rows, "megabytes": megabytes}))
    report(seconds, rows=sum(rows.values()), megabytes=round(megabytes, 1), rows_per_file=rows)


def next_day(args: argparse.Namespace) -> None:
    """The realistic next day of --source-dir into --workdir; its as-of day goes in .complete for the runs."""
    from kizuna.demo.next_day import next_day_demo_data

    shutil.rmtree(args.workdir, ignore_errors=True)
    started = time.perf_counter()
    day, rows = next_day_demo_data(args.source_dir, args.workdir, args.seed)
    seconds = time.perf_counter() - started
    (args.workdir / ".complete").write_text(json.dumps({"as_of": day.isoformat(), "rows": rows}))
    report(seconds, as_of=day.isoformat(), rows=sum(rows.values()))


def ingest(args: argparse.Namespace) -> None:
    from kizuna.sources.ingest import stage_sources

    settings = settings_for(args)
    started = time.perf_counter()
    result = stage_sources(settings)
    report(time.perf_counter() - started, rows=sum(result.rows.values()), rows_per_table=result.rows)


def gate(args: argparse.Namespace) -> None:
    from kizuna.quality.gate import gate_and_publish

    settings = settings_for(args)
    started = time.perf_counter()
    verdict = gate_and_publish(settings, args.as_of)
    report(
        time.perf_counter() - started,
        checks=len(verdict.results),
        passed=verdict.passed,
        warnings=len(verdict.warnings),
    )


def _dbt(settings: Settings, command: str, as_of: date) -> float:
    """One dbt command through kizuna's own argument builder and in-process runner; seconds it took."""
    from kizuna.transform import dbt_runner

    os.environ.update(dbt_runner.dbt_env(settings, as_of))
    started = time.perf_counter()
    error = dbt_runner.plain_invoker()(dbt_runner.dbt_args(settings, command))
    if error:
        raise SystemExit(f"dbt {command} failed: {error}")
    return time.perf_counter() - started


def dbt_parse_figures(var_dir: Path) -> dict[str, Any]:
    """How the last dbt command parsed (dbt's perf_info.json): partial or not, files re-read, seconds."""
    try:
        perf = json.loads((var_dir / "dbt" / "target" / "perf_info.json").read_text())
    except (OSError, ValueError):
        return {}
    return {
        "dbt_partial_parse": perf.get("is_partial_parse_enabled"),
        "dbt_files_parsed": f"{perf.get('parsed_path_count')} of {perf.get('path_count')}",
        "dbt_load_seconds": round(perf.get("load_all_elapsed") or 0.0, 2),
    }


def dbt_parse(args: argparse.Namespace) -> None:
    """A cold parse (no partial_parse.msgpack), then a second, partial one: what every later build pays."""
    import dbt.cli.main  # noqa: F401  (dbt's own import time is an overhead of its own, measured apart)

    settings = settings_for(args)
    target = settings.var_dir / "dbt" / "target"
    shutil.rmtree(target, ignore_errors=True)
    cold = _dbt(settings, "parse", args.as_of)
    partial = _dbt(settings, "parse", args.as_of)
    manifest = json.loads((target / "manifest.json").read_text())
    report(cold, partial_parse_seconds=round(partial, 2), nodes=len(manifest["nodes"]))


def dbt_build(args: argparse.Namespace) -> None:
    """kizuna's build as the daily flow runs it: the ops tables the marts read, then `dbt build` (partial parse)."""
    import dbt.cli.main  # noqa: F401

    from kizuna.core.warehouse import connect
    from kizuna.tracking.loader import ensure_tracking_tables
    from kizuna.transform import dbt_runner

    settings = settings_for(args)
    started = time.perf_counter()
    with connect(settings.warehouse) as con:
        ensure_tracking_tables(con)
    result = dbt_runner.build(settings, args.as_of)
    seconds = time.perf_counter() - started
    slowest = sorted(result.nodes, key=lambda n: n.seconds, reverse=True)[:5]
    report(
        seconds,
        models=result.count("model"),
        tests=result.count("test"),
        node_seconds=round(sum(n.seconds for n in result.nodes), 1),
        slowest={n.name.split(".")[-1]: round(n.seconds, 1) for n in slowest},
        **dbt_parse_figures(settings.var_dir),
    )


def dbt_revenue(args: argparse.Namespace) -> None:
    """The revenue marts alone (models only), as bench/revenue/run.py selects them, on the partial-parse state."""
    import dbt.cli.main  # noqa: F401

    from bench.revenue.run import REVENUE_MARTS
    from kizuna.transform import dbt_runner

    settings = settings_for(args)
    os.environ.update(dbt_runner.dbt_env(settings, args.as_of))
    extra = ["--select", *REVENUE_MARTS.split(), "--resource-type", "model", "--resource-type", "seed"]
    started = time.perf_counter()
    error = dbt_runner.plain_invoker()(dbt_runner.dbt_args(settings, "build", extra))
    if error:
        raise SystemExit(f"dbt build of the revenue marts failed: {error}")
    seconds = time.perf_counter() - started
    failed = [
        n.name for n in dbt_runner.read_run_results(dbt_runner.run_results_path(settings)) if n.status != "success"
    ]
    if failed:
        raise SystemExit(f"dbt build of the revenue marts failed: {failed}")
    report(seconds)


def scores(args: argparse.Namespace) -> None:
    from kizuna.scoring.run import score_warehouse

    settings = settings_for(args)
    started = time.perf_counter()
    result = score_warehouse(settings, args.as_of)
    report(
        time.perf_counter() - started,
        customers_scored=result.customers_scored,
        deals_forecast=result.deals_forecast,
        trained=result.trained,
    )


def train_scores(args: argparse.Namespace) -> None:
    """The weekly train-scores flow's work: train on the warehouse and store the model the daily run loads."""
    from kizuna.scoring.run import train_and_store

    started = time.perf_counter()
    stored = train_and_store(settings_for(args))
    report(
        time.perf_counter() - started, model_version=stored.bundle.version, training_rows=stored.bundle.training_rows
    )


def prefect_overhead(args: argparse.Namespace) -> None:
    """Prefect's fixed costs: the temporary server's start (PREFECT_HOME as given: fresh or already migrated),
    and the cost per task run, from a flow of N no-op tasks against an empty flow on the same server."""
    from prefect import flow, task

    @task
    def noop(i: int) -> int:
        return i

    @flow(name="bench-empty")
    def empty() -> None:
        return None

    @flow(name="bench-tasks")
    def tasks(n: int) -> None:
        for i in range(n):
            noop(i)

    started = time.perf_counter()
    empty()  # starts the temporary server, then one flow run
    first = time.perf_counter() - started
    started = time.perf_counter()
    empty()
    flow_run = time.perf_counter() - started
    started = time.perf_counter()
    tasks(args.tasks)
    with_tasks = time.perf_counter() - started
    per_task = max(0.0, with_tasks - flow_run) / max(1, args.tasks)
    report(
        first,
        server_start_seconds=round(max(0.0, first - flow_run), 2),
        empty_flow_run_seconds=round(flow_run, 3),
        tasks=args.tasks,
        per_task_ms=round(per_task * 1000, 1),
    )


STEPS: dict[str, Callable[[argparse.Namespace], None]] = {
    "demo": demo,
    "next-day": next_day,
    "ingest": ingest,
    "gate": gate,
    "dbt-parse": dbt_parse,
    "dbt-revenue": dbt_revenue,
    "dbt-build": dbt_build,
    "scores": scores,
    "train-scores": train_scores,
    "prefect": prefect_overhead,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--source-dir", type=Path, default=Path("."))
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 23))
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args(argv)
    STEPS[args.step](args)


if __name__ == "__main__":
    main()
