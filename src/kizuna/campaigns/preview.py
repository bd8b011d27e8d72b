"""Previewing a campaign: who would get it and why, without recording or sending anything."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kizuna.campaigns.context import recipient_context
from kizuna.campaigns.run import campaign_message, previous_selected
from kizuna.campaigns.select import select_recipients
from kizuna.campaigns.spec import Campaign
from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.settings import Settings
from kizuna.email.render import TemplateRenderer

SAMPLE = 10


@dataclass
class Preview:
    campaign: str
    as_of: str
    treatment: int
    holdout: int
    excluded: dict[str, int]
    previous_treatment: int | None
    sample: list[dict[str, Any]] = field(default_factory=list)
    rendered: int = 0
    written: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True, default=str)


def preview_campaign(
    con: Connection,
    settings: Settings,
    campaign: Campaign,
    as_of: date,
    *,
    render_to: Path | None = None,
) -> Preview:
    """Run the selection inside a transaction that is rolled back: counts, a sample with reasons, the change
    against the previous run; with `render_to`, every message is rendered (a dry run) and a few are written."""
    run_id = "preview"
    con.execute("BEGIN TRANSACTION")
    try:
        previous = previous_selected(con, campaign.name, "\uffff") if _has_runs(con) else None
        selection = select_recipients(con, campaign, run_id, as_of, settings)
        cur = con.execute(
            f"""SELECT customer_id, customer_name, contact_id, email, variant, NULL AS exclusion_reason, reasons
                FROM {ops.CAMPAIGN_RECIPIENTS.name} WHERE run_id = ? AND campaign = ?
                UNION ALL
                SELECT customer_id, customer_name, contact_id, email, variant, exclusion_reason, reasons
                FROM {ops.CAMPAIGN_EXCLUSIONS.name} WHERE run_id = ? AND campaign = ?
                ORDER BY exclusion_reason NULLS FIRST, customer_id, contact_id LIMIT {SAMPLE}""",
            [run_id, campaign.name, run_id, campaign.name],
        )
        names = [d[0] for d in cur.description]
        sample = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for row in sample:
            row["reasons"] = json.loads(row["reasons"] or "{}")
        result = Preview(
            campaign.name,
            as_of.isoformat(),
            selection.selected,
            selection.holdout,
            selection.excluded,
            previous,
            sample,
        )
        if render_to is not None and campaign.kind == "email":
            result.rendered, result.written = _dry_run(con, settings, campaign, run_id, render_to)
    finally:
        con.execute("ROLLBACK")
    return result


def _has_runs(con: Connection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ops' AND table_name = 'campaign_recipients'"
    ).fetchone()
    return bool(row and row[0])


def _dry_run(con: Connection, settings: Settings, campaign: Campaign, run_id: str, out: Path) -> tuple[int, list[str]]:
    """Render every treatment message (so a template mistake shows now); write the first few as .eml."""
    from kizuna.email.outbox import OutboxBackend

    renderer = TemplateRenderer.from_settings(settings)
    cur = con.execute(
        f"SELECT * FROM {ops.CAMPAIGN_RECIPIENTS.name} WHERE run_id = ? AND campaign = ? AND is_selected ORDER BY message_key",
        [run_id, campaign.name],
    )
    names = [d[0] for d in cur.description]
    rows = [recipient_context(dict(zip(names, r, strict=True))) for r in cur.fetchall()]
    messages = [campaign_message(renderer, campaign, run_id, row) for row in rows]
    outbox = OutboxBackend(out)
    written = [str(outbox.path_for(m)) for m in messages[:SAMPLE]]
    for message in messages[:SAMPLE]:
        outbox.send(message)
    return len(messages), written
