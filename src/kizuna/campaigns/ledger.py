"""The send ledger: one row per send_id (message_key), moved through its states so nothing goes out twice.

    pending ──(one UPDATE per batch, before any request)──▶ sending ──▶ accepted          (provider id)
       ▲                                                      │  ├──▶ failed_permanent  (refused; reason)
       └──────────── deferred: provably not sent ◀────────────┘  └──▶ unknown           (may be queued)

A run claims its selection as pending, turns what an earlier run left in 'sending' into 'unknown' (it was
killed between marking and recording, so the provider may have queued those messages), sends only its own
pending keys, and records every answer. Accepted and unknown keys are never claimed again; failed_permanent
keys are (the provider refused them, so no copy exists). With a backend that is idempotent per key (the
outbox) leftovers in 'sending' go back to pending instead: sending them again cannot make a second copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.warehouse import table_exists
from kizuna.email.sendgrid import redact_api_keys

STATES = ops.LEDGER_STATES
# Keys in these states are done for good: selection reports them as already_sent, claim skips them.
SETTLED_STATES = ("sending", "accepted", "unknown")

Outcome = tuple[str, str, str | None, str | None]  # (send_id, state, provider_message_id, error)
# Written by the events loader (kizuna.tracking.loader).
# SendGrid retries a webhook delivery for 24 hours: events of a queued message can arrive that late.
WEBHOOK_RETRY_HOURS = 24


def ensure_ledger(con: Connection) -> None:
    """The ledger, empty when new; a ledger from before the sending/unknown states is migrated (kizuna.core.ops)."""
    ops.ensure(con, ops.SEND_LEDGER)


def claim(con: Connection, run_id: str, campaign: str, backend: str) -> int:
    """Record this run's selected recipients as pending; return how many keys are pending for this run.

    New keys are inserted; keys still pending from an earlier run (never attempted) and keys refused
    before (failed_permanent) are taken over by this run. Keys in sending, accepted or unknown are left
    alone. Committed before anything is sent.
    """
    con.execute(
        f"""
        INSERT INTO {ops.SEND_LEDGER.name} (message_key, campaign, contact_id, email, occasion, run_id, state, backend,
                                    claimed_at)
        SELECT message_key, campaign, contact_id, email, occasion, run_id, 'pending', ?, timezone('UTC', now())
        FROM {ops.CAMPAIGN_RECIPIENTS}
        WHERE run_id = ? AND campaign = ? AND is_selected
        ON CONFLICT (message_key) DO UPDATE
            SET state = 'pending', run_id = excluded.run_id, backend = excluded.backend, email = excluded.email,
                error = NULL, claimed_at = excluded.claimed_at
            WHERE send_ledger.state IN ('pending', 'failed_permanent')""",
        [backend, run_id, campaign],
    )
    return len(pending_keys(con, campaign, run_id))


def recover_interrupted(con: Connection, campaign: str, backend: str, idempotent: bool) -> int:
    """Settle what an earlier, killed run left in 'sending'; return how many rows became unknown.

    Those requests may have reached the provider, so they become 'unknown' (never resent blindly), unless
    this backend is idempotent per key and sent them itself: then they go back to pending.
    """
    if idempotent:
        con.execute(
            f"UPDATE {ops.SEND_LEDGER.name} SET state = 'pending', sending_at = NULL "
            "WHERE campaign = ? AND state = 'sending' AND backend = ?",
            [campaign, backend],
        )
    row = con.execute(
        f"""
        UPDATE {ops.SEND_LEDGER.name}
        SET state = 'unknown', finished_at = timezone('UTC', now()),
            error = 'interrupted after marking sending (run ' || run_id || '); the provider may have queued it: '
                    || 'reconcile with processed events'
        WHERE campaign = ? AND state = 'sending'
        RETURNING 1""",
        [campaign],
    ).fetchall()
    return len(row)


def release(con: Connection, run_id: str, campaign: str) -> None:
    """Drop this run's claims that were never attempted (e.g. a template failed to render)."""
    con.execute(
        f"DELETE FROM {ops.SEND_LEDGER.name} WHERE run_id = ? AND campaign = ? AND state = 'pending' AND attempts = 0",
        [run_id, campaign],
    )


def release_stale(con: Connection, run_id: str, campaign: str) -> None:
    """Drop never-attempted pending keys of earlier runs that this run did not select (e.g. opted out since)."""
    con.execute(
        f"DELETE FROM {ops.SEND_LEDGER.name} WHERE campaign = ? AND state = 'pending' AND run_id <> ? AND attempts = 0",
        [campaign, run_id],
    )


