"""Benchmark: ingest and the raw quality gate at a given size (default 1M customers).

    python bench/gate/bench_gate.py [--customers 1000000] [--workdir /tmp/kizuna-bench-gate]

Prints wall time and peak memory (RSS of this process) per step; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import resource
import shutil
import time
from pathlib import Path

from kizuna.core.runtime import quiet_third_parties

quiet_third_parties()

from kizuna.core.settings import Settings  # noqa: E402
from kizuna.core.warehouse import connect  # noqa: E402
from kizuna.demo.generate import generate_demo_data  # noqa: E402
from kizuna.quality.gate import gate_and_publish  # noqa: E402
from kizuna.sources.ingest import stage_sources  # noqa: E402

AS_OF = dt.date(2026, 11, 23)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-gate"))
    parser.add_argument("--reuse", action="store_true", help="Keep the demo files of an earlier run.")
    args = parser.parse_args()
    work: Path = args.workdir
    src = work / "src"
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    (work / "warehouse.duckdb").unlink(missing_ok=True)
    settings = Settings(source_dir=src, warehouse=work / "warehouse.duckdb", var_dir=work / "var")

    if not args.reuse:
        t = time.perf_counter()
        rows = generate_demo_data(src, args.customers, 42, AS_OF)
        print(f"demo data: {time.perf_counter() - t:.1f} s  rows={sum(rows.values()):,}  peak={peak_gb():.2f} GB")

    t = time.perf_counter()
    stage_sources(settings)
    print(f"ingest (stage all files): {time.perf_counter() - t:.1f} s  peak={peak_gb():.2f} GB")

    timings: dict[str, float] = {}
    last = [time.perf_counter()]

    def step(name: str) -> None:
        now = time.perf_counter()
        timings[name] = now - last[0]
        last[0] = now

    t = time.perf_counter()
    last[0] = t
    verdict = gate_and_publish(settings, AS_OF, progress=step)
    step("end")
    total = time.perf_counter() - t
    # progress() fires when a suite starts: each figure belongs to the suite named before it.
    names = list(timings)
    for before, after in itertools.pairwise(names):
        print(f"  gate {before}: {timings[after]:.1f} s")
    print(f"gate total: {total:.1f} s  passed={verdict.passed}  peak={peak_gb():.2f} GB")
    with connect(settings.warehouse) as con:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM raw.customers), (SELECT count(*) FROM raw.subscriptions)"
        ).fetchone()
    print(f"published: customers={counts[0]:,} subscriptions={counts[1]:,}")


if __name__ == "__main__":
    main()
