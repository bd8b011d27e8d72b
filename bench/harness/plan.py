"""What the benchmark runs: each step's command and how to read what it printed.

Steps of the pipeline run through bench/harness/steps.py (the library calls `kizuna run` makes). The other
benchmarks under bench/ are called as their authors run them and their printed figures are read here, so their
improvements show up in this table; a change in what they print fails the harness's smoke test, not silently.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
AS_OF = date(2026, 11, 23)  # the date bench/campaigns/bench_select.py selects as of
SEED = 42

# Groups: pipeline steps add up to `kizuna run`; references compute the same KPIs another way; per-message steps
# scale with the day's emails rather than with customers; fixed costs do not grow at all.
PIPELINE, REFERENCE, MESSAGES, END_TO_END, DATA = "pipeline", "reference", "messages", "end to end", "data"


@dataclass
class Step:
    name: str
    label: str
    group: str
    command: list[str]
    parse: Callable[[str, Step], dict[str, Any]] | None = None
    env: dict[str, str | None] = field(default_factory=dict)  # None unsets (measure.child_env)
    count: int = 0  # messages or events the step handles, for per-message rates
    reads: tuple[Path, ...] = ()  # files or folders it reads, put in one page-cache state first (harness.cache)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _search(pattern: str, stdout: str, step: Step) -> re.Match[str]:
    found = re.search(pattern, stdout, re.M)
    if found is None:
        raise ValueError(f"{step.name}: the output of `{' '.join(step.command[1:3])}` no longer matches {pattern!r}")
    return found


def steps_module(step: str, workdir: Path, source_dir: Path, customers: int, *extra: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "bench.harness.steps",
        step,
        "--workdir",
        str(workdir),
        "--source-dir",
        str(source_dir),
        "--customers",
        str(customers),
        "--seed",
        str(SEED),
        "--as-of",
        AS_OF.isoformat(),
        *extra,
    ]


def parse_selection(stdout: str, step: Step) -> dict[str, Any]:
    total = _search(r"^all email campaigns: ([\d.]+) s", stdout, step)
    treatment = sum(int(_number(m)) for m in re.findall(r"treatment=([\d,]+)", stdout))
    return {"work_seconds": float(total.group(1)), "selected": treatment}


def _table_row(name: str, stdout: str, step: Step) -> list[float]:
    """The numbers of the printed table row that starts with ``name``."""
    row = _search(rf"^{re.escape(name)}(.*)$", stdout, step).group(1)
    return [_number(x) for x in re.findall(r"[\d][\d,]*\.?\d*", row)]


def parse_render(stdout: str, step: Step) -> dict[str, Any]:
    """Messages per CPU second of one core: the whole message a campaign sends (the target's figure), and the
    issue's bare-Jinja reference (inlined template, one render) beside it."""
    whole = _table_row("whole message (campaign_message)", stdout, step)
    reference = _table_row("reference: bare Jinja, CSS inlined once, one render", stdout, step)
    return {
        "work_seconds": step.count / whole[0],
        "per_second": whole[0],
        "per_wall_second": whole[-1],
        "reference_per_second": reference[0],
    }


def parse_delivery(stdout: str, step: Step) -> dict[str, Any]:
    """The one case the step ran: messages/s and the CPU per message of client and stand-in."""
    found = _search(
        r"^(official|pooled)\s+(\d+)\s+(at once|\+\d+ ms)\s+([\d,]+)\s+([\d.]+) ms\s+([\d.?]+)", stdout, step
    )
    rate = _number(found.group(4))
    return {
        "work_seconds": step.count / rate,
        "per_second": rate,
        "client_cpu_ms": float(found.group(5)),
        "in_flight": int(found.group(2)),
    }


def parse_loader(stdout: str, step: Step) -> dict[str, Any]:
    found = _search(r"^\s*empty table\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)\s+([\d,]+)", stdout, step)
    rate = _number(found.group(4))
    return {"work_seconds": step.count / rate, "per_second": rate, "events_measured": int(_number(found.group(1)))}


def parse_receiver(stdout: str, step: Step) -> dict[str, Any]:
    row = r"^\s*(\d+)\s+([\d,]+)\s+([\d,.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s*$"
    found = _search(row, stdout, step)
    return {
        "per_second": _number(found.group(2)),
        "events_per_post": int(found.group(1)),
        "p99_ms": float(found.group(5)),
        "lost": int(found.group(7)),
    }


def bench_script(path: str, *args: str) -> list[str]:
    return [PYTHON, str(ROOT / path), *args]


def messages_for(customers: int, per_customer: float) -> int:
    """The day's emails at this size: a share of the customers, at least 50."""
    return max(50, int(customers * per_customer))


SMOKE_STEPS = {"ingest", "render", "deliver", "events-load"}  # one of each kind of step and parser, in seconds
# The steps `kizuna run` does that the end-to-end run measures from inside (bench/harness/plan.py parse_e2e);
# --separate-steps also runs each in a process of its own, for memory free of what the run held before.
SEPARATE_STEPS = ["ingest", "gate", "dbt-build", "scores"]


def size_steps(
    customers: int, workdir: Path, source_dir: Path, messages: int, measured: int, *, smoke: bool = False
) -> tuple[list[Step], list[Step], list[Step]]:
    """The steps at one size in three parts: before `kizuna run` (the dbt parse state every run after the first
    finds), the pipeline's steps one process each (for --separate-steps and the smoke run), and after it on the
    warehouse it built (references on its raw tables, selection on its marts, and the per-message steps)."""
    warehouse = workdir / "warehouse.duckdb"
    mod = lambda step, *extra: steps_module(step, workdir, source_dir, customers, *extra)  # noqa: E731
    as_of = AS_OF.isoformat()
    before = [
        Step("dbt-parse", "dbt parse, cold, then partial (the state later runs find)", PIPELINE, mod("dbt-parse"))
    ]
    separate = [
        Step("ingest", "ingest (all source files staged)", PIPELINE, mod("ingest")),
        Step("gate", "raw quality gate (validate, publish)", PIPELINE, mod("gate")),
        Step("dbt-build", "dbt build, every model and data test (partial parse)", PIPELINE, mod("dbt-build")),
        Step("scores", "scores (train, score, write marts)", PIPELINE, mod("scores")),
    ]
    after = [
        # The weekly flow's training; `kizuna run` again after it (bench/run.py) scores with the stored model.
        Step("train-scores", "train scores (the weekly train-scores flow)", PIPELINE, mod("train-scores")),
        Step(
            "ref-sql",
            "reference: one DuckDB SQL statement (bench/revenue/reference.sql)",
            REFERENCE,
            bench_script(
                "bench/revenue/reference_sql.py", str(warehouse), str(workdir / "kpis_sql.csv"), "--as-of", as_of
            ),
        ),
        Step("dbt-revenue", "dbt build, revenue marts only (partial parse)", REFERENCE, mod("dbt-revenue")),
        Step(
            "pandas",
            "reference: pandas as an analyst writes it (bench/revenue/pandas_kpis.py)",
            REFERENCE,
            bench_script(
                "bench/revenue/pandas_kpis.py", str(warehouse), str(workdir / "kpis_pandas.csv"), "--as-of", as_of
            ),
        ),
        Step(
            "selection",
            "campaign selection, all email campaigns (bench/campaigns/bench_select.py)",
            PIPELINE,
            bench_script("bench/campaigns/bench_select.py", "--warehouse", str(warehouse)),
            parse_selection,
        ),
        *message_steps(messages, measured),
    ]
    if smoke:
        return [], [s for s in separate if s.name in SMOKE_STEPS], [s for s in after if s.name in SMOKE_STEPS]
    return before, separate, after


def message_steps(messages: int, measured: int) -> list[Step]:
    """Render, deliver and load events, measured on ``measured`` messages (their rates do not depend on how
    many there are); each step's time at this size is the size's ``messages`` at the measured rate."""
    n = str(measured)
    delivery = "bench/delivery/bench_delivery.py"
    return [
        Step(
            "render",
            "render the whole message, one core (bench/render/bench_render.py)",
            MESSAGES,
            bench_script("bench/render/bench_render.py", "--n", str(min(measured, 5000)), "--rounds", "2"),
            parse_render,
            count=messages,
        ),
        Step(
            "deliver",
            "deliver to the stand-in answering at once (pooled, 16 in flight)",
            MESSAGES,
            bench_script(delivery, "--n", n, "--rounds", "1", "--cases", "pooled:16:0"),
            parse_delivery,
            count=messages,
        ),
        Step(
            "deliver-50ms",
            "deliver to the stand-in answering in 50 ms (pooled, 128 in flight)",
            MESSAGES,
            bench_script(delivery, "--n", n, "--rounds", "1", "--cases", "pooled:128:slow", "--delay", "0.05"),
            parse_delivery,
            count=messages,
        ),
        Step(
            "events-load",
            "load events into the warehouse, 2 per message (bench/events/bench_loader.py)",
            MESSAGES,
            [PYTHON, "-m", "bench.events.bench_loader", "--events", str(2 * measured)],
            parse_loader,
            count=2 * messages,
        ),
    ]


_LOG_LINE = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d+) \| \w+\s+\| (Task run|Flow run) '([^']+)' - (Beginning flow run|Finished in state)",
    re.M,
)


