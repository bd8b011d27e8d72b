"""The `kizuna` command line: thin Typer commands over the library and the flows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kizuna.runtime import quiet_third_parties
from kizuna.settings import Settings

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
    from kizuna.dates import parse_as_of

    try:
        return parse_as_of(value, settings.timezone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[str], None]]:
    """A progress bar whose callback advances one step and shows the current item."""
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=False) as progress:
        task_id = progress.add_task(description, total=total)

        def step(item: str) -> None:
            progress.update(task_id, advance=1, description=f"{description}: {item}")

        yield step
        progress.update(task_id, description=f"{description}: done")


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    return typer.Exit(code=1)


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
def ingest(source_dir: SourceDir = None, warehouse: Warehouse = None, full_refresh: FullRefresh = False) -> None:
    """Stage the sources (files, or pulls by the connectors in sources.yaml) in the incoming schema."""
    from kizuna.connectors.base import ConnectorError
    from kizuna.sources.contract import TABLES
    from kizuna.sources.errors import SourceContractError, SourceError
    from kizuna.sources.ingest import stage_sources

    settings = _settings(source_dir, warehouse, full_refresh)
    try:
        with _progress("ingest", len(TABLES)) as step:
            result = stage_sources(settings, progress=step)
    except (SourceContractError, SourceError, ConnectorError) as exc:
        raise _fail(exc) from exc
    for staged in result.staged:
        console.print(f"{staged.file}: {staged.rows:,} rows ({staged.encoding})")
    if result.skipped:
        console.print(f"skipped (no file): {', '.join(result.skipped)}")
    console.print("staged; run `kizuna check` to gate and publish it")


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
) -> None:
    """Run the quality gate on the staged load and publish it to raw if no critical check fails."""
    from kizuna.quality.gate import GateFailedError, gate_and_publish
    from kizuna.quality.suites import load_suites

    settings = _settings(warehouse=warehouse)
    day = _as_of(as_of, settings)
    try:
        with _progress("quality gate", len(load_suites(settings.expectations_dir, "raw"))) as step:
            verdict = gate_and_publish(
                settings, day, accept_drop=accept_drop, accept_outliers=accept_outliers, progress=step
            )
    except (GateFailedError, RuntimeError) as exc:
        raise _fail(exc) from exc
    if verdict.normalised:
        console.print(verdict.describe_changes(), highlight=False)
    console.print(f"{sum(r.success for r in verdict.results)} checks passed, {len(verdict.warnings)} warnings")
    if verdict.warnings:
        console.print(verdict.describe_failures(), highlight=False)
    for table, rows in verdict.quarantined.items():
        console.print(f"{table}: {rows} rows moved to quarantine.rows")
    console.print(f"published to raw; report: {verdict.report}")


@app.command()
def build(warehouse: Warehouse = None, as_of: AsOf = None) -> None:
    """Build and test the dbt models on the warehouse."""
    from kizuna import dbt_runner
    from kizuna.tracking.loader import ensure_tracking_tables
    from kizuna.warehouse import connect

    settings = _settings(warehouse=warehouse)
    day = _as_of(as_of, settings)
    with connect(settings.warehouse) as con:
        ensure_tracking_tables(con, settings.templates_dir)  # ops tables the engagement models read, intent links
    try:
        with _progress("dbt build", None) as step:
            result = dbt_runner.build(settings, day, on_node=lambda n: step(n.name.split(".")[-1]))
    except dbt_runner.DbtBuildError as exc:
        raise _fail(exc) from exc
    console.print(
        f"{result.count('model')} models built, {result.count('test') + result.count('unit_test')} tests passed"
    )


@app.command()
def run(
    source_dir: SourceDir = None, warehouse: Warehouse = None, as_of: AsOf = None, full_refresh: FullRefresh = False
) -> None:
    """Run the daily flow: ingest → gate → dbt build → campaigns → summary."""
    from flows.daily import daily

    settings = _settings(source_dir, warehouse, full_refresh)
    day = _as_of(as_of, settings)
    try:
        summary = daily(
            source_dir=str(settings.source_dir), warehouse=str(settings.warehouse), as_of=day, full_refresh=full_refresh
        )
    except Exception as exc:
        raise _fail(exc) from exc
    console.print(Markdown(summary.to_markdown()))


from kizuna.cli_templates import app as templates_app  # noqa: E402

app.add_typer(templates_app, name="templates")
from kizuna.cli_ops import app as ops_app  # noqa: E402

app.add_typer(ops_app, name="prefect")
from kizuna.cli_report import app as report_app  # noqa: E402

app.add_typer(report_app)  # report, studio, sql, export, docs, call-list at the top level
from kizuna.cli_campaigns import app as campaigns_app  # noqa: E402

app.add_typer(campaigns_app, name="campaigns")
from kizuna import cli_events  # noqa: E402

app.add_typer(cli_events.app, name="events")
from kizuna.cli_ledger import app as ledger_app  # noqa: E402

app.add_typer(ledger_app, name="ledger")
from kizuna.cli_scores import app as scores_app  # noqa: E402

app.add_typer(scores_app)  # score at the top level
from kizuna.cli_sources import app as sources_app  # noqa: E402

app.add_typer(sources_app, name="sources")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
