"""`kizuna ingest|check|build|run`: the daily pipeline's steps one by one, or the whole daily flow."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from kizuna.cli.common import (
    AsOf,
    FullRefresh,
    SourceDir,
    Verbose,
    Warehouse,
    business_day,
    flow_warehouse,
    run_session,
    waiting_for_warehouse,
)
from kizuna.core.settings import settings_with

app = typer.Typer()


# Each step command calls the kizuna.pipeline function the daily flow's task calls (imported inside the session,
# so whatever it sets up logs to the run log), so a step run by hand and the daily run cannot drift apart.


@app.command()
def ingest(
    source_dir: SourceDir = None,
    warehouse: Warehouse = None,
    full_refresh: FullRefresh = False,
    verbose: Verbose = False,
) -> None:
    """Stage the sources (files, or pulls by the connectors in sources.yaml) in the incoming schema."""
    settings = settings_with(source_dir=source_dir, warehouse=warehouse, full_refresh=full_refresh)
    with run_session(settings, "ingest", verbose) as term:
        from kizuna import pipeline

        with waiting_for_warehouse(settings, in_session=True):
            result = pipeline.ingest(settings)
        term.display.close()
        for staged in result.staged:
            what = "unchanged since the last load, not parsed" if staged.status == "unchanged" else staged.encoding
            changes = f", changes {staged.changes}" if staged.changes and staged.status != "unchanged" else ""
            rows = f"{staged.rows:,} row" + ("" if staged.rows == 1 else "s")
            term.out.write(f"{staged.file}: {rows} ({what}{changes})\n")
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
    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings)
    with run_session(settings, "check", verbose) as term:
        from kizuna import pipeline

        with waiting_for_warehouse(settings, in_session=True):
            verdict = pipeline.gate(settings, day, accept_drop=accept_drop, accept_outliers=accept_outliers)
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
def build(
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="Rebuild the incremental models from nothing (docs/incremental.md), not only changes.",
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Build and test the dbt models on the warehouse."""
    settings = settings_with(warehouse=warehouse, full_refresh=full_refresh)
    day = business_day(as_of, settings)
    with run_session(settings, "build", verbose) as term:
        from kizuna import pipeline

        with waiting_for_warehouse(settings, in_session=True):
            pipeline.prepare_marts_inputs(settings)
            result = pipeline.build(settings, day)
        term.display.close()
        tests = result.count("test") + result.count("unit_test")
        term.out.write(f"{result.count('model')} models built, {tests} tests passed\n")
        term.out.write(f"incremental models: {result.rebuilt}\nlog: {term.log}\n")


@app.command()
def run(
    source_dir: SourceDir = None,
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    full_refresh: FullRefresh = False,
    verbose: Verbose = False,
) -> None:
    """Run the daily flow: ingest → gate → dbt build → campaigns → summary (library output goes to var/logs/)."""
    settings = settings_with(source_dir=source_dir, warehouse=warehouse, full_refresh=full_refresh)
    day = business_day(as_of, settings)
    with run_session(settings, "run", verbose) as term:
        from flows.server import start_temporary_server_early

        server_started = start_temporary_server_early()  # its start-up overlaps the imports below
        from flows.daily import daily  # imported here: Prefect sets up its logging to the run log, not the terminal
        from kizuna import pipeline

        pipeline.import_step_libraries()  # while the server starts, not inside the gate and the build
        server_started()
        with flow_warehouse(settings) as warehouse_parameter:
            summary = daily(
                source_dir=str(settings.source_dir),
                warehouse=warehouse_parameter,
                as_of=day,
                full_refresh=full_refresh,
            )
        term.display.close()
        summary.log = str(term.log)
        if term.is_terminal:
            Console(file=term.out).print(Markdown(summary.to_markdown()))
        else:
            term.out.write(summary.to_markdown())