def pending_keys(con: Connection, campaign: str, run_id: str) -> list[str]:
    """This run's keys still to send."""
    rows = con.execute(
        f"SELECT message_key FROM {ops.SEND_LEDGER.name} WHERE campaign = ? AND run_id = ? AND state = 'pending' "
        "ORDER BY message_key",
        [campaign, run_id],
    ).fetchall()
    return [r[0] for r in rows]


def mark_sending(con: Connection, keys: Sequence[str]) -> None:
    """One UPDATE for a batch, committed before its first request: a crash from here on leaves 'sending'."""
    if keys:
        con.execute(
            f"""
            UPDATE {ops.SEND_LEDGER.name}
            SET state = 'sending', attempts = attempts + 1, sending_at = timezone('UTC', now()), error = NULL
            WHERE state = 'pending' AND message_key IN (SELECT unnest(?::VARCHAR[]))""",
            [list(keys)],
        )


def mark(con: Connection, outcomes: Sequence[Outcome]) -> None:
    """Record (send_id, state, provider_message_id, error) for a batch in one UPDATE; pending means deferred."""
    if not outcomes:
        return
    bad = {o[1] for o in outcomes} - {"pending", "accepted", "failed_permanent", "unknown"}
    if bad:
        raise ValueError(f"not a final ledger state: {sorted(bad)}")
    keys, states, ids, errors = (list(col) for col in zip(*outcomes, strict=True))
    # Whatever a backend or an unforeseen exception said, no key is stored (e.g. a header error quoting it).
    errors = [None if e is None else redact_api_keys(" ".join(str(e).split()))[:1000] for e in errors]
    con.execute(
        f"""
        UPDATE {ops.SEND_LEDGER.name} AS l
        SET state = o.state, provider_message_id = o.provider_message_id, error = o.error,
            finished_at = CASE WHEN o.state = 'pending' THEN NULL ELSE timezone('UTC', now()) END
        FROM (SELECT unnest(?::VARCHAR[]) AS message_key, unnest(?::VARCHAR[]) AS state,
                     unnest(?::VARCHAR[]) AS provider_message_id, unnest(?::VARCHAR[]) AS error) AS o
        WHERE l.message_key = o.message_key AND l.state = 'sending'""",
        [keys, states, ids, errors],
    )


def reconcile_unknown(con: Connection, processed: Mapping[str, str]) -> int:
    """Unknown keys seen in provider events (send_id → provider message id) become accepted; return how many.

    Feed it the send_id and sg_message_id of SendGrid ``processed`` (or any later) events.
    """
    if not processed:
        return 0
    rows = con.execute(
        f"""
        UPDATE {ops.SEND_LEDGER.name} AS l
        SET state = 'accepted', provider_message_id = p.provider_message_id,
            error = 'reconciled from provider events after: ' || coalesce(l.error, 'unknown'),
            finished_at = timezone('UTC', now())
        FROM (SELECT unnest(?::VARCHAR[]) AS message_key, unnest(?::VARCHAR[]) AS provider_message_id) AS p
        WHERE l.message_key = p.message_key AND l.state = 'unknown'
        RETURNING 1""",
        [list(processed), list(processed.values())],
    ).fetchall()
    return len(rows)


def retry_unknown(con: Connection, keys: Sequence[str]) -> int:
    """A person's decision that these unknown keys were not queued (no events after days): back to failed.

    They are then claimed by the next run that selects them. Never call this automatically.
    """
    rows = con.execute(
        f"""
        UPDATE {ops.SEND_LEDGER.name} SET state = 'failed_permanent', error = 'unknown released for retry by an operator'
        WHERE state = 'unknown' AND message_key IN (SELECT unnest(?::VARCHAR[]))
        RETURNING 1""",
        [list(keys)],
    ).fetchall()
    return len(rows)


def counts(con: Connection, campaign: str) -> dict[str, int]:
    """Ledger rows of a campaign by state."""
    rows = con.execute(f"SELECT state, count(*) FROM {ops.SEND_LEDGER.name} WHERE campaign = ? GROUP BY 1", [campaign])
    return {str(r[0]): int(r[1]) for r in rows.fetchall()}


@dataclass(frozen=True)
class UnknownSend:
    """One ledger row in 'unknown', with what the loaded webhook events say about it."""

    send_id: str
    campaign: str
    contact_id: str
    run_id: str
    since: datetime | None  # when it became unknown (UTC)
    error: str | None
    events: int  # loaded events carrying this send_id: any means SendGrid queued it
    provider_message_id: str | None  # from those events (the X-Message-Id part of sg_message_id)


def _events_ready(con: Connection) -> bool:
    return table_exists(con, ops.EMAIL_EVENTS.schema, ops.EMAIL_EVENTS.table)


