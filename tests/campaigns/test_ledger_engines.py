"""The send ledger's whole life on DuckDB and on PostgreSQL (issue 24): claims, batches, answers, a crash, events.

The same calls a campaign run and `kizuna ledger` make, on a warehouse of each engine through the one
Connection interface, with the same outcome expected of both.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from kizuna.campaigns import ledger
from kizuna.core import flow_runs, ops
from kizuna.core.connection import Connection
from kizuna.reporting.summary import sends_by_state

CAMPAIGN = "renewal_reminder"


def _select(con: Connection, run_id: str, keys: list[str], *, left_out: str | None = None) -> None:
    """What campaign selection writes: the run's recipients, selected or not."""
    rows = [(k, True) for k in keys] + ([(left_out, False)] if left_out else [])
    con.executemany(
        f"INSERT INTO {ops.CAMPAIGN_RECIPIENTS} (run_id, as_of, campaign, contact_id, email, occasion, message_key, "
        "is_selected) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (run_id, date(2026, 12, 7), CAMPAIGN, f"P-{k}", f"{k}@example.co.jp", "2026-12", k, selected)
            for k, selected in rows
        ],
    )


def _states(con: Connection) -> dict[str, tuple[str, str, int]]:
    rows = con.execute(
        f"SELECT message_key, state, run_id, attempts FROM {ops.SEND_LEDGER} ORDER BY message_key"
    ).fetchall()
    return {r[0]: (r[1], r[2], int(r[3])) for r in rows}


def test_the_send_ledger_keeps_its_promises_on_each_engine(engine_con: Connection) -> None:
    con = engine_con
    ops.ensure(con, ops.CAMPAIGN_RECIPIENTS)
    ledger.ensure_ledger(con)
    ledger.ensure_ledger(con)  # idempotent

    # Run 1 claims its three selected recipients (not the one left out) and sends a batch of two.
    _select(con, "r1", ["k1", "k2", "k3"], left_out="k9")
    assert ledger.claim(con, "r1", CAMPAIGN, "sendgrid") == 3
    ledger.mark_sending(con, ["k1", "k2"])
    ledger.mark(
        con,
        [
            ("k1", "accepted", "pm-1", None),
            ("k2", "failed_permanent", None, "401 Authorization: Bearer SG.abcdefghijklmnop.qrstuvwxyz0123456789"),
        ],
    )
    assert _states(con) == {
        "k1": ("accepted", "r1", 1),
        "k2": ("failed_permanent", "r1", 1),
        "k3": ("pending", "r1", 0),
    }
    error = con.execute(f"SELECT error FROM {ops.SEND_LEDGER} WHERE message_key = 'k2'").fetchone()
    assert error is not None and "SG.abcdefghijklmnop" not in str(error[0])  # no API key kept

    # Run 2 selects all three again: the accepted one stays done, the refused and the never-sent are taken over.
    _select(con, "r2", ["k1", "k2", "k3"])
    assert ledger.claim(con, "r2", CAMPAIGN, "sendgrid") == 2
    assert ledger.pending_keys(con, CAMPAIGN, "r2") == ["k2", "k3"]
    ledger.mark_sending(con, ["k2"])  # ... and is killed before the answer is recorded

    # The next run finds k2 in 'sending': it may have been queued, so unknown, never resent blindly.
    assert ledger.recover_interrupted(con, CAMPAIGN, "sendgrid", idempotent=False) == 1
    unknown = ledger.unknown_sends(con)
    assert [(u.send_id, u.events) for u in unknown] == [("k2", 0)]
    assert ledger.release_unknown(con, ["k2"], now=datetime(2000, 1, 1)).refused  # too young to release

    # A webhook event shows SendGrid queued it: reconciled as accepted, with the provider's id.
    ops.ensure(con, ops.EMAIL_EVENTS)
    con.execute(
        f"INSERT INTO {ops.EMAIL_EVENTS} (sg_event_id, sg_message_id, event, event_timestamp, send_id) "
        "VALUES ('e1', 'pm-2.filter0001', 'processed', 20, 'k2'), ('e2', 'pm-2b.filter0002', 'delivered', 30, 'k2')"
    )
    assert ledger.unknown_sends(con)[0].provider_message_id == "pm-2"  # the earliest event's
    assert ledger.reconcile_from_events(con) == 1
    assert ledger.counts(con, CAMPAIGN) == {"accepted": 2, "pending": 1}
    assert sends_by_state(con) == {CAMPAIGN: {"accepted": 2, "pending": 1}}  # the run summary's section

    # The run's rows lead to its Prefect flow run: stamped once, and the ids recorded.
    assert flow_runs.stamp(con, str(ops.SEND_LEDGER), "run_id", "r2", "flow-run-2") == 2
    assert flow_runs.stamp(con, str(ops.SEND_LEDGER), "run_id", "r2", "flow-run-3") == 0
    flow_runs.record_run(con, "flow-run-2", "daily", run_id="r2", load_id=None)
    assert con.execute(f"SELECT flow, run_id FROM {ops.FLOW_RUNS}").fetchall() == [("daily", "r2")]

    # k3 was never attempted: releasing run 2's claims drops it; an earlier run's pending keys go the same way.
    ledger.release(con, "r2", CAMPAIGN)
    assert _states(con) == {"k1": ("accepted", "r1", 1), "k2": ("accepted", "r2", 2)}
    provider = con.execute(f"SELECT provider_message_id FROM {ops.SEND_LEDGER} WHERE message_key = 'k2'").fetchone()
    assert provider == ("pm-2",)
    finished = con.execute(f"SELECT finished_at FROM {ops.SEND_LEDGER} WHERE message_key = 'k2'").fetchone()
    assert finished is not None and abs(finished[0] - datetime.utcnow()) < timedelta(minutes=5)