def parse_e2e(stdout: str, step: Step) -> dict[str, Any]:
    """Where `kizuna run`'s time went, from Prefect's log lines: each task from the end of the one before (the
    flow is sequential), campaigns together, and the windows (local seconds of day) to split its memory by.
    Also the number of task runs: tens, not thousands, is the target."""
    events = []
    for h, m, sec, kind, name, what in _LOG_LINE.findall(stdout):
        events.append((int(h) * 3600 + int(m) * 60 + float(sec), kind, name, what))
    begin = next((e for e in events if e[3] == "Beginning flow run"), None)
    if begin is None:
        return {}
    phases: dict[str, float] = {}
    windows: dict[str, list[float]] = {}
    last = begin[0]
    for at, kind, name, _ in events:
        if kind != "Task run":
            continue
        phase = "campaigns" if name.startswith("campaign-") else re.sub(r"-[0-9a-f]{3}$", "", name)
        phases[phase] = round(phases.get(phase, 0.0) + (at - last) % 86400, 2)  # % 86400: past midnight
        windows.setdefault(phase, [last, at])[1] = at
        last = at
    ended = [e[0] for e in events if e[1] == "Flow run" and e[3] == "Finished in state"]
    windows["flow"] = [begin[0], ended[-1] if ended else last]
    tasks = {e[2] for e in events if e[1] == "Task run"}
    return {
        "task_runs": len(tasks),
        "flow_seconds": round((windows["flow"][1] - begin[0]) % 86400, 1),
        "phases": phases,
        "windows": windows,
    }


