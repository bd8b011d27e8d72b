"""Benchmark: ingest and gate of a realistic second day, this tree's code beside another git ref's, in one run.

    python bench/ingest/bench_ingest_changes.py [--customers 100000] [--baseline-ref s8] [--rounds 2]
        [--workdir /tmp/kizuna-bench-ingest-changes] [--reuse]

Writes the demo export for day 1 and `kizuna demo-data --next-day-of` for day 2 (≈ 0.5% of rows changed),
extracts the baseline's code and suites with `git archive`, then per round and per side (alternating, baseline first)
runs a child process that publishes day 1 into a fresh warehouse with that side's code (ingest + gate) and
times day 2's ingest and gate: wall seconds, and CPU seconds of the child's threads (DuckDB's included),
which a machine shared with other work stretches less. Peak is the child's RSS. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
AS_OF = dt.date(2026, 11, 23)


def child(work: Path, side: str) -> None:
    """One side's measurement, in its own process (its own PYTHONPATH)."""
    from kizuna.core.runtime import quiet_third_parties

    quiet_third_parties()
    from kizuna.core.settings import Settings
    from kizuna.quality.gate import gate_and_publish
    from kizuna.sources.ingest import stage_sources

    base = work / f"run-{side}"  # not work/baseline: that holds the baseline's code
    shutil.rmtree(base, ignore_errors=True)
    warehouse = base / "warehouse.duckdb"
    figures: dict[str, float | str] = {}
    day2 = json.loads((work / "day2.json").read_text())
    for day, src, as_of in (("day1", work / "day1", AS_OF), ("day2", work / "day2", dt.date.fromisoformat(day2))):
        settings = Settings(source_dir=src, warehouse=warehouse, var_dir=base / "var")
        t, cpu = time.perf_counter(), time.process_time()
        result = stage_sources(settings)
        figures[f"{day} ingest s"] = time.perf_counter() - t
        figures[f"{day} ingest cpu s"] = time.process_time() - cpu
        t, cpu = time.perf_counter(), time.process_time()
        verdict = gate_and_publish(settings, as_of)
        figures[f"{day} gate s"] = time.perf_counter() - t
        figures[f"{day} gate cpu s"] = time.process_time() - cpu
        figures[f"{day} unchanged"] = ",".join(getattr(result, "unchanged", [])) or "-"
        figures[f"{day} quarantined"] = sum(verdict.quarantined.values())
    figures["peak GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(json.dumps(figures))


def prepare(work: Path, customers: int, baseline_ref: str, reuse: bool) -> None:
    from kizuna.demo.generate import generate_demo_data
    from kizuna.demo.next_day import next_day_demo_data

    if not (reuse and (work / "day2.json").exists()):
        shutil.rmtree(work, ignore_errors=True)
        rows = generate_demo_data(work / "day1", customers, 42, AS_OF)
        day, _ = next_day_demo_data(work / "day1", work / "day2", 43)
        (work / "day2.json").write_text(json.dumps(day.isoformat()))
        print(f"demo data: {sum(rows.values()):,} rows on day 1; day 2 is {day}")
    baseline = work / "baseline"
    shutil.rmtree(baseline, ignore_errors=True)
    baseline.mkdir(parents=True)
    # the code and the files it reads beside it (suites, mappings, the dbt project's seeds), as that ref has them
    parts = ["src", "expectations", "mappings", "dbt_project"]
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline_ref, *parts], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--baseline-ref", default="s8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-ingest-changes"))
    parser.add_argument("--reuse", action="store_true", help="Keep the demo files of an earlier run.")
    parser.add_argument("--child", choices=["baseline", "this"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.workdir, args.child)
        return
    prepare(args.workdir, args.customers, args.baseline_ref, args.reuse)
    sides = {"baseline": args.workdir / "baseline" / "src", "this": ROOT / "src"}
    results: dict[str, list[dict[str, float | str]]] = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, src in sides.items():
            env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
            out = subprocess.run(
                [sys.executable, str(HERE), "--workdir", str(args.workdir), "--child", side],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{side}: {results[side][-1]}", flush=True)
    keys = [k for k in results["this"][0] if not isinstance(results["this"][0][k], str)]
    print(f"\n| {args.customers:,} customers | {args.baseline_ref} | this tree |\n|---|---:|---:|")
    for key in keys:
        cells = [" / ".join(f"{r[key]:.1f}" for r in results[side]) for side in sides]  # type: ignore[str-format]
        print(f"| {key} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
