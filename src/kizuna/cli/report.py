"""`kizuna report|studio|sql|export|docs|call-list`: what analysts, marketers and reps look at."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kizuna.cli.common import AsOf, Warehouse, business_day, fail
from kizuna.core.settings import Settings, settings_with

app = typer.Typer(help="Reports, the template studio, exports and the analysts' shell.")
console = Console()
err = Console(stderr=True)

Lang = Annotated[str, typer.Option("--lang", help="ja or en.")]

NOTEBOOK_HINT = """\
From a notebook or script (read-only, so the daily run is never blocked for long):

    import duckdb
    con = duckdb.connect({path!r}, read_only=True)
    con.sql("SELECT * FROM marts.mrr_kpis_monthly ORDER BY month DESC LIMIT 12").df()
    con.close()  # release the file: the daily run needs it to write
"""


def _lang(value: str) -> str:
    if value not in ("ja", "en"):
        raise typer.BadParameter(f"--lang {value!r}: use ja or en")
    return value


@app.command()
def report(warehouse: Warehouse = None, as_of: AsOf = None, lang: Lang = "ja") -> None:
    """Write the KPI report (HTML with PNG charts) under var/reports/."""
    from kizuna.core.warehouse import WarehouseLockedError
    from kizuna.reporting.report import build_report

    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings)
    try:
        with err.status("drawing the report"):
            result = build_report(settings, day, _lang(lang))  # type: ignore[arg-type]
    except (FileNotFoundError, WarehouseLockedError) as exc:
        raise fail(exc) from exc
    for key, missing in result.missing.items():
        for line in missing:
            err.print(f"{key}: {line}", highlight=False)
    for key, error in result.errors.items():
        err.print(f"[red]{key} failed:[/] {error}", highlight=False)
    console.print(f"{len(result.png_paths)} charts")
    typer.echo(str(result.path))


@app.command()
def studio(
    port: Annotated[int | None, typer.Option(help="Port (default: KIZUNA_STUDIO_PORT, 8030).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface (default: KIZUNA_STUDIO_HOST, 127.0.0.1).")] = None,
) -> None:
    """Open the template studio: render templates for real customers, lint as you save, send yourself a copy."""
    from kizuna.studio.app import serve

    settings = Settings()
    bind = host or settings.studio_host
    if bind not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] listening on {bind}: anyone who reaches it sees customer data", markup=True)
    chosen = port or settings.studio_port
    seeds = ", ".join(settings.seed_addresses) or "none (set KIZUNA_SEED_ADDRESSES)"
    console.print(f"template studio on http://{bind}:{chosen}/ (test copies to: {seeds}); Ctrl-C stops it")
    serve(settings, bind, chosen)


@app.command()
def sql(warehouse: Warehouse = None) -> None:
    """A read-only SQL shell on the warehouse (the duckdb CLI if installed, else a minimal prompt)."""
    settings = settings_with(warehouse=warehouse)
    if settings.warehouse_url is not None:
        raise fail(f"the warehouse is a PostgreSQL server ({settings.warehouse_label}): query it with psql")
    path = settings.warehouse
    if not path.exists():
        raise fail(f"warehouse {path} does not exist yet: run `kizuna run` first")
    err.print(NOTEBOOK_HINT.format(path=str(path)), highlight=False, soft_wrap=True)
    cli = shutil.which("duckdb")
    if cli:
        raise typer.Exit(subprocess.call([cli, "-readonly", str(path)]))
    _prompt_loop(path)


def _prompt_loop(path: Path) -> None:
    """One statement per line, results as a table; an empty line or EOF ends it."""
    from kizuna.core.warehouse import WarehouseError, connect

    err.print("no duckdb CLI found: a minimal prompt (one statement per line; empty line or Ctrl-D quits)")
    with connect(path, read_only=True) as con:
        while True:
            try:
                line = input("kizuna sql> " if sys.stdin.isatty() else "").strip()
            except EOFError:
                break
            if not line:
                break
            try:
                cur = con.execute(line)
                rows = cur.fetchmany(200) if cur.description else []
            except WarehouseError as exc:
                err.print(f"[red]{exc}[/]", markup=True, highlight=False)
                continue
            if not cur.description:
                continue
            table = Table(*[d[0] for d in cur.description])
            for row in rows:
                table.add_row(*["NULL" if v is None else str(v) for v in row])
            console.print(table)


@app.command()
def export(
    mart: Annotated[str, typer.Argument(help="A table of the marts schema, e.g. customers.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or xlsx.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Output file (default: var/exports/<mart>.<format>).")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Export one mart, read-only, sorted by its grain; text a spreadsheet would run as a formula is neutralised."""
    from kizuna.core.warehouse import WarehouseLockedError
    from kizuna.reporting.export import ExportError, export_mart, exports_dir, mart_grain

    settings = settings_with(warehouse=warehouse)
    path = out or exports_dir(settings.var_dir) / f"{mart}.{fmt}"
    try:
        grain = mart_grain(settings.dbt_project_dir, mart)
        path, rows = export_mart(settings.warehouse_target, mart, fmt, path, grain)  # type: ignore[arg-type]
    except (ExportError, FileNotFoundError, WarehouseLockedError) as exc:
        raise fail(exc) from exc
    err.print(f"{rows:,} rows")
    typer.echo(str(path))


@app.command()
def docs(as_of: AsOf = None, warehouse: Warehouse = None) -> None:
    """Build dbt's documentation site (models, columns, lineage graph) into var/dbt/docs."""
    from kizuna.transform.dbt_runner import dbt_args, dbt_env

    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings)
    out = settings.var_dir / "dbt" / "docs"
    dbt = Path(sys.executable).with_name("dbt")
    if not dbt.exists():
        raise fail(f"dbt not found next to {sys.executable}; install kizuna's dependencies")
    # The last --target-path wins: docs go to their own folder, not the daily run's target.
    args = ["docs", *dbt_args(settings, "generate", ["--target-path", str(out.resolve()), "--static"])]
    env = {**os.environ, **dbt_env(settings, day)}
    # A process of its own: dbt-duckdb keeps the file open until its process ends.
    with err.status("dbt docs generate"):
        done = subprocess.run([str(dbt), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (out / "index.html").exists():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise fail(f"dbt docs generate failed (exit {done.returncode}):\n{tail}")
    err.print(
        f"open {out / 'static_index.html'} directly, or serve the folder: python -m http.server -d {out}",
        soft_wrap=True,
    )
    typer.echo(str(out / "index.html"))


@app.command("call-list")
def call_list(
    out: Annotated[Path, typer.Option(help="XLSX file to write.")] = Path("call-list.xlsx"),
    run_id: Annotated[str | None, typer.Option(help="The campaign run (default: the latest).")] = None,
    lang: Lang = "ja",
    warehouse: Warehouse = None,
) -> None:
    """Write the reps' call list (ops.call_list) as an XLSX grouped by owner."""
    from kizuna.core.warehouse import WarehouseLockedError, connect, table_exists
    from kizuna.reporting.call_list_xlsx import write_call_list

    settings = settings_with(warehouse=warehouse)
    try:
        with connect(settings.warehouse_target, read_only=True) as con:
            if not table_exists(con, "ops", "call_list"):
                raise fail("ops.call_list does not exist yet: a call-list campaign writes it during `kizuna run`")
            path, rows = write_call_list(con, out, run_id, _lang(lang))  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError, WarehouseLockedError) as exc:
        raise fail(exc) from exc
    err.print(f"{rows:,} customers")
    typer.echo(str(path))
