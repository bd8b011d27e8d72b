"""The `kizuna` command line: thin Typer commands over the library and the flows."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from kizuna.core.runlog import Terminal
from kizuna.core.runtime import quiet_third_parties
from kizuna.core.settings import Settings

quiet_third_parties()

app = typer.Typer(help="kizuna: revenue from the customers you already have.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

SourceDir = Annotated[Path | None, typer.Option(help="Directory of source files (default: KIZUNA_SOURCE_DIR).")]
Warehouse = Annotated[Path | None, typer.Option(help="DuckDB file (default: KIZUNA_WAREHOUSE).")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Business date YYYY-MM-DD (default: today, Tokyo).")]
FullRefresh = Annotated[
    bool, typer.Option("--full-refresh", help="Connectors ignore their cursors and pull every record again.")
]


def _settings(source_dir: Path | None = None, warehouse: Path | None = None, full_refresh: bool = False) -> Settings:
    overrides: dict[str, object] = {}
    if full_refresh:
        overrides["full_refresh"] = True
    if source_dir is not None:
        overrides["source_dir"] = source_dir
    if warehouse is not None:
        overrides["warehouse"] = warehouse
    return Settings(**overrides)  # type: ignore[arg-type]


def _as_of(value: str | None, settings: Settings) -> date:
    from kizuna.core.dates import parse_as_of

    try:
        return parse_as_of(value, settings.timezone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Also show what goes to the run log (Prefect, dbt, Great Expectations)."),
]

# The process is the `kizuna` command's own (the console script, or main() under `python -m kizuna.cli`), not a
# test's: the run log may then keep the process's output until it exits, Prefect's and DuckDB's at-exit lines too.
_OWN_PROCESS = Path(sys.argv[0]).name == "kizuna"

# The next move for each kind of failure, where its message does not already say it.
_WHAT_TO_DO: dict[str, str] = {
    "SourceContractError": "fix the file(s) named above and run again; nothing was loaded.",
    "SourceError": "fix the source named above and run again; nothing was loaded.",
    "GateFailedError": "fix those rows in the source files (the report lists them all) and run again.",
    "ConnectorError": "check the connection and its settings (docs/sources.md), then run again; nothing was loaded.",
    "DbtBuildError": "fix the data or the model named above and run again; until then use the marts of the last "
    "good run with care (they may be partly rebuilt).",
}
_MAX_ERROR_LINES = 15


def _error_text(exc: BaseException, log: Path) -> str:
    """One message for a failed command: what and where (the error's own words), what to do, and the log."""
    from kizuna.core.warehouse import WarehouseLockedError

    lines = (str(exc) or type(exc).__name__).splitlines()
    if len(lines) > _MAX_ERROR_LINES:
        lines = [*lines[:_MAX_ERROR_LINES], f"... and {len(lines) - _MAX_ERROR_LINES} more lines in the log"]
    hint = next((_WHAT_TO_DO[c.__name__] for c in type(exc).__mro__ if c.__name__ in _WHAT_TO_DO), None)
    if hint is None and not isinstance(exc, WarehouseLockedError):  # whose message says what to do
        lines[0] = f"{type(exc).__name__}: {lines[0]}"
        hint = "this looks like a bug or a problem of the machine; the traceback is in the log."
    return "error: " + "\n".join(lines) + "\n" + (f"what to do: {hint}\n" if hint else "") + f"log: {log}\n"


@contextmanager
def _session(settings: Settings, command: str, verbose: bool) -> Iterator[Terminal]:
    """A writing command's run: library output to var/logs/<command>-<time>.log, progress and one error here."""
    from kizuna.core import runlog

    path = runlog.log_path(settings.var_dir, command)
    with runlog.session(path, verbose=verbose, restore=not _OWN_PROCESS) as term:
        try:
            yield term
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            term.display.close()
            term.err.write(f"interrupted (what a cut-off run leaves behind: docs/operations.md)\nlog: {path}\n")
            raise typer.Exit(code=130) from None
        except Exception as exc:
            traceback.print_exc()  # into the log, for whoever debugs it
            term.display.close()
            term.err.write(_error_text(exc, path))
            raise typer.Exit(code=1) from None


@contextmanager
def _writing(settings: Settings) -> Iterator[None]:
    """Wait for the warehouse as every writer does (naming whoever holds it), up to KIZUNA_WAREHOUSE_WAIT_SECONDS."""
    from kizuna.core.locks import writing

    with writing(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds):
        yield


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 42,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("var/demo-data"),
    as_of: AsOf = None,
    encoding: Annotated[str, typer.Option(help="utf-8, or cp932 as Japanese Excel writes CSV.")] = "utf-8",
    excel: Annotated[bool, typer.Option(help="Write customers.xlsx instead of customers.csv.")] = False,
) -> None:
    """Write a realistic Japanese B2B SaaS in the source contract (docs/sources.md)."""
    from kizuna.demo.generate import generate_demo_data

    day = _as_of(as_of, Settings())
    with err.status(f"generating {customers:,} customers"):
        rows = generate_demo_data(out, customers, seed, day, encoding=encoding, customers_as_excel=excel)
    for name, count in rows.items():
        console.print(f"{name}: {count:,} rows")
    console.print(f"wrote {out} (as of {day.isoformat()}, seed {seed})")