def parse_run_log(var_dir: Path, step: Step) -> dict[str, Any]:
    """parse_e2e on the last `kizuna run` log under var_dir/logs (named by start time): the console shows only the
    summary, the Prefect lines the phases come from are in the run's own log (docs/operations.md)."""
    runs = sorted((var_dir / "logs").glob("run-*.log"))
    return parse_e2e(runs[-1].read_text(encoding="utf-8", errors="replace"), step) if runs else {}


# The flow's tasks and the steps they are in the tables.
E2E_STEPS = {"ingest": "ingest", "quality-gate": "gate", "dbt-build": "dbt-build", "score": "scores"}


def end_to_end(
    customers: int,
    workdir: Path,
    source_dir: Path,
    prefect_home: Path,
    *,
    as_of: date = AS_OF,
    name: str = "e2e",
    extra: tuple[str, ...] = (),
) -> Step:
    """`kizuna run` on a fresh warehouse with the dbt partial-parse state of the steps' run (as on any day after
    the first), the temporary Prefect server on an already migrated PREFECT_HOME, delivery to the outbox.
    `name` and `extra` (e.g. --full-refresh) for the day-2 runs on a copy of day 1's warehouse and var/."""
    kizuna = Path(PYTHON).with_name("kizuna")
    command = [str(kizuna)] if kizuna.exists() else [PYTHON, "-m", "kizuna.cli"]
    return Step(
        name,
        "`kizuna run` end to end" + (f" ({name})" if name != "e2e" else ""),
        END_TO_END,
        [
            *command,
            "run",
            "--source-dir",
            str(source_dir),
            "--warehouse",
            str(workdir / "warehouse.duckdb"),
            "--as-of",
            as_of.isoformat(),
            *extra,
        ],
        env={
            "KIZUNA_VAR_DIR": str(workdir / "var"),
            "KIZUNA_OUTBOX_DIR": str(workdir / "var" / "outbox"),
            "KIZUNA_EVENTS_DIR": str(workdir / "var" / "events"),
            "KIZUNA_SEND_WINDOW": "00:00-24:00",
            "KIZUNA_SEND_ON_BUSINESS_DAYS_ONLY": "false",
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": None,  # unset: the temporary server, as a plain `kizuna run` starts it
        },
        parse=parse_e2e,
        reads=(source_dir, workdir),
    )


