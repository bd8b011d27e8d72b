"""`kizuna ledger …`: look at sends left 'unknown', reconcile them from webhook events, release the rest by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from kizuna.cli.common import Warehouse, fail, waiting_for_warehouse
from kizuna.core.settings import Settings, settings_with

app = typer.Typer(
    help="The send ledger: sends left 'unknown' (a 5xx, a timeout, a killed run), reconciled or released.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

CampaignOption = Annotated[str | None, typer.Option("--campaign", help="Only this campaign's sends.")]


def _settings(warehouse: str | None) -> Settings:
    """Settings for a warehouse that must exist already: the ledger is in it."""
    settings = settings_with(warehouse=warehouse)
    if settings.warehouse_missing:
        raise fail(f"no warehouse at {settings.warehouse_label} (KIZUNA_WAREHOUSE)")
    return settings


def _loaded_line(loaded_at: datetime | None) -> str:
    if loaded_at is None:
        return "webhook events: never loaded (is `kizuna events serve` receiving and `kizuna events load` running?)"
    return f"webhook events last loaded {loaded_at.isoformat(sep=' ', timespec='minutes')} UTC"


@app.command()
def unknown(campaign: CampaignOption = None, warehouse: Warehouse = None) -> None:
    """List sends in 'unknown': since when, why, and whether loaded webhook events show SendGrid queued them."""
    from kizuna.campaigns import ledger
    from kizuna.core.warehouse import connect

    with connect(_settings(warehouse).warehouse_target) as con:
        ledger.ensure_ledger(con)
        sends = ledger.unknown_sends(con, campaign)
        loaded_at = ledger.last_events_load(con)
    console.print(_loaded_line(loaded_at), highlight=False)
    if not sends:
        console.print("no unknown sends" + (f" for {campaign}" if campaign else ""))
        return
    for s in sends:  # one line each, never cut: people copy the send ids into `kizuna ledger release`
        since = s.since.isoformat(sep=" ", timespec="minutes") if s.since else "?"
        console.print(
            f"{s.send_id}  {s.campaign}  {s.contact_id}  run {s.run_id}  unknown since {since} UTC  "
            f"{s.events} events  {s.error or ''}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    queued = sum(1 for s in sends if s.events)
    console.print(
        f"{len(sends)} unknown: {queued} with events (`kizuna ledger reconcile` marks them accepted), "
        f"{len(sends) - queued} without (after {2 * ledger.WEBHOOK_RETRY_HOURS} h, `kizuna ledger release` "
        "lets the next run send them)",
        highlight=False,
    )


@app.command()
def reconcile(campaign: CampaignOption = None, warehouse: Warehouse = None) -> None:
    """Mark unknown sends accepted where loaded webhook events show SendGrid queued them (run `events load` first)."""
    from kizuna.campaigns import ledger
    from kizuna.core.warehouse import connect

    settings = _settings(warehouse)
    with waiting_for_warehouse(settings), connect(settings.warehouse_target) as con:
        ledger.ensure_ledger(con)
        done = ledger.reconcile_from_events(con, campaign)
        left = len(ledger.unknown_sends(con, campaign))
        loaded_at = ledger.last_events_load(con)
    console.print(_loaded_line(loaded_at), highlight=False)
    console.print(f"{done} unknown sends reconciled as accepted; {left} still unknown", highlight=False)


@app.command()
def release(
    send_ids: Annotated[list[str] | None, typer.Argument(help="send_id values from `kizuna ledger unknown`.")] = None,
    campaign: CampaignOption = None,
    all_: Annotated[bool, typer.Option("--all", help="With --campaign: every unknown send of it.")] = False,
    older_than_hours: Annotated[
        float, typer.Option(min=0, help="Release only sends unknown for at least this long.")
    ] = 48.0,
    skip_event_check: Annotated[
        bool,
        typer.Option(
            "--skip-event-check",
            help="Release although events were not loaded since (no webhook set up: you checked SendGrid's "
            "Email Activity by hand).",
        ),
    ] = False,
    warehouse: Warehouse = None,
) -> None:
    """Your decision that unknown sends were never queued: the next run that selects the contact sends them.

    Refused, each with its reason: sends that are not unknown, that webhook events mention (reconcile them),
    that are younger than --older-than-hours, or whose events could still be on the way.
    """
    from kizuna.campaigns import ledger
    from kizuna.core.warehouse import connect

    if not send_ids and not (campaign and all_):
        err.print("name send ids, or use --campaign NAME --all", highlight=False)
        raise typer.Exit(code=2)
    settings = _settings(warehouse)
    with waiting_for_warehouse(settings), connect(settings.warehouse_target) as con:
        ledger.ensure_ledger(con)
        chosen = list(send_ids or []) or [s.send_id for s in ledger.unknown_sends(con, campaign)]
        result = ledger.release_unknown(
            con,
            chosen,
            now=datetime.now(UTC).replace(tzinfo=None),
            min_age_hours=older_than_hours,
            check_events=not skip_event_check,
        )
    for send_id in result.released:
        console.print(f"released {send_id}: failed_permanent, the next run that selects the contact sends it")
    for send_id, why in result.refused.items():
        err.print(f"not released {send_id}: {why}", highlight=False)
    console.print(f"{len(result.released)} released, {len(result.refused)} refused", highlight=False)
    if send_ids and result.refused:
        raise typer.Exit(code=1)
