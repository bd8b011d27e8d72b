"""`kizuna prefect …`: set up the Prefect server kizuna deploys to, check alerts and the send window."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from kizuna.cli.common import fail
from kizuna.core.settings import Settings

app = typer.Typer(help="Operating kizuna on a Prefect server: setup, alerts, send window.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool `name` unless it exists; True when it was created. Uses PREFECT_API_URL."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            pass
        else:
            if pool.type != "process":
                raise RuntimeError(
                    f"work pool {name!r} exists with type {pool.type!r}; kizuna's deployments need a process pool "
                    "(KIZUNA_WORK_POOL names another)"
                )
            return False
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="kizuna's flows run as local processes (docs/operations.md)",
                )
            )
        except ObjectAlreadyExists:  # created by a concurrent setup
            return False
    return True


@app.command()
def setup() -> None:
    """Create what kizuna's deployments need on the Prefect server (idempotent): the process work pool."""
    settings = Settings()
    try:
        created = ensure_work_pool(settings.work_pool)
    except Exception as exc:
        raise fail(exc) from exc
    console.print(f"work pool {settings.work_pool}: {'created' if created else 'already there'}")
    console.print("next: `prefect deploy --all`, then `prefect worker start --pool " + settings.work_pool + "`")


@app.command("alert-test")
def alert_test() -> None:
    """Send a test alert through KIZUNA_ALERT_WEBHOOK_URL or KIZUNA_ALERT_BLOCK."""
    from kizuna.core.alerts import AlertError, notify

    settings = Settings()
    try:
        sent = notify(settings, "kizuna: test alert", "If you can read this, kizuna's failure and hold alerts arrive.")
    except AlertError as exc:
        raise fail(exc) from exc
    if not sent:
        err.print("no alert configured: set KIZUNA_ALERT_WEBHOOK_URL or KIZUNA_ALERT_BLOCK")
        raise typer.Exit(code=1)
    console.print("alert sent")


@app.command("send-window")
def send_window(
    at: Annotated[str | None, typer.Option(help="A moment to check, ISO 8601 (default: now).")] = None,
) -> None:
    """Say whether campaigns may send now (or at --at): send window and Japanese business days."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kizuna.core.calendar import outside_send_window

    settings = Settings()
    moment = datetime.fromisoformat(at) if at else datetime.now(ZoneInfo(settings.timezone))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    reason = outside_send_window(settings, moment)
    console.print(f"{moment.isoformat()}: " + (f"no sending: {reason}" if reason else "campaigns may send"))
