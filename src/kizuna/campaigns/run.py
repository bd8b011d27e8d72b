"""One campaign's run: select recipients, claim them in the ledger, render every message, then deliver."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import duckdb

from kizuna.campaigns import ledger
from kizuna.campaigns.select import RECIPIENTS_TABLE, select_recipients
from kizuna.campaigns.spec import Campaign
from kizuna.email.message import EmailBackend, OutgoingMessage, build_message
from kizuna.email.outbox import OutboxBackend
from kizuna.email.render import TemplateRenderer
from kizuna.settings import Settings
from kizuna.summary import CampaignSummary
from kizuna.warehouse import connect

log = logging.getLogger(__name__)
MARK_BATCH = 500


def make_backend(settings: Settings) -> EmailBackend:
    """The configured delivery backend (KIZUNA_EMAIL_BACKEND)."""
    if settings.email_backend == "outbox":
        return OutboxBackend(settings.outbox_dir)
    raise ValueError(f"KIZUNA_EMAIL_BACKEND={settings.email_backend!r} is not supported")


def _rows_to_send(con: duckdb.DuckDBPyConnection, keys: list[str]) -> list[dict[str, Any]]:
    """The recipient row behind each pending key (from the run that selected it last)."""
    if not keys:
        return []
    cur = con.execute(
        f"""
        SELECT * EXCLUDE (rn) FROM (
            SELECT r.*, row_number() OVER (PARTITION BY r.message_key ORDER BY r.run_id DESC) AS rn
            FROM {RECIPIENTS_TABLE} r
            WHERE r.message_key IN (SELECT unnest(?::VARCHAR[])) AND r.is_selected)
        WHERE rn = 1 ORDER BY message_key""",
        [keys],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _message(renderer: TemplateRenderer, campaign: Campaign, row: dict[str, Any]) -> OutgoingMessage:
    rendered = renderer.render(campaign.template, row["locale"] or campaign.locale, row)
    return build_message(
        rendered,
        row["email"],
        row["contact_name"] or "",
        row["message_key"],
        custom_args={"campaign": campaign.name},
    )


def run_campaign(
    settings: Settings,
    campaign: Campaign,
    run_id: str,
    as_of: date,
    *,
    backend: EmailBackend | None = None,
    renderer: TemplateRenderer | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> CampaignSummary:
    """Select, claim, render and deliver one campaign; never sends a message key twice.

    Every message is rendered before the first is sent, so a template mistake stops the campaign with
    nothing delivered (its claims are released for the next run). Keys left pending by an earlier crash
    are retried only through a backend that is idempotent per key; otherwise they stay pending for a
    person to reconcile, because the provider may already have queued them.
    """
    backend = backend or make_backend(settings)
    renderer = renderer or TemplateRenderer.from_settings(settings)
    with connect(settings.warehouse) as con:
        selection = select_recipients(con, campaign, run_id, as_of)
        ledger.claim(con, run_id, campaign.name, backend.name)
        keys = ledger.pending_keys(con, campaign.name, run_id, include_earlier=backend.idempotent_per_key)
        rows = _rows_to_send(con, keys)
        try:
            messages = [_message(renderer, campaign, row) for row in rows]
        except Exception:
            ledger.release(con, run_id, campaign.name)
            raise

        sent = failed = 0
        outcomes: list[tuple[str, str, str | None, str | None]] = []
        for message in messages:
            try:
                provider_id = backend.send(message)
            except Exception as exc:  # one recipient's failure must not stop the others; it is recorded
                log.warning("send failed for %s: %s", message.message_key, type(exc).__name__)
                outcomes.append((message.message_key, "failed", None, f"{type(exc).__name__}: {exc}"))
                failed += 1
            else:
                outcomes.append((message.message_key, "sent", provider_id, None))
                sent += 1
            if len(outcomes) >= MARK_BATCH:
                ledger.mark(con, outcomes)
                outcomes.clear()
                if on_sent:
                    on_sent(sent + failed)
        ledger.mark(con, outcomes)
        left = len(ledger.pending_keys(con, campaign.name, run_id, include_earlier=True))
    return CampaignSummary(campaign.name, selection.selected, selection.excluded, sent, failed, left)