@app.command()
def ingest(
    source_dir: SourceDir = None,
    warehouse: Warehouse = None,
    full_refresh: FullRefresh = False,
    verbose: Verbose = False,
) -> None:
    """Stage the sources (files, or pulls by the connectors in sources.yaml) in the incoming schema."""
    from kizuna.core.runlog import step

    settings = _settings(source_dir, warehouse, full_refresh)
    with _session(settings, "ingest", verbose) as term:
        from kizuna.core.contract import TABLES
        from kizuna.sources.ingest import stage_sources

        with _writing(settings):
            result = stage_sources(settings, progress=step("ingest", len(TABLES)))
        term.display.close()
        for staged in result.staged:
            term.out.write(f"{staged.file}: {staged.rows:,} rows ({staged.encoding})\n")
        if result.skipped:
            term.out.write(f"skipped (no file): {', '.join(result.skipped)}\n")
        term.out.write(f"staged; run `kizuna check` to gate and publish it\nlog: {term.log}\n")


@app.command()
def check(
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    accept_drop: Annotated[
        bool, typer.Option(help="Confirm a load much smaller than the last good one (else held as suspicious).")
    ] = False,
    accept_outliers: Annotated[
        bool, typer.Option(help="Confirm values far beyond the last good load's (else held as suspicious).")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Run the quality gate on the staged load and publish it to raw if no critical check fails."""
    from kizuna.core.runlog import step

    settings = _settings(warehouse=warehouse)
    day = _as_of(as_of, settings)
    with _session(settings, "check", verbose) as term:
        from kizuna.quality.gate import gate_and_publish
        from kizuna.quality.suites import load_suites

        with _writing(settings):
            total = len(load_suites(settings.expectations_dir, "raw"))
            verdict = gate_and_publish(
                settings,
                day,
                accept_drop=accept_drop,
                accept_outliers=accept_outliers,
                progress=step("quality gate", total),
            )
        term.display.close()
        out = term.out
        if verdict.normalised:
            out.write(verdict.describe_changes() + "\n")
        out.write(f"{sum(r.success for r in verdict.results)} checks passed, {len(verdict.warnings)} warnings\n")
        if verdict.warnings:
            out.write(verdict.describe_failures() + "\n")
        for table, rows in verdict.quarantined.items():
            out.write(f"{table}: {rows} rows moved to quarantine.rows\n")
        out.write(f"published to raw; report: {verdict.report}\nlog: {term.log}\n")


@app.command()
def build(warehouse: Warehouse = None, as_of: AsOf = None, verbose: Verbose = False) -> None:
    """Build and test the dbt models on the warehouse."""
    from kizuna.core.runlog import step

    settings = _settings(warehouse=warehouse)
    day = _as_of(as_of, settings)
    with _session(settings, "build", verbose) as term:
        from kizuna.core.warehouse import connect
        from kizuna.tracking.loader import ensure_tracking_tables
        from kizuna.transform import dbt_runner

        with _writing(settings):
            with connect(settings.warehouse) as con:
                ensure_tracking_tables(con, settings.templates_dir)  # ops tables the engagement models read
            advance = step("dbt build")
            result = dbt_runner.build(settings, day, on_node=lambda n: advance(n.name.split(".")[-1]))
        term.display.close()
        tests = result.count("test") + result.count("unit_test")
        term.out.write(f"{result.count('model')} models built, {tests} tests passed\nlog: {term.log}\n")


@app.command()
def run(
    source_dir: SourceDir = None,
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    full_refresh: FullRefresh = False,
    verbose: Verbose = False,
) -> None:
    """Run the daily flow: ingest → gate → dbt build → campaigns → summary (library output goes to var/logs/)."""
    settings = _settings(source_dir, warehouse, full_refresh)
    day = _as_of(as_of, settings)
    with _session(settings, "run", verbose) as term:
        from flows.daily import daily  # imported here: Prefect sets up its logging to the run log, not the terminal

        summary = daily(
            source_dir=str(settings.source_dir), warehouse=str(settings.warehouse), as_of=day, full_refresh=full_refresh
        )
        term.display.close()
        summary.log = str(term.log)
        if term.is_terminal:
            Console(file=term.out).print(Markdown(summary.to_markdown()))
        else:
            term.out.write(summary.to_markdown())


from kizuna.cli.templates import app as templates_app  # noqa: E402

app.add_typer(templates_app, name="templates")
from kizuna.cli.prefect import app as ops_app  # noqa: E402

app.add_typer(ops_app, name="prefect")
from kizuna.cli.report import app as report_app  # noqa: E402

app.add_typer(report_app)  # report, studio, sql, export, docs, call-list at the top level
from kizuna.cli.campaigns import app as campaigns_app  # noqa: E402

app.add_typer(campaigns_app, name="campaigns")
from kizuna.cli import events as cli_events  # noqa: E402

app.add_typer(cli_events.app, name="events")
from kizuna.cli.ledger import app as ledger_app  # noqa: E402

app.add_typer(ledger_app, name="ledger")
from kizuna.cli.scores import app as scores_app  # noqa: E402

app.add_typer(scores_app)  # score at the top level
from kizuna.cli.sources import app as sources_app  # noqa: E402

app.add_typer(sources_app, name="sources")


def main() -> None:
    global _OWN_PROCESS
    _OWN_PROCESS = True
    app()


if __name__ == "__main__":
    main()
