"""What every `kizuna` command shares: its options, how it fails, its wait for the warehouse, its run session."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from kizuna.core.runlog import Terminal
from kizuna.core.settings import WAREHOUSE_URL_ENV, Settings

err = Console(stderr=True)

SourceDir = Annotated[Path | None, typer.Option(help="Directory of source files (default: KIZUNA_SOURCE_DIR).")]
# Text, not a Path: pathlib would fold a postgresql:// URL's "//" and make it a relative file name.
Warehouse = Annotated[
    str | None,
    typer.Option(help="DuckDB file, or a PostgreSQL server as postgresql://… (default: KIZUNA_WAREHOUSE)."),
]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Business date YYYY-MM-DD (default: today, Tokyo).")]
FullRefresh = Annotated[
    bool,
    typer.Option(
        "--full-refresh",
        help="Connectors pull every record again, every file is parsed and every row gated, and dbt rebuilds its "
        "incremental models from nothing.",
    ),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Also show what goes to the run log (Prefect, dbt, Great Expectations)."),
]


@contextmanager
def flow_warehouse(settings: Settings) -> Iterator[str | None]:
    """The warehouse parameter of a flow run in this process: a DuckDB file's path; None for a server, whose URL
    reaches the flow's own settings through KIZUNA_WAREHOUSE_URL only (Prefect stores and shows parameters)."""
    if settings.warehouse_url is None:
        yield settings.warehouse_parameter
        return
    saved = os.environ.get(WAREHOUSE_URL_ENV)
    os.environ[WAREHOUSE_URL_ENV] = settings.warehouse_url.get_secret_value()
    try:
        yield None
    finally:
        if saved is None:
            os.environ.pop(WAREHOUSE_URL_ENV, None)
        else:
            os.environ[WAREHOUSE_URL_ENV] = saved


def business_day(value: str | None, settings: Settings) -> date:
    """The --as-of date (today in the business time zone when unset); a bad one is a usage error (exit 2)."""
    from kizuna.core.dates import parse_as_of

    try:
        return parse_as_of(value, settings.timezone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def fail(message: object) -> typer.Exit:
    """Say what went wrong as one `error:` line on stderr (never cut: people grep and paste it); raise the result."""
    err.print(f"[bold red]error:[/] {escape(str(message))}", markup=True, highlight=False, emoji=False, soft_wrap=True)
    return typer.Exit(code=1)


@contextmanager
def waiting_for_warehouse(settings: Settings, *, in_session: bool = False) -> Iterator[None]:
    """Wait for the warehouse as every writer does (docs/operations.md): the writer lock, then the file free of
    any reader, up to KIZUNA_WAREHOUSE_WAIT_SECONDS, announcing the wait with the holder's name.

    Inside a run session (`kizuna run/ingest/check/build`) the session shows the notice and reports giving up;
    elsewhere the notice goes to stderr and giving up is one error line, never a traceback.
    """
    from kizuna.core.locks import WarehouseBusyError, writing
    from kizuna.core.warehouse import WarehouseLockedError

    if in_session:
        with writing(settings.warehouse_target, wait_seconds=settings.warehouse_wait_seconds):
            yield
        return
    notice = logging.StreamHandler(sys.stderr)
    notice.setLevel(logging.WARNING)
    notice.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("kizuna")
    logger.addHandler(notice)
    try:
        with writing(settings.warehouse_target, wait_seconds=settings.warehouse_wait_seconds):
            logger.removeHandler(notice)
            yield
    except (WarehouseBusyError, WarehouseLockedError) as exc:
        raise fail(exc) from exc
    finally:
        logger.removeHandler(notice)


# The process is the `kizuna` command's own (the console script, or main() under `python -m kizuna.cli`), not a
# test's: the run log may then keep the process's output until it exits, Prefect's and DuckDB's at-exit lines too.
_own_process = Path(sys.argv[0]).name == "kizuna"


def own_the_process() -> None:
    """main() says the process is the command's own (see _own_process)."""
    global _own_process
    _own_process = True


# Set when a run session left descriptors 1 and 2 on its run log until the process exits (see run_session):
# whatever the interpreter's shutdown prints then goes to that log, never to the terminal.
_exit_goes_to_the_log = False


def exit_goes_to_the_log() -> bool:
    return _exit_goes_to_the_log


# The next move for each kind of failure, where its message does not already say it.
_WHAT_TO_DO: dict[str, str] = {
    "SourceContractError": "fix the file(s) named above and run again; nothing was loaded.",
    "SourceError": "fix the source named above and run again; nothing was loaded.",
    "ProjectDirError": "point KIZUNA_PROJECT_DIR at the kizuna checkout and run again; nothing was changed.",
    "GateFailedError": "fix those rows in the source files (the report lists them all) and run again.",
    "ConnectorError": "check the connection and its settings (docs/sources.md), then run again; nothing was loaded.",
    "WarehouseUnreachableError": "check that the server runs and KIZUNA_WAREHOUSE_URL's user, password, host, port "
    "and database, then run again; nothing was changed.",
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
def run_session(settings: Settings, command: str, verbose: bool) -> Iterator[Terminal]:
    """A pipeline command's run: library output to var/logs/<command>-<time>.log, progress and one error here."""
    from kizuna.core import runlog

    global _exit_goes_to_the_log
    path = runlog.log_path(settings.var_dir, command)
    _exit_goes_to_the_log = _own_process and not verbose
    with runlog.session(path, verbose=verbose, restore=not _own_process) as term:
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
