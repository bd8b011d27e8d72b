"""Sample customers for the studio: a campaign's current audience, else active customers, else sample_context.

Every read opens the warehouse read-only and closes it at once, so the daily run can always take the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kizuna.campaigns.context import active_customer_contexts, customer_context, has_context_marts, recipient_context
from kizuna.campaigns.spec import CampaignFileError, load_campaigns
from kizuna.core import ops
from kizuna.core.connection import Connection, WarehouseError, WarehouseLockedError
from kizuna.core.settings import Settings
from kizuna.core.sql_dialect import dialect_of
from kizuna.core.warehouse import connect, table_exists

log = logging.getLogger(__name__)

# The warehouse cannot be read now: another process holds the file, or the engine refused.
_UNREADABLE: tuple[type[Exception], ...] = (WarehouseLockedError, *WarehouseError)

SAMPLE_CONTEXT = "sample"
LIMIT = 30


@dataclass(frozen=True)
class Sample:
    key: str  # "sample", "recipient/<campaign>/<run_id>/<contact_id>" or "customer/<customer_id>"
    label: str


class UnknownSampleError(LookupError):
    """The sample key names nothing in the warehouse (any more)."""


def campaigns_using(settings: Settings, template: str) -> list[str]:
    try:
        return [c.name for c in load_campaigns(settings.campaigns_dir, enabled_only=False) if c.template == template]
    except CampaignFileError as exc:  # a broken campaign file must not close the studio
        log.warning("campaign files: %s", exc)
        return []


def list_samples(settings: Settings, template: str) -> tuple[list[Sample], str | None]:
    """The choices for a template, and a note when the warehouse could not be read."""
    samples = [Sample(SAMPLE_CONTEXT, "sample_context (meta.yml)")]
    if settings.warehouse_missing:
        return samples, f"no warehouse at {settings.warehouse_label}: only meta.yml's sample_context"
    try:
        with connect(settings.warehouse_target, read_only=True) as con:
            recipients = _recipients(con, campaigns_using(settings, template))
            if recipients:
                return samples + recipients, None
            return samples + _customers(con), None
    except _UNREADABLE as exc:
        return samples, f"warehouse not readable now ({exc}); showing sample_context only"


def _recipients(con: Connection, campaigns: list[str]) -> list[Sample]:
    if not campaigns or not table_exists(con, ops.CAMPAIGN_RECIPIENTS.schema, ops.CAMPAIGN_RECIPIENTS.table):
        return []
    dialect = dialect_of(con)
    order = ", ".join(
        [
            dialect.byte_order("r.campaign"),
            f"{dialect.byte_order('r.variant')} DESC",
            "r.days_to_renewal NULLS LAST",
            dialect.byte_order("r.customer_id"),
            dialect.byte_order("r.contact_id"),
        ]
    )
    rows = con.execute(
        f"""
        WITH latest AS (
            SELECT campaign, {dialect.last_by("run_id", "as_of")} AS run_id FROM {ops.CAMPAIGN_RECIPIENTS}
            WHERE campaign = ANY(?) GROUP BY campaign
        )
        SELECT r.campaign, r.run_id, r.contact_id, r.customer_name, r.contact_name, r.locale, r.variant
        FROM {ops.CAMPAIGN_RECIPIENTS} r JOIN latest USING (campaign, run_id)
        WHERE r.contact_id IS NOT NULL
        ORDER BY {order}
        LIMIT {LIMIT}""",
        [campaigns],
    ).fetchall()
    return [
        Sample(
            f"recipient/{campaign}/{run_id}/{contact_id}",
            f"{campaign}: {customer or '?'} / {contact or contact_id} ({locale or '-'}, {variant})",
        )
        for campaign, run_id, contact_id, customer, contact, locale, variant in rows
    ]


def _customers(con: Connection) -> list[Sample]:
    if not has_context_marts(con):
        return []
    return [
        Sample(
            f"customer/{r['customer_id']}",
            f"{r['customer_name']} / {r['contact_name'] or r['contact_id']} ({r['locale'] or '-'})",
        )
        for r in active_customer_contexts(con, LIMIT)
    ]


def sample_context(settings: Settings, sample_context: dict[str, Any], key: str) -> dict[str, Any]:
    """The template variables for a sample key.

    A campaign recipient gets exactly what the campaign run would give it (its context JSON overlaid with its
    recipient row); a customer from the marts is laid over meta.yml's sample_context, as `templates preview`.
    """
    if key == SAMPLE_CONTEXT:
        return dict(sample_context)
    kind, _, rest = key.partition("/")
    with connect(settings.warehouse_target, read_only=True) as con:
        if kind == "recipient":
            campaign, run_id, contact_id = rest.split("/", 2)
            cur = con.execute(
                f"SELECT * FROM {ops.CAMPAIGN_RECIPIENTS} WHERE campaign = ? AND run_id = ? AND contact_id = ? LIMIT 1",
                [campaign, run_id, contact_id],
            )
            row = cur.fetchone()
            if row is None:
                raise UnknownSampleError(f"{key}: not in {ops.CAMPAIGN_RECIPIENTS} any more; pick another")
            return recipient_context(dict(zip([d[0] for d in cur.description], row, strict=True)))
        if kind == "customer":
            record = customer_context(con, rest)
            if record is None:
                raise UnknownSampleError(f"{key}: customer not found in marts.customers")
            return {**sample_context, **{k: v for k, v in record.items() if v is not None}}
    raise UnknownSampleError(f"{key!r} is not a sample key")
