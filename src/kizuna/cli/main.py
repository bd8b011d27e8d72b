"""The `kizuna` command line: the root app, one group or set of top-level commands per module of kizuna.cli."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from pydantic import ValidationError

from kizuna.core.runtime import quiet_third_parties
from kizuna.core.settings import passwords_masked

quiet_third_parties()

from kizuna.cli import (  # noqa: E402  (after the defaults: libraries read them on import)
    campaigns,
    common,
    crm,
    demo,
    events,
    ledger,
    prefect,
    report,
    run,
    scores,
    sources,
    templates,
)

app = typer.Typer(help="kizuna: revenue from the customers you already have.", no_args_is_help=True)


# The daily pipeline's commands: they read dbt_project/ and expectations/ from KIZUNA_PROJECT_DIR.
_FROM_THE_CHECKOUT = ("ingest", "check", "build", "run")


@app.callback()
def _settings_readable(ctx: typer.Context) -> None:
    """Every command reads KIZUNA_* settings (the environment and .env): a value that cannot be read is said once,
    naming the variable, before any command starts, instead of a traceback from whichever command met it first.
    So is a KIZUNA_PROJECT_DIR that is no kizuna checkout, for the pipeline's commands."""
    from kizuna.core.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        _say_settings_problems(exc, lambda field: f"KIZUNA_{field.upper()}")
        raise typer.Exit(code=2) from None
    not_a_checkout = settings.checkout_problem() if ctx.invoked_subcommand in _FROM_THE_CHECKOUT else None
    if not_a_checkout:
        common.err.print(f"error: {not_a_checkout}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2)


def _say_settings_problems(exc: ValidationError, name_of: Callable[[str], str]) -> None:
    """One line per unreadable setting, named as the user gave it; never its value (it may be a secret)."""
    for problem in exc.errors(include_input=False, include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else "settings"
        message = str(problem["msg"]).removeprefix("Value error, ")
        variable = name_of(field)
        line = message if message.startswith(variable) else f"{variable}: {message}"
        common.err.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)


app.add_typer(demo.app)  # demo-data
app.add_typer(run.app)  # ingest, check, build, run
app.add_typer(templates.app, name="templates")
app.add_typer(prefect.app, name="prefect")
app.add_typer(report.app)  # report, studio, sql, export, docs, call-list
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(events.app, name="events")
app.add_typer(ledger.app, name="ledger")
app.add_typer(scores.app)  # score, train-scores
app.add_typer(sources.app, name="sources")
app.add_typer(crm.app, name="crm")


def main() -> None:
    common.own_the_process()
    args = sys.argv[1:]
    # The command line as this process shows it to what it runs: dbt writes it to its log and run_results.json.
    # Typer parses the real one; a URL's password never reaches those files (`ps` still shows the real one:
    # docs/scaling.md says to prefer KIZUNA_WAREHOUSE_URL).
    sys.argv[1:] = [passwords_masked(arg) for arg in args]
    try:
        app(args=args)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        # An option's value (--warehouse, --source-dir): the environment's were read before the command started.
        _say_settings_problems(exc, lambda field: f"--{field.replace('_', '-')}")
        raise SystemExit(2) from None
    finally:
        if common.exit_goes_to_the_log():
            _leave_quickly()


def _leave_quickly() -> None:
    """Collect garbage once, then freeze what is left: the interpreter's shutdown otherwise frees and traverses
    the half million objects of Prefect, dbt, Great Expectations and scikit-learn while it clears the modules
    (≈ 2-8 s after a `kizuna run`, before the prompt comes back). The one collection still closes what only a
    reference cycle held (a DuckDB connection, a file); atexit handlers (Prefect stopping its temporary server)
    run as before. What stays frozen is never freed, so DuckDB's extension reports its own module's types and
    functions as "nanobind: leaked" at exit: only after a run session, whose log gets it, never the terminal."""
    import gc

    gc.collect()
    # Descriptors 1 and 2 are the run log here: say why the lines that may follow are expected.
    print(
        "exit: memory left to the OS; DuckDB may list its module's objects as 'nanobind: leaked', expected",
        file=sys.stderr,
        flush=True,
    )
    gc.freeze()


if __name__ == "__main__":
    main()