# Day 2: the realistic next day (`kizuna demo-data --next-day-of`) run on a copy of day 1's warehouse and var/,
# incrementally and with --full-refresh, one after the other (bench/run.py Harness.day_two).
DAY2_RUNS = {"e2e-day2": (), "e2e-day2-full": ("--full-refresh",)}


def next_day_step(customers: int, day1_source: Path, out: Path) -> Step:
    """The realistic next day's export of `day1_source`, written to `out` (reported apart, like demo data)."""
    return Step(
        "next-day",
        "the realistic next day's export (apart: not in end to end)",
        DATA,
        steps_module("next-day", out, day1_source, customers),
    )


def daily_end_to_end(first: Step) -> Step:
    """The same `kizuna run` once the weekly model is stored in its var/: what every day after the first costs."""
    env = dict(first.env or {})
    # a fresh outbox too: the outbox answers a key it already holds without writing the message again
    env["KIZUNA_OUTBOX_DIR"] = str(Path(str(env["KIZUNA_OUTBOX_DIR"])).with_name("outbox-daily"))
    return replace(first, name="e2e-daily", label="`kizuna run` end to end, the weekly model stored", env=env)


IMPORTS = {
    "python itself": "pass",
    "kizuna CLI (typer, rich, settings)": "import kizuna.cli",
    "the daily flow (prefect + kizuna library)": "import flows.daily",
    "dbt-core + dbt-duckdb": "from dbt.cli.main import dbtRunner; import dbt.adapters.duckdb",
    "Great Expectations": "import great_expectations",
}


def fixed_steps(workdir: Path, *, smoke: bool, receiver_seconds: float, official_messages: int) -> list[Step]:
    """Costs that do not grow with customers: imports, Prefect's server and tasks, the receiver's rate, and the
    official SendGrid client (the default transport) next to the pooled one."""
    steps = [
        Step(f"import:{label}", f"import {label}", "fixed", [PYTHON, "-m", "bench.harness.run_code", code])
        for label, code in IMPORTS.items()
    ]
    if smoke:
        return steps[:1]
    steps.append(
        Step(
            "events-receive",
            "webhook receiver, signatures checked, 8 senders, 500 events per POST (bench/events/bench_receiver.py)",
            "fixed",
            [
                PYTHON,
                "-m",
                "bench.events.bench_receiver",
                "--seconds",
                str(receiver_seconds),
                "--batch",
                "500",
                "--threads",
                "8",
            ],
            parse_receiver,
        )
    )
    steps.append(
        Step(
            "deliver-official",
            "deliver with the official sendgrid client (the default transport), at once, 16 in flight",
            "fixed",
            bench_script(
                "bench/delivery/bench_delivery.py",
                "--n",
                str(official_messages),
                "--rounds",
                "1",
                "--cases",
                "official:16:0",
            ),
            parse_delivery,
            count=official_messages,
        )
    )
    home = workdir / "prefect-home"
    for name, label in (("prefect-first", "fresh PREFECT_HOME (migrations)"), ("prefect", "migrated PREFECT_HOME")):
        steps.append(
            Step(
                name,
                f"Prefect temporary server start and 200 tasks, {label}",
                "fixed",
                steps_module("prefect", workdir, workdir, 0, "--tasks", "200"),
                env={"PREFECT_HOME": str(home), "PREFECT_API_URL": None},
            )
        )
    return steps
