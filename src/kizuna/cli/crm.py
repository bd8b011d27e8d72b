"""`kizuna crm setup` and `kizuna crm sync`: kizuna's findings as CRM account fields and tasks (docs/crm.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from kizuna.cli.common import AsOf, Warehouse, business_day, fail, waiting_for_warehouse
from kizuna.core.settings import settings_with

app = typer.Typer(help="Write-back to the CRM: account fields and owned tasks.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Say what would change; send and write nothing.")]


@app.command()
def setup(dry_run: DryRun = False) -> None:
    """Create the custom properties kizuna writes (or, with --dry-run, check them) and say what changed."""
    from kizuna import pipeline
    from kizuna.crm.target import CrmError

    settings = settings_with()
    try:
        changes = pipeline.crm_setup(settings, dry_run=dry_run)
    except (CrmError, RuntimeError) as exc:
        raise fail(exc) from None
    verb = {"create": "would create" if dry_run else "created", "ok": "ok", "conflict": "CONFLICT"}
    for change in changes:
        console.print(escape(f"{verb[change.action]:>12}  {change.field}  {change.detail}".rstrip()))
    if any(c.action == "conflict" for c in changes):
        raise fail("some fields exist with another type: kizuna cannot write them (see above)")


@app.command()
def sync(warehouse: Warehouse = None, as_of: AsOf = None, dry_run: DryRun = False) -> None:
    """Send changed account fields and create new tasks for today's call list and CSQLs (--dry-run: the diff)."""
    from kizuna import pipeline
    from kizuna.crm.target import CrmError

    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings)
    try:
        if dry_run:
            summary = pipeline.crm_sync(settings, day, dry_run=True)
        else:
            with waiting_for_warehouse(settings):
                summary = pipeline.crm_sync(settings, day)
    except (CrmError, RuntimeError) as exc:
        raise fail(exc) from None
    if dry_run:
        for line in summary.diff:
            console.print(escape(line))
    for line in summary.lines():
        console.print(escape(line))
    if summary.errors:
        raise typer.Exit(code=1)
