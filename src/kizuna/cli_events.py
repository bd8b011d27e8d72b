"""`kizuna events …`: run the SendGrid webhook receiver and load its events into the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kizuna.settings import Settings

app = typer.Typer(
    help="SendGrid Event Webhook: receive signed events, load them into the warehouse.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; put a TLS proxy in front for SendGrid.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8025,
) -> None:
    """Receive SendGrid's signed Event Webhook on POST /sendgrid/events (health: GET /healthz)."""
    import uvicorn

    from kizuna.tracking.app import create_app
    from kizuna.tracking.signature import WebhookKeyError

    settings = Settings()
    try:
        asgi = create_app(settings)
    except WebhookKeyError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(code=1) from exc
    err.print(f"storing events in {settings.events_dir}; listening on http://{host}:{port}/sendgrid/events")
    # One process: the store has one writer per folder (a second receiver on it refuses to start).
    uvicorn.run(asgi, host=host, port=port, workers=1, access_log=False, log_level="info")


@app.command()
def load(
    events_dir: Annotated[Path | None, typer.Option(help="Event store (default: KIZUNA_EVENTS_DIR).")] = None,
    warehouse: Annotated[Path | None, typer.Option(help="DuckDB file (default: KIZUNA_WAREHOUSE).")] = None,
) -> None:
    """Run the events-load flow once: new stored events into ops.email_events, exactly once."""
    from flows.events_load import events_load

    result = events_load(
        events_dir=str(events_dir) if events_dir else None, warehouse=str(warehouse) if warehouse else None
    )
    console.print(result.describe(), highlight=False)
