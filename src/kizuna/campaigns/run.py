"""One campaign's run: select recipients, claim them in the ledger, render every message, then deliver."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from kizuna.campaigns import holds, ledger
from kizuna.campaigns.context import recipient_context
from kizuna.campaigns.delivery import deliver
from kizuna.campaigns.select import Selection, select_recipients
from kizuna.campaigns.spec import Campaign, check_template
from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.locks import connect_once_free
from kizuna.core.settings import Settings
from kizuna.core.warehouse import table_exists
from kizuna.email.backends import make_backend
from kizuna.email.message import (
    EmailBackend,
    OutgoingMessage,
    build_message,
)
from kizuna.email.render import TemplateRenderer
from kizuna.quality.gate import GateNotPassedError, assert_latest_gate_passed
from kizuna.quality.recipients import check_recipients
from kizuna.reporting.summary import CampaignSummary
from kizuna.transform.builds import assert_latest_build_passed

__all__ = ["deliver", "make_backend", "run_campaign"]

log = logging.getLogger(__name__)
OWNER_DIGEST_TEMPLATE = "owner_digest"  # what an account executive gets under owner_policy owner_digest
# Up to this many rendered messages are kept between the check-everything pass and sending; above it each
# batch is rendered again (≈ 10 s per 100,000 at ≈ 10,000/s) rather than holding hundreds of MB.
KEEP_RENDERED = 20_000
# One renderer per process for the day's campaigns (docs/delivery.md, "One renderer per process"): layouts,
# meta.yml and the inlining proofs are built once, not per campaign.
_RENDERERS: dict[tuple[object, ...], TemplateRenderer] = {}
_RENDERERS_LOCK = threading.Lock()


def _templates_version(templates_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under templates/ with its mtime and size: any edit, addition or removal changes it."""
    found = []
    for root, dirs, files in os.walk(templates_dir):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(root, name))
            found.append((os.path.join(root, name), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def shared_renderer(settings: Settings) -> TemplateRenderer:
    """The process's renderer for these settings and this version of the template files; a new one when any
    file under templates/ changed since (so an edit between two campaigns shows in the second, at once)."""
    secret = hashlib.sha256(settings.unsubscribe_secret.get_secret_value().encode("utf-8")).hexdigest()
    key = (
        settings.templates_dir,
        settings.sender_name,
        settings.sender_email,
        settings.sender_postal_address,
        settings.sender_contact,
        settings.unsubscribe_url,
        secret,
        settings.template_max_loop_iterations,
        settings.template_max_text_chars,
        settings.template_render_seconds,
        _templates_version(settings.templates_dir),
    )
    with _RENDERERS_LOCK:
        renderer = _RENDERERS.pop(key, None) or TemplateRenderer.from_settings(settings)
        _RENDERERS[key] = renderer  # the most recently used last
        if len(_RENDERERS) > 4:  # settings or files changed in a long-lived worker: keep only recent ones
            del _RENDERERS[next(iter(_RENDERERS))]
        return renderer


def _rows_to_send(con: Connection, run_id: str, campaign: str, keys: list[str]) -> list[dict[str, Any]]:
    """This run's recipient row behind each pending key."""
    if not keys:
        return []
    cur = con.execute(
        f"""
        SELECT * FROM {ops.CAMPAIGN_RECIPIENTS.name}
        WHERE run_id = ? AND campaign = ? AND is_selected AND message_key IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY message_key""",
        [run_id, campaign, keys],
    )
    names = [d[0] for d in cur.description]
    return [recipient_context(dict(zip(names, row, strict=True))) for row in cur.fetchall()]


def campaign_message(
    renderer: TemplateRenderer, campaign: Campaign, run_id: str, row: dict[str, Any]
) -> OutgoingMessage:
    assert campaign.template is not None  # only email campaigns are delivered; the spec enforces a template
    template = OWNER_DIGEST_TEMPLATE if row.get("variant") == "owner_digest" else campaign.template
    rendered = renderer.render(template, row["locale"] or campaign.locale, row)
    message = build_message(
        rendered,
        row["email"],
        row["contact_name"] or "",
        row["message_key"],
        cc=[row["cc_email"]] if row.get("cc_email") else (),  # owner_policy cc_owner
        reply_to=row.get("from_email") or None,
        custom_args={"campaign": campaign.name, "run_id": run_id},
    )
    if row.get("from_email"):  # owner_policy send_from_owner: the account executive is the sender
        message = dataclasses.replace(message, from_email=row["from_email"], from_name=rendered.from_name)
    return message


def previous_selected(con: Connection, campaign: str, run_id: str) -> int | None:
    """How many contacts the campaign's previous run selected to send to (None if it never ran)."""
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE is_selected) FROM {ops.CAMPAIGN_RECIPIENTS.name}
            WHERE campaign = ? AND run_id = (SELECT max(run_id) FROM {ops.CAMPAIGN_RECIPIENTS.name}
                                             WHERE campaign = ? AND run_id < ?)""",
        [campaign, campaign, run_id],
    ).fetchone()
    has_previous = con.execute(
        f"SELECT count(*) FROM {ops.CAMPAIGN_RECIPIENTS.name} WHERE campaign = ? AND run_id < ?", [campaign, run_id]
    ).fetchone()
    return int(row[0]) if row and has_previous and has_previous[0] else None


def hold_reason(settings: Settings, selected: int, previous: int | None, ever_sent: bool) -> str | None:
    """Why this run must wait for a person: its first send, or an audience far from the previous run's."""
    if not ever_sent:
        return "first send of this campaign"
    if previous is not None and previous > 0:
        change = (selected - previous) / previous
        if abs(change) > settings.audience_growth_hold:
            return f"audience changed {change:+.0%} against the previous run ({previous} → {selected})"
    return None


def _stop_before_sending(
    con: Connection,
    settings: Settings,
    campaign: Campaign,
    run_id: str,
    selection: Selection,
    backend: EmailBackend,
    requested_by: str | None,
) -> CampaignSummary | None:
    """The kill switch and approval holds: a summary when this run must not send now, else None."""

    def stopped(status: str, note: str) -> CampaignSummary:
        return CampaignSummary(
            campaign.name,
            selection.selected,
            selection.excluded,
            0,
            0,
            holdout=selection.holdout,
            status=status,
            note=note,
        )

    if settings.sending_disabled:
        return stopped("killed", "KIZUNA_SENDING_DISABLED is set: nothing is sent")
    needs_approval = settings.approval_required == "always" or (
        settings.approval_required == "auto" and backend.name != "outbox"
    )
    if not needs_approval or selection.selected == 0:
        return None
    decided = holds.get_hold(con, run_id, campaign.name)
    if decided is not None and decided.status == "approved":
        return None
    if decided is not None and decided.status == "rejected":
        return stopped("rejected", "a person rejected this run's send")
    ever_sent = bool(ledger.counts(con, campaign.name).get("accepted"))
    previous = previous_selected(con, campaign.name, run_id)
    reason = hold_reason(settings, selection.selected, previous, ever_sent)
    if reason is None:
        return None
    held = holds.hold(con, run_id, campaign.name, reason, selection.selected, previous, requested_by)
    log.warning(
        "%s: held for approval (%s); someone other than %s approves with: %s",
        campaign.name,
        reason,
        held.requested_by,
        holds.approve_command(run_id, campaign.name),
    )
    return stopped("held", held.reason)


def assert_marts_usable(con: Connection) -> None:
    """Nothing goes out (no email, no call list) unless the latest load passed the quality gate and the latest
    dbt build passed: after a failed build the marts are the previous day's, or half-built. Says which failed
    and when."""
    try:
        assert_latest_gate_passed(con)
    except GateNotPassedError as exc:
        row = (
            con.execute(
                "SELECT max(checked_at) FROM ops.gate_results WHERE load_id = (SELECT max(load_id) FROM ops.gate_results)"
            ).fetchone()
            if table_exists(con, ops.GATE_RESULTS.schema, ops.GATE_RESULTS.table)
            else None
        )
        when = f" (checked at {row[0]:%Y-%m-%d %H:%M} UTC)" if row and row[0] else ""
        raise GateNotPassedError(f"{exc}{when}") from None
    assert_latest_build_passed(con)


def _call_list(settings: Settings, campaign: Campaign, run_id: str, as_of: date) -> CampaignSummary:
    """A campaign that sends nothing: today's accounts for reps, in ops.call_list and as a CSV."""
    from kizuna.campaigns.call_list import build_call_list, export_call_list_csv
    from kizuna.reporting.call_list_xlsx import write_call_list

    with connect_once_free(settings.warehouse_target, wait_seconds=settings.warehouse_wait_seconds) as con:
        assert_marts_usable(con)
        summary = build_call_list(con, campaign, run_id, as_of)
        path = settings.var_dir / "call_lists" / f"{as_of.isoformat()}-{campaign.name}.csv"
        export_call_list_csv(con, run_id, campaign.name, path)
        if summary.selected:
            # For reps: colour bands, grouped by owner; this campaign's rows only (a run's campaigns share its id).
            write_call_list(con, path.with_suffix(".xlsx"), run_id, campaign.locale, campaign=campaign.name)
    summary.note = f"{summary.note}; {path} (.xlsx beside it)"
    return summary


def run_campaign(
    settings: Settings,
    campaign: Campaign,
    run_id: str,
    as_of: date,
    *,
    backend: EmailBackend | None = None,
    renderer: TemplateRenderer | None = None,
    on_sent: Callable[[int], None] | None = None,
    requested_by: str | None = None,
) -> CampaignSummary:
    """Select, claim, render and deliver one campaign; never sends a message key twice.

    Every message is rendered before the first is sent, so a template mistake stops the campaign with
    nothing delivered (its claims are released for the next run). What an earlier run left in 'sending'
    becomes 'unknown' first (see kizuna.campaigns.ledger): it is never resent blindly. A run held for approval
    records `requested_by` (default: this process's login), who may then not approve it (four eyes).
    """
    if campaign.kind == "call_list":
        return _call_list(settings, campaign, run_id, as_of)
    renderer = renderer or shared_renderer(settings)
    check_template(campaign, renderer.templates())  # before selecting: a missing template could never send
    own_backend = backend is None
    backend = backend or make_backend(settings)
    try:
        with connect_once_free(settings.warehouse_target, wait_seconds=settings.warehouse_wait_seconds) as con:
            assert_marts_usable(con)  # never send from a load that failed the gate, or marts whose build failed
            ledger.ensure_ledger(con)
            interrupted = ledger.recover_interrupted(con, campaign.name, backend.name, backend.idempotent_per_key)
            if interrupted:
                log.warning("%s: %d sends interrupted by an earlier run are now unknown", campaign.name, interrupted)
            selection = select_recipients(con, campaign, run_id, as_of, settings)
            stopped = _stop_before_sending(con, settings, campaign, run_id, selection, backend, requested_by)
            if stopped is not None:
                return stopped
            check_recipients(con, settings, run_id, campaign.name)  # the send gate: raises, nothing sent
            ledger.claim(con, run_id, campaign.name, backend.name)
            ledger.release_stale(con, run_id, campaign.name)
            rows = _rows_to_send(con, run_id, campaign.name, ledger.pending_keys(con, campaign.name, run_id))

            def make(row: dict[str, Any]) -> OutgoingMessage:
                return campaign_message(renderer, campaign, run_id, row)

            try:  # the check-everything pass: nothing is sent unless every message renders
                kept = [make(row) for row in rows] if len(rows) <= KEEP_RENDERED else None
                if kept is None:
                    for row in rows:
                        make(row)
            except Exception:
                ledger.release(con, run_id, campaign.name)
                raise

            totals = deliver(
                con,
                backend,
                rows,
                make,
                rendered=kept,
                concurrency=settings.send_concurrency,
                batch_size=settings.send_batch_size,
                on_progress=on_sent,
            )
            left = len(ledger.pending_keys(con, campaign.name, run_id))
    finally:
        if own_backend:
            backend.close()
    return CampaignSummary(
        campaign.name,
        selection.selected,
        selection.excluded,
        sent=totals.get("accepted", 0),
        failed=totals.get("failed_permanent", 0),
        left_pending=left,
        unknown=totals.get("unknown", 0),
        holdout=selection.holdout,
        note=selection.note,
    )
