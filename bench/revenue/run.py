"""Revenue marts benchmark: the same monthly KPIs from one hand-written DuckDB statement, from the dbt
revenue marts and from pandas, on N demo customers, timed side by side with each step's peak memory.

    python bench/revenue/run.py                      # 1M customers; prints the table
    python bench/revenue/run.py --write-docs         # and updates docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
PROJECT_DIR = ROOT / "dbt_project"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Revenue marts"
REVENUE_MARTS = "+customer_mrr_monthly +mrr_kpis_monthly stg_crm__customers"
COMPARED = [
    "starting_mrr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "reactivation_mrr",
    "fx_impact_mrr", "ending_mrr", "starting_customers", "churned_customers", "ending_customers",
    "trailing_12m_nrr", "trailing_12m_grr",
]  # fmt: skip

sys.path.insert(0, str(ROOT))


@dataclass
class Step:
    name: str
    seconds: float
    peak_mb: float
    note: str = ""


def measured(name: str, command: list[str], env: dict[str, str] | None = None, note: str = "") -> Step:
    """Run a command under /usr/bin/time -v: wall-clock seconds and peak resident memory of the process tree's
    largest process (the step's own Python process)."""
    timer = shutil.which("time") or "/usr/bin/time"
    if not Path(timer).exists():
        raise SystemExit("bench needs GNU time (/usr/bin/time): apt-get install time")
    started = time.perf_counter()
    done = subprocess.run(
        [timer, "-v", *command], capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return Step(name, seconds, int(rss.group(1)) / 1024 if rss else float("nan"), note)


def export_kpis(warehouse: Path, out: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute(f"COPY (select * from marts.mrr_kpis_monthly order by month) TO '{out}' (HEADER)")
    finally:
        con.close()


def compare(outputs: dict[str, Path]) -> list[str]:
    """Differences between the KPI tables, per column; empty when all agree."""
    frames = {name: pd.read_csv(path).set_index("month") for name, path in outputs.items()}
    reference_name, reference = next(iter(frames.items()))
    problems = []
    for name, frame in frames.items():
        for column in COMPARED:
            left, right = reference[column].fillna(-1), frame[column].reindex(reference.index).fillna(-1)
            if not ((left - right).abs() <= 1e-9 * left.abs().clip(lower=1)).all():
                problems.append(f"{name} differs from {reference_name} in {column}")
    return problems


def dbt_step(name: str, warehouse: Path, workdir: Path, as_of: date, extra: list[str], memory_limit: str) -> Step:
    dbt = str(Path(sys.executable).with_name("dbt"))
    command = [
        dbt, "build", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
        "--target-path", str(workdir / "target"), "--log-path", str(workdir / "logs"),
        "--vars", f'{{"as_of": "{as_of.isoformat()}"}}', "--indirect-selection", "cautious", *extra,
    ]  # fmt: skip
    env = {"KIZUNA_WAREHOUSE": str(warehouse), "DO_NOT_TRACK": "1", "KIZUNA_DUCKDB_MEMORY_LIMIT": memory_limit}
    return measured(name, command, env)


def write_docs(text: str) -> None:
    DOCS.parent.mkdir(exist_ok=True)
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    current = pattern.sub(lambda _: text, current) if pattern.search(current) else current.rstrip("\n") + "\n\n" + text
    DOCS.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 23))
    parser.add_argument("--source-dir", type=Path, help="reuse demo CSVs instead of generating them")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary directory)")
    parser.add_argument("--memory-limit", default="2.5GB", help="DuckDB memory_limit for SQL and dbt")
    parser.add_argument("--whole-project", action="store_true", help="also time `dbt build` of every model")
    parser.add_argument("--write-docs", action="store_true", help=f"update '{SECTION}' in docs/benchmarks.md")
    args = parser.parse_args()

    from kizuna.demo.generate import generate_demo_data
    from tests.dbt.helpers import load_source_dir

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kizuna-bench-revenue-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source_dir = args.source_dir or workdir / "src"
    if args.source_dir is None:
        started = time.perf_counter()
        generate_demo_data(source_dir, args.customers, args.seed, args.as_of)
        print(f"demo data: {time.perf_counter() - started:.1f} s", flush=True)
    loaded = workdir / "loaded.duckdb"
    if not loaded.exists():
        started = time.perf_counter()
        load_source_dir(loaded, source_dir)
        print(f"raw load: {time.perf_counter() - started:.1f} s", flush=True)
    con = duckdb.connect(str(loaded), read_only=True)
    sizes = {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in ("subscriptions", "invoices")}
    con.close()

    def fresh(name: str) -> Path:
        copy = workdir / f"{name}.duckdb"
        shutil.copyfile(loaded, copy)
        return copy

    as_of = args.as_of.isoformat()
    steps: list[Step] = []
    outputs: dict[str, Path] = {}
    python = sys.executable

    warehouse = fresh("sql")
    outputs["sql"] = workdir / "kpis_sql.csv"
    steps.append(measured("one DuckDB SQL statement (bench/revenue/reference.sql)", [
        python, str(HERE / "reference_sql.py"), str(warehouse), str(outputs["sql"]), "--as-of", as_of,
        "--memory-limit", args.memory_limit,
    ]))  # fmt: skip
    print(steps[-1], flush=True)

    warehouse = fresh("dbt_models")
    steps.append(dbt_step(
        "dbt build, revenue marts, models only", warehouse, workdir / "dbt_models", args.as_of,
        ["--select", *REVENUE_MARTS.split(), "--resource-type", "model", "--resource-type", "seed"], args.memory_limit,
    ))  # fmt: skip
    print(steps[-1], flush=True)
    outputs["dbt"] = workdir / "kpis_dbt.csv"
    export_kpis(warehouse, outputs["dbt"])

    warehouse = fresh("dbt_tested")
    steps.append(dbt_step(
        "dbt build, revenue marts, models + data tests", warehouse, workdir / "dbt_tested", args.as_of,
        ["--select", *REVENUE_MARTS.split(), "--exclude-resource-type", "unit_test"], args.memory_limit,
    ))  # fmt: skip
    print(steps[-1], flush=True)

    if args.whole_project:
        warehouse = fresh("dbt_all")
        steps.append(dbt_step(
            "dbt build, whole project (all marts, all tests)", warehouse, workdir / "dbt_all", args.as_of, [],
            args.memory_limit,
        ))  # fmt: skip
        print(steps[-1], flush=True)

    warehouse = fresh("pandas")
    outputs["pandas"] = workdir / "kpis_pandas.csv"
    steps.append(measured("pandas, as an analyst would write it (bench/revenue/pandas_kpis.py)", [
        python, str(HERE / "pandas_kpis.py"), str(warehouse), str(outputs["pandas"]), "--as-of", as_of,
    ]))  # fmt: skip
    print(steps[-1], flush=True)

    problems = compare(outputs)
    reference = steps[0].seconds
    load = os.getloadavg()[0]
    lines = [
        SECTION,
        "",
        f"Monthly MRR KPIs (movements, FX impact, customer counts, trailing-12-month NRR/GRR) for "
        f"{args.customers:,} demo customers ({sizes['subscriptions']:,} subscription periods, "
        f"{sizes['invoices']:,} invoices), as of {as_of}, measured side by side in one run by "
        f"`python bench/revenue/run.py --write-docs` on {os.cpu_count()} cores (load average "
        f"{load:.1f} at the end). DuckDB memory_limit {args.memory_limit} for SQL and dbt. Peak memory is "
        f"the step's largest process (GNU time). dbt steps include its start-up and a cold parse.",
        "",
        "| step | seconds | × SQL | peak MB |",
        "|---|---:|---:|---:|",
        *[f"| {s.name} | {s.seconds:.1f} | {s.seconds / reference:.2f} | {s.peak_mb:,.0f} |" for s in steps],
        "",
        "Same numbers: " + ("all three agree on every KPI of every month." if not problems else "; ".join(problems)),
        "",
        "Targets (issue 3): the dbt revenue marts within 1.5× the single SQL statement, peak under 3 GB. "
        + "; ".join(
            f"{s.name}: {s.seconds / reference:.2f}× {'✓' if s.seconds / reference <= 1.5 else '✗'}, "
            f"{s.peak_mb / 1024:.1f} GB {'✓' if s.peak_mb < 3072 else '✗'}"
            for s in steps
            if s.name.startswith("dbt")
        )
        + ".",
        "",
        "Tried so far: the customer-month model is a windowless view (each subscription-month counted in its "
        "month and, as last month's MRR, in the next one, then one aggregate) inlined into the movements "
        "table; customer_mrr_monthly is a view of that table; DuckDB gets memory_limit and "
        "preserve_insertion_order=false (without them the build peaks near 7.9 GB; below 2.5 GB it runs out of "
        "memory). Of the dbt time, ≈ 7 s is start-up and a cold parse, and ≈ 10 s writing the two "
        "intermediate tables the single statement never writes. Not yet tried: materialising "
        "int_subscriptions_spined_to_months as a view too, and DuckDB-only SQL (generate_series) for the "
        "month spine behind an adapter dispatch.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_docs(text)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