def unknown_sends(con: Connection, campaign: str | None = None) -> list[UnknownSend]:
    """Every 'unknown' row (of one campaign, or all), oldest first, with the loaded events that mention it."""
    evidence = (
        # the earliest event's message id; array_agg(...)[1] rather than arg_min: the same on DuckDB and PostgreSQL
        f"""SELECT coalesce(send_id, message_key) AS send_id, count(*) AS events,
                   (array_agg(split_part(sg_message_id, '.', 1) ORDER BY coalesce(event_timestamp, 0), sg_event_id)
                       FILTER (WHERE sg_message_id IS NOT NULL))[1] AS provider_message_id
            FROM {ops.EMAIL_EVENTS.name} WHERE coalesce(send_id, message_key) IS NOT NULL GROUP BY 1"""
        if _events_ready(con)
        else "SELECT NULL::VARCHAR AS send_id, 0 AS events, NULL::VARCHAR AS provider_message_id WHERE false"
    )
    rows = con.execute(
        f"""
        WITH evidence AS ({evidence})
        SELECT l.message_key, l.campaign, l.contact_id, l.run_id, l.finished_at, l.error,
               coalesce(e.events, 0), e.provider_message_id
        FROM {ops.SEND_LEDGER.name} AS l LEFT JOIN evidence AS e ON e.send_id = l.message_key
        WHERE l.state = 'unknown' AND (? IS NULL OR l.campaign = ?)
        ORDER BY l.finished_at NULLS FIRST, l.message_key""",
        [campaign, campaign],
    ).fetchall()
    return [UnknownSend(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5], int(r[6]), r[7]) for r in rows]


def reconcile_from_events(con: Connection, campaign: str | None = None) -> int:
    """Unknown sends that loaded webhook events mention become accepted (SendGrid queued them); return how many.

    Any event counts (processed, delivered, deferred, bounce, dropped, ...): each means SendGrid accepted the
    request. Run `kizuna events load` first so the latest events are in the warehouse.
    """
    found = {
        u.send_id: u.provider_message_id or "from webhook events" for u in unknown_sends(con, campaign) if u.events
    }
    return reconcile_unknown(con, found)


def last_events_load(con: Connection) -> datetime | None:
    """When events were last loaded into the warehouse (UTC), None if never."""
    if not table_exists(con, ops.EMAIL_EVENTS_CURSOR.schema, ops.EMAIL_EVENTS_CURSOR.table):
        return None
    row = con.execute(f"SELECT max(updated_at) FROM {ops.EMAIL_EVENTS_CURSOR.name}").fetchone()
    return row[0] if row else None


@dataclass
class Release:
    """What `release_unknown` did: released send ids, and each refused one with why."""

    released: list[str]
    refused: dict[str, str]


def release_unknown(
    con: Connection,
    send_ids: Sequence[str],
    *,
    now: datetime,
    min_age_hours: float = 2 * WEBHOOK_RETRY_HOURS,
    check_events: bool = True,
) -> Release:
    """A person's decision, checked: release unknown sends that were provably not queued (see retry_unknown).

    A send is refused when it is not unknown, when a loaded event mentions it (SendGrid queued it: reconcile
    instead), when it became unknown less than ``min_age_hours`` ago, or (``check_events``) when events were
    last loaded before SendGrid's webhook retries for it were over, so its events could still be on the way.
    ``now`` is naive UTC, like the ledger's timestamps.
    """
    unknown = {u.send_id: u for u in unknown_sends(con)}
    loaded_at = last_events_load(con)
    refused: dict[str, str] = {}
    chosen: list[str] = []
    for send_id in dict.fromkeys(send_ids):
        send = unknown.get(send_id)
        if send is None:
            refused[send_id] = "not unknown (no such send, or already settled)"
        elif send.events:
            refused[send_id] = f"{send.events} webhook events show SendGrid queued it: run `kizuna ledger reconcile`"
        elif send.since is not None and now - send.since < timedelta(hours=min_age_hours):
            refused[send_id] = (
                f"unknown for {(now - send.since).total_seconds() / 3600:.1f} h only, less than {min_age_hours:g} h: "
                "its events may still arrive"
            )
        elif check_events and (
            loaded_at is None
            or (send.since is not None and loaded_at < send.since + timedelta(hours=WEBHOOK_RETRY_HOURS))
        ):
            when = loaded_at.isoformat(sep=" ", timespec="minutes") if loaded_at else "never"
            refused[send_id] = (
                f"events last loaded {when}, before SendGrid's {WEBHOOK_RETRY_HOURS} h of webhook retries for it "
                "ended: run `kizuna events load` first"
            )
        else:
            chosen.append(send_id)
    retry_unknown(con, chosen)
    return Release(chosen, refused)
