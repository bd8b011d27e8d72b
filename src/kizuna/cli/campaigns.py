"""`kizuna campaigns ...`: list, preview, send, and decide holds, over the campaign library."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kizuna.cli.common import AsOf, Warehouse, business_day, fail, waiting_for_warehouse
from kizuna.core.settings import Settings, settings_with

app = typer.Typer(help="Campaigns: who gets what, and why.", no_args_is_help=True)
console = Console()


def _templates(settings: Settings) -> list[str]:
    """The template folders a campaign's `template:` may name, as sending finds them."""
    from kizuna.email.render import TemplateRenderer

    return TemplateRenderer.from_settings(settings).templates()


@app.command("list")
def list_campaigns() -> None:
    """Every campaign file, enabled or not, with its audience in one line; a broken file as its error."""
    from kizuna.campaigns.spec import CampaignFileError, load_campaign

    settings = Settings()
    try:
        templates = _templates(settings)
    except ValueError as exc:  # e.g. KIZUNA_UNSUBSCRIBE_URL without its placeholder: the renderer names it
        raise fail(exc) from exc
    broken = 0
    for path in sorted(settings.campaigns_dir.glob("*.yml")):
        try:
            c = load_campaign(path, templates)
        except CampaignFileError as exc:  # the others still list; the exit code says something is wrong
            broken += 1
            fail(exc)
            continue
        audience = ", ".join(f"{k}={v}" for k, v in c.audience.model_dump(exclude_none=True).items())
        state = "enabled" if c.enabled else "disabled"
        console.print(
            f"{c.name} [{c.kind}, {state}] template={c.template or '-'} owners={c.owner_policy} "
            f"holdout={c.holdout_percent:g}%\n    {audience}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if broken:
        raise typer.Exit(code=1)


@app.command()
def preview(
    name: str,
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (stable keys) instead of tables.")] = False,
) -> None:
    """Who would get NAME today and why: counts, excluded by reason, a sample, the change since the last run."""
    from kizuna.campaigns.preview import preview_campaign
    from kizuna.campaigns.spec import CampaignFileError, find_campaign
    from kizuna.core.warehouse import connect

    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings)
    try:
        campaign = find_campaign(settings.campaigns_dir, name, _templates(settings))
        with connect(settings.warehouse_target) as con:
            result = preview_campaign(con, settings, campaign, day)
    except (CampaignFileError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    if as_json:
        print(result.to_json())  # plain stdout: machines read this
        return
    change = "" if result.previous_treatment is None else f" (previous run: {result.previous_treatment})"
    console.print(f"{campaign.name} as of {result.as_of}: {result.treatment} to send{change}, {result.holdout} holdout")
    for reason, count in sorted(result.excluded.items()):
        console.print(f"  excluded {reason}: {count}")
    table = Table("customer", "contact", "email", "variant", "excluded", "why selected")
    for row in result.sample:
        table.add_row(
            str(row["customer_id"]),
            str(row["contact_id"] or "-"),
            str(row["email"] or "-"),
            row["variant"],
            row["exclusion_reason"] or "",
            json.dumps(row["reasons"], ensure_ascii=False),
        )
    console.print(table)


@app.command()
def send(
    name: str,
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    dry_run: Annotated[bool, typer.Option(help="Select and render every message; send and record nothing.")] = False,
    run_id: Annotated[
        str | None, typer.Option(help="Resume this run (e.g. after `kizuna campaigns approve`); default: a new run.")
    ] = None,
) -> None:
    """Run NAME now (outside the daily flow): select, check, and send through the configured backend."""
    from kizuna.campaigns.preview import preview_campaign
    from kizuna.campaigns.run import run_campaign
    from kizuna.campaigns.spec import find_campaign
    from kizuna.core.warehouse import connect
    from kizuna.sources.ingest import new_load_id

    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings)
    try:
        campaign = find_campaign(settings.campaigns_dir, name, _templates(settings))
        if dry_run:
            out = settings.var_dir / "dry-run" / f"{campaign.name}-{day.isoformat()}"
            with connect(settings.warehouse_target) as con:
                result = preview_campaign(con, settings, campaign, day, render_to=out)
            console.print(f"dry run: {result.rendered} messages rendered, none sent; samples in {out}")
            return
        run_id_used = run_id or new_load_id()
        with waiting_for_warehouse(settings):
            summary = run_campaign(settings, campaign, run_id_used, day)
    except typer.Exit:  # the wait for the warehouse gave up and said so
        raise
    except Exception as exc:  # every failure is reported the same way: what, and nothing was sent beyond it
        raise fail(exc) from exc
    console.print(
        f"{summary.campaign}: {summary.status}; {summary.sent} sent, {summary.failed} failed, {summary.unknown} unknown"
        + (f" — {summary.note}" if summary.note else ""),
        highlight=False,
        soft_wrap=True,
    )
    if summary.status == "held":
        _print_approval(run_id_used, campaign.name)


def _print_approval(run_id: str, campaign: str) -> None:
    """How to approve a held run, as a command to paste (markup off: rich would eat its brackets and quotes)."""
    from kizuna.campaigns.holds import approve_command, current_user

    console.print(
        f"    someone other than {current_user()} approves with: {approve_command(run_id, campaign)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("holds")
def list_holds(warehouse: Warehouse = None) -> None:
    """Campaign runs waiting for approval, each with the command that approves it."""
    from kizuna.campaigns.holds import approve_command, waiting_holds
    from kizuna.core.warehouse import connect

    with connect(settings_with(warehouse=warehouse).warehouse_target) as con:
        waiting = waiting_holds(con)
    if not waiting:
        console.print("no campaign is waiting for approval")
    for h in waiting:
        console.print(
            f"{h.run_id}  {h.campaign}: {h.selected} recipients — {h.reason} (started by {h.requested_by or '?'})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        console.print(
            f"    approve: {approve_command(h.run_id, h.campaign)}", highlight=False, markup=False, soft_wrap=True
        )


def _decide(run_id: str, campaign: str, decision: str, by: str, warehouse: str | None) -> None:
    from kizuna.campaigns.holds import HoldError, decide
    from kizuna.core.warehouse import connect

    settings = settings_with(warehouse=warehouse)
    try:
        with waiting_for_warehouse(settings), connect(settings.warehouse_target) as con:
            decide(con, run_id, campaign, decision, by, allow_self=settings.approval_allow_self)  # type: ignore[arg-type]
    except HoldError as exc:
        raise fail(exc) from exc
    console.print(
        f"{campaign} in run {run_id}: {decision}; `kizuna campaigns send {campaign} --run-id {run_id}` acts on it"
    )


@app.command()
def approve(
    run_id: str, campaign: str, by: Annotated[str, typer.Option(help="Who approves.")], warehouse: Warehouse = None
) -> None:
    """Approve a held run of a campaign."""
    _decide(run_id, campaign, "approved", by, warehouse)


@app.command()
def reject(
    run_id: str, campaign: str, by: Annotated[str, typer.Option(help="Who rejects.")], warehouse: Warehouse = None
) -> None:
    """Reject a held run of a campaign: it never sends."""
    _decide(run_id, campaign, "rejected", by, warehouse)
