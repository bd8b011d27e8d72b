"""The whole pipeline's cost curve, 10k to 1M customers, next to what a user would do instead. `make bench` runs it.

    python bench/run.py [--sizes 10000,100000,1000000] [--out bench/results/latest.json] [--smoke]

Per size: demo data (reported apart, not part of end to end); dbt's cold and partial parse; `kizuna run` end to
end on a fresh warehouse, whose Prefect log gives each pipeline step's time (ingest, gate, dbt build, scores) and
whose process tree is sampled for the memory of each; then, on the warehouse it built, the references on its raw
tables (one DuckDB SQL statement, pandas, and the dbt revenue marts between them), campaign selection, and the
per-message steps (render, delivery to the SendGrid stand-in, event loading); then day 2, the realistic next day
(`kizuna demo-data --next-day-of`), on copies of the warehouse and var/ day 1's run left, put at day 1's path (as
production's daily run, so dbt's saved parse holds), incrementally and with --full-refresh, one after the other. Once per run: fixed costs (imports,
Prefect's temporary server and per-task cost, the webhook receiver's rate). Every step is its own process, timed
with its peak memory. Results go to a JSON file and, unless --no-docs, to the marked block at the top of
docs/benchmarks.md with a chart of time against size (--docs-only redraws them from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import cache, plan, report  # noqa: E402
from bench.harness.measure import Measurement, peak_between, run_measured  # noqa: E402
from bench.harness.steps import dbt_parse_figures  # noqa: E402
from kizuna.core.runtime import quiet_third_parties  # noqa: E402

DEFAULT_SIZES = "10000,100000,1000000"
SMOKE_SIZE = 300


def machine() -> dict[str, Any]:
    cpu = ""
    ram_gb = 0.0
    try:
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            "",
        )
        meminfo = Path("/proc/meminfo").read_text()
        ram_gb = int(meminfo.split("MemTotal:")[1].split()[0]) / 1024 / 1024
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(ram_gb, 1),
        "cpu": cpu or platform.processor(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("duckdb", "dbt-core", "dbt-duckdb", "prefect", "great-expectations", "pandas"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "?"
    return found


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


class Harness:
    def __init__(self, args: argparse.Namespace, sizes: list[int]) -> None:
        self.args = args
        self.workdir: Path = args.workdir
        self.results: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python bench/run.py", *sys.argv[1:]]),
            "commit": git_commit(),
            "smoke": args.smoke,
            "sizes": sizes,
            "as_of": plan.AS_OF.isoformat(),
            "seed": plan.SEED,
            "messages_per_customer": args.messages_per_customer,
            "max_messages": args.max_messages,
            "page_cache": args.page_cache,
            "machine": machine(),
            "versions": versions(),
            "steps": [],
        }

    def save(self) -> None:
        report.save_results(self.results, self.args.out)

    def run(self, step: plan.Step, size: int | None, series: list[tuple[float, float]] | None = None) -> Measurement:
        tag = f"{size or 'fixed'}-{step.name.replace(':', '-').replace(' ', '_')}"
        print(f"[{datetime.now():%H:%M:%S}] {size or '':>9} {step.label} …", end="", flush=True)
        log = self.workdir / "logs" / f"{tag}.log"
        timeout = self.args.e2e_timeout if step.group == plan.END_TO_END else self.args.timeout
        cached = cache.prepare(self.args.page_cache, step.reads) if step.reads else {}
        measured = run_measured(step.command, env=step.env, cwd=ROOT, log=log, timeout=timeout, series=series)
        if step.parse is not None:
            try:
                parsed = step.parse(log.read_text(encoding="utf-8"), step)
                measured.work_seconds = parsed.pop("work_seconds", measured.work_seconds)
                measured.details.update(parsed)
            except ValueError as exc:
                if measured.ok:  # a failed step's output is partial anyway: its error says why
                    measured.error = str(exc)
        if step.count:
            measured.details.setdefault("count", step.count)
        measured.details.update(cached)
        row = {
            "size": size,
            "step": step.name,
            "label": step.label,
            "group": step.group,
            "load": round(os.getloadavg()[0], 2),
            **measured.as_dict(),
            "ok": measured.ok,
        }
        self.results["steps"].append(row)
        self.save()
        status = "ok" if measured.ok else f"FAILED: {measured.error}"
        print(f" {measured.seconds:.1f} s, peak {measured.peak_mb:,.0f} MB, {status}", flush=True)
        return measured

    def demo_data(self, size: int) -> Path:
        source = self.workdir / "data" / f"{size}-{plan.SEED}-{plan.AS_OF.isoformat()}"
        if self.args.reuse_data and (source / ".complete").exists():
            print(f"{size:>9} demo data reused from {source}")
            return source
        step = plan.Step(
            "demo",
            "demo data (not part of end to end)",
            plan.DATA,
            plan.steps_module("demo", self.workdir, source, size),
        )
        measured = self.run(step, size)
        if not measured.ok:
            raise SystemExit(f"demo data for {size:,} customers failed: {measured.error}")
        return source

    def fresh_warehouse(self, workdir: Path) -> None:
        for path in workdir.glob("warehouse.duckdb*"):
            path.unlink()

    def size(self, size: int) -> None:
        """Demo data, the dbt parse state, `kizuna run` on a fresh warehouse (its tasks are the pipeline's steps),
        then on the warehouse it built: the references, campaign selection and the per-message steps."""
        source = self.demo_data(size)
        workdir = self.workdir / f"run-{size}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        messages = plan.messages_for(size, self.args.messages_per_customer)
        measured = min(messages, self.args.max_messages)
        before, separate, after = plan.size_steps(size, workdir, source, messages, measured, smoke=self.args.smoke)
        for step in before:
            self.run_unless_skipped(step, size)
        if self.args.separate_steps or self.args.smoke:
            for step in separate:
                self.run_unless_skipped(step, size)
            self.fresh_warehouse(workdir)
        day1 = None
        if not self.args.smoke and not self.skipped("e2e", size) and self.end_to_end(size, workdir, source):
            day1 = self.workdir / f"day1-{size}"  # day 2 starts from what day 1 left (the steps after change it)
            shutil.rmtree(day1, ignore_errors=True)
            day1.mkdir(parents=True)
            shutil.copy(workdir / "warehouse.duckdb", day1 / "warehouse.duckdb")
            shutil.copytree(workdir / "var", day1 / "var")
        for step in after:
            self.run_unless_skipped(step, size)
        self.compare_kpis(size, workdir)
        if day1 is not None:
            self.day_two(size, source, day1, workdir)
        elif self.args.smoke:  # the next day's data step only: its two runs are end-to-end runs
            self.next_day_data(size, source)
        if not self.args.smoke and not self.skipped("e2e-daily", size):
            # as on any day after the weekly training: the same sources on a fresh warehouse, the model stored
            self.end_to_end(size, workdir, source, daily=True)
        if not self.args.keep:
            self.fresh_warehouse(workdir)

    def run_unless_skipped(self, step: plan.Step, size: int) -> None:
        if not self.skipped(step.name, size):
            self.run(step, size)

    def next_day_data(self, size: int, source: Path) -> Path:
        """The realistic next day of the size's demo data (kept with it under data/, reused like it)."""
        out = source.with_name(source.name + "-next-day")
        if self.args.reuse_data and (out / ".complete").exists():
            print(f"{size:>9} next day reused from {out}")
            return out
        measured = self.run(plan.next_day_step(size, source, out), size)
        if not measured.ok:
            raise SystemExit(f"the next day for {size:,} customers failed: {measured.error}")
        return out

    def day_two(self, size: int, source: Path, day1: Path, workdir: Path) -> None:
        """Day 2 on copies of day 1's warehouse and var/: incrementally, then with --full-refresh, one after the
        other in this run, so the two compare on the same machine at the same time (docs/incremental.md).

        Each runs at the path day 1 ran at (`workdir`, set aside meanwhile), as a daily run does in production:
        dbt's saved parse names the warehouse's path, and on a copy elsewhere dbt parses the whole project again
        (≈ 5 s at 1M that no production day pays)."""
        runs = {name: extra for name, extra in plan.DAY2_RUNS.items() if not self.skipped(name, size)}
        if runs:
            next_day = self.next_day_data(size, source)
            as_of = date.fromisoformat(json.loads((next_day / ".complete").read_text(encoding="utf-8"))["as_of"])
            aside = workdir.with_name(workdir.name + "-aside")
            shutil.rmtree(aside, ignore_errors=True)
            workdir.rename(aside)
            try:
                for name, extra in runs.items():
                    shutil.copytree(day1, workdir)
                    step = plan.end_to_end(
                        size, workdir, next_day, self.workdir / "prefect-home", as_of=as_of, name=name, extra=extra
                    )
                    self.measure_run(step, size, workdir, pipeline_rows=False)
                    kept = self.workdir / f"{name}-{size}"
                    shutil.rmtree(kept, ignore_errors=True)
                    if self.args.keep:
                        workdir.rename(kept)
                    else:
                        shutil.rmtree(workdir, ignore_errors=True)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
                aside.rename(workdir)
        shutil.rmtree(day1, ignore_errors=True)

    def end_to_end(self, size: int, workdir: Path, source: Path, *, daily: bool = False) -> bool:
        """`kizuna run` on a fresh warehouse (`daily`: again, with the weekly model stored, its own row); whether
        it succeeded."""
        self.fresh_warehouse(workdir)
        step = plan.end_to_end(size, workdir, source, self.workdir / "prefect-home")
        if daily:
            step = plan.daily_end_to_end(step)
        pipeline_rows = not (self.args.separate_steps or self.args.smoke or daily)
        return self.measure_run(step, size, workdir, pipeline_rows=pipeline_rows)

    def measure_run(self, step: plan.Step, size: int, workdir: Path, *, pipeline_rows: bool) -> bool:
        """A `kizuna run`, and from its Prefect log each task's time and the run's peak memory while it ran; with
        `pipeline_rows` those become the pipeline steps' rows (the first run's, unless --separate-steps measured
        them in processes of their own)."""
        series: list[tuple[float, float]] = []
        measured = self.run(step, size, series=series)
        row = self.results["steps"][-1]
        details = row.setdefault("details", {})
        if not details.get("phases"):  # the console shows the summary; Prefect's lines are in the run's own log
            details.update(plan.parse_run_log(workdir / "var", step))
        details.update(dbt_parse_figures(workdir / "var"))
        windows = details.pop("windows", {})
        if "flow" in windows:
            details["outside_flow_seconds"] = round(row["seconds"] - details["flow_seconds"], 1)
        if series and "flow" in windows:  # before the flow began: imports and the temporary server's start
            windows["outside_flow_seconds"] = [series[0][0], windows["flow"][0]]
        details["phase_peak_mb"] = {
            phase: round(peak)
            for phase, (start, end) in windows.items()
            if (peak := peak_between(series, start, end)) is not None
        }
        if pipeline_rows:
            for task, name in plan.E2E_STEPS.items():
                if task in details.get("phases", {}):
                    self.results["steps"].append(
                        {
                            "size": size,
                            "step": name,
                            "label": f"{name}, as the `{task}` task of `kizuna run`",
                            "group": plan.PIPELINE,
                            "source": "e2e",
                            "load": row["load"],
                            "seconds": details["phases"][task],
                            "peak_mb": details["phase_peak_mb"].get(task, 0.0),
                            "returncode": 0,
                            "ok": True,
                        }
                    )
        self.save()
        return measured.ok

    def skipped(self, step: str, size: int) -> bool:
        wanted = {f"{step}@{size}", step}
        if wanted & set(self.args.skip):
            self.results.setdefault("skipped", []).append(f"{step}@{size}")
            print(f"{size:>9} {step} skipped (--skip)")
            return True
        return False

    def compare_kpis(self, size: int, workdir: Path) -> None:
        """The references must compute the same KPIs as the marts, or their times compare nothing."""
        from bench.revenue.run import compare, export_kpis

        outputs = {"sql": workdir / "kpis_sql.csv", "pandas": workdir / "kpis_pandas.csv"}
        if not self.args.smoke and (workdir / "warehouse.duckdb").exists():
            try:
                export_kpis(workdir / "warehouse.duckdb", workdir / "kpis_dbt.csv")
                outputs["dbt"] = workdir / "kpis_dbt.csv"
            except Exception as exc:  # the revenue build failed: recorded with its step
                print(f"{size:>9} no dbt KPIs to compare: {exc}")
        present = {k: v for k, v in outputs.items() if v.exists()}
        if len(present) < 2:
            return
        problems = compare(present)
        self.results.setdefault("kpis_agree", {})[str(size)] = {"compared": sorted(present), "problems": problems}
        self.save()
        print(f"{size:>9} KPIs {'agree' if not problems else 'DIFFER: ' + '; '.join(problems)} ({', '.join(present)})")

    def fixed(self) -> None:
        home = self.workdir / "prefect-home"
        shutil.rmtree(home, ignore_errors=True)
        steps = plan.fixed_steps(
            self.workdir,
            smoke=self.args.smoke,
            receiver_seconds=1 if self.args.smoke else 10,
            official_messages=50 if self.args.smoke else 3000,
        )
        for step in steps:
            self.run(step, None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="Customer counts, comma-separated.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_SIZE} customers and one step of each kind (no gate, dbt, Prefect or end to end): proves the "
        "harness and the benchmarks it reads still work together, in seconds.",
    )
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kizuna-bench")
    parser.add_argument("--reuse-data", action="store_true", help="Keep demo data generated by an earlier run.")
    parser.add_argument("--keep", action="store_true", help="Keep each size's warehouse after its run.")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="STEP[@SIZE]",
        help="Leave a step out (e.g. e2e, or pandas@1000000 on a machine short of memory); repeatable.",
    )
    parser.add_argument("--messages-per-customer", type=float, default=0.1, help="The day's emails per customer.")
    parser.add_argument(
        "--max-messages", type=int, default=20_000, help="Render, deliver and load at most this many to measure a rate."
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="Seconds before a step is stopped (recorded as a failure)."
    )
    parser.add_argument("--e2e-timeout", type=float, default=1500, help="The same for `kizuna run` end to end.")
    parser.add_argument(
        "--separate-steps",
        action="store_true",
        help="Also run ingest, gate, dbt build and scores each in its own process before `kizuna run` (about "
        "doubles the time at 1M); by default their figures come from inside the end-to-end run.",
    )
    parser.add_argument(
        "--page-cache",
        choices=cache.MODES,
        default="warm",
        help="Before each `kizuna run`: read its source files and warehouse once (warm, the default), drop the "
        "machine's page cache (cold: root only, slows everything else running), or leave it (as-is).",
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "benchmarks-growth.svg")
    parser.add_argument("--no-docs", action="store_true", help="Write the JSON only.")
    parser.add_argument(
        "--docs-only", action="store_true", help="Run nothing: rewrite the docs block and chart from the --out JSON."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.docs_only:
        report.write_docs(json.loads(args.out.read_text(encoding="utf-8")), args.docs, args.chart)
        print(f"docs: {args.docs}, chart: {args.chart}")
        return
    quiet_third_parties()
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.5")
    sizes = [SMOKE_SIZE] if args.smoke else [int(s) for s in args.sizes.split(",") if s.strip()]
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.page_cache == "cold":
        try:  # before hours of steps: refused here, not at the first end-to-end run
            cache.drop()
        except cache.PageCacheError as exc:
            raise SystemExit(str(exc)) from exc
    harness = Harness(args, sizes)
    started = time.perf_counter()
    harness.fixed()
    for size in sizes:
        harness.size(size)
    harness.results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    harness.results["total_seconds"] = round(time.perf_counter() - started, 1)
    harness.save()
    print(f"results: {args.out} ({harness.results['total_seconds']:.0f} s in all)")
    if not args.no_docs:
        report.write_docs(harness.results, args.docs, args.chart)
        print(f"docs: {args.docs}, chart: {args.chart}")


if __name__ == "__main__":
    main()
