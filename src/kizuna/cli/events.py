"""`kizuna events …`: run the SendGrid webhook receiver and load its events into the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kizuna.cli.common import Warehouse, fail, flow_warehouse
from kizuna.core.settings import Settings, settings_with

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
        raise fail(exc) from exc
    err.print(f"storing events in {settings.events_dir}; listening on http://{host}:{port}/sendgrid/events")
    # One process: the store has one writer per folder (a second receiver on it refuses to start).
    uvicorn.run(asgi, host=host, port=port, workers=1, access_log=False, log_level="info")


@app.command()
def load(
    events_dir: Annotated[Path | None, typer.Option(help="Event store (default: KIZUNA_EVENTS_DIR).")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Run the events-load flow once: new stored events into ops.email_events, exactly once."""
    from flows.events_load import events_load

    settings = settings_with(warehouse=warehouse)
    with flow_warehouse(settings) as warehouse_parameter:
        result = events_load(events_dir=str(events_dir) if events_dir else None, warehouse=warehouse_parameter)
    console.print(result.describe(), highlight=False)


@app.command("send-test")
def send_test(
    url: Annotated[str, typer.Option(help="The receiver's events URL.")] = "http://127.0.0.1:8025/sendgrid/events",
    key_file: Annotated[
        Path | None,
        typer.Option(help="Test private key (PEM), made on first use (default: KIZUNA_VAR_DIR/webhook-test-key.pem)."),
    ] = None,
    print_public_key: Annotated[
        bool,
        typer.Option(
            "--print-public-key", help="Print only the key for KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY; post nothing."
        ),
    ] = False,
    event: Annotated[
        list[str] | None, typer.Option("--event", help="Only these event types (repeat it); default: all 11.")
    ] = None,
    email: Annotated[str, typer.Option(help="Address of the sample events (it ends up in ops.suppressions).")] = (
        "kizuna-send-test@example.invalid"
    ),
) -> None:
    """Sign sample SendGrid events with a local test key and post them to a running receiver.

    The receiver must hold the test key's public half:
    `KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY=$(kizuna events send-test --print-public-key) kizuna events serve`.
    """
    import httpx

    from kizuna.tracking.send_test import EVENT_KINDS, TEST_CAMPAIGN, post_signed, sample_events
    from kizuna.tracking.signature import WebhookKeyError, WebhookSigner

    settings = Settings()
    path = key_file or settings.var_dir / "webhook-test-key.pem"
    kinds = tuple(event or EVENT_KINDS)
    if unknown := sorted(set(kinds) - set(EVENT_KINDS)):
        raise typer.BadParameter(f"{', '.join(unknown)}: not a SendGrid event type ({', '.join(EVENT_KINDS)})")
    try:
        signer, created = WebhookSigner.load_or_create(path)
    except (WebhookKeyError, ValueError, OSError) as exc:
        raise fail(f"test key {path}: {exc}") from exc
    setting = f"KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY={signer.public_key_b64}"
    if created:
        err.print(f"made a test key pair in {path}; the receiver needs {setting}", highlight=False, soft_wrap=True)
    if print_public_key:
        console.print(signer.public_key_b64, highlight=False, soft_wrap=True)
        return
    configured = settings.sendgrid_webhook_public_key
    if configured and "".join(configured.split()) != signer.public_key_b64:
        err.print(
            "note: KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY here is another key; a receiver started with it answers 403",
            highlight=False,
            soft_wrap=True,
        )
    try:
        result = post_signed(url, sample_events(kinds, email), signer)
    except httpx.HTTPError as exc:
        raise fail(f"no receiver at {url} ({exc}); start `kizuna events serve`") from exc
    if result.status == 200:
        console.print(
            f"{url}: 200 {result.text}: {result.events} signed events ({', '.join(kinds)}) stored; "
            f"`kizuna events load` loads them (campaign {TEST_CAMPAIGN}, address {email})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    hint = f"; start the receiver with {setting}" if result.status == 403 else ""
    raise fail(f"{url} answered {result.status} {result.text}{hint}")
