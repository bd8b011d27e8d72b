"""`kizuna ledger unknown | reconcile | release`: sends a 5xx left unknown, settled from webhook events or by a person."""

from __future__ import annotations

import collections
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from starlette.testclient import TestClient
from typer.testing import CliRunner

from bench.events.loadgen import Signer
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.spec import load_campaign
from kizuna.cli import app
from kizuna.core.settings import PROJECT_DIR, Settings
from kizuna.tracking.app import create_app
from kizuna.tracking.loader import load_events
from tests.campaigns.conftest import SG_AS_OF, SgWarehouse, sg_make_warehouse, sg_settings  # noqa: F401 (fixtures)
from tests.standins.sendgrid_server import SendGridStandin, sendgrid_standin  # noqa: F401 (a fixture)
from tests.tracking.conftest import body_of, event

CAMPAIGN = PROJECT_DIR / "campaigns" / "renewal_reminder.yml"
QUEUED, LOST = "c000002@kunde.example.jp", "c000003@kunde.example.jp"


def _ledger(path: Path) -> dict[str, tuple[str, str | None, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT email, state, provider_message_id, message_key FROM ops.send_ledger").fetchall()
    finally:
        con.close()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_unknown_sends_are_listed_reconciled_from_events_and_released_by_a_person(
    sg_make_warehouse: SgWarehouse,  # noqa: F811
    sg_settings: Settings,  # noqa: F811
    sendgrid_standin: SendGridStandin,  # noqa: F811
    signer: Signer,
    tmp_path: Path,
) -> None:
    sg_make_warehouse(6)
    settings = sg_settings.model_copy(
        update={"events_dir": tmp_path / "events", "sendgrid_webhook_public_key": signer.public_key_b64}
    )
    warehouse = str(settings.warehouse)
    sendgrid_standin.state.by_address = {QUEUED: "500", LOST: "500"}  # 5xx: maybe queued, maybe not
    first = run_campaign(settings, load_campaign(CAMPAIGN), "run-1", SG_AS_OF)
    assert (first.sent, first.unknown) == (4, 2)
    queued_key, lost_key = _ledger(settings.warehouse)[QUEUED][2], _ledger(settings.warehouse)[LOST][2]

    code, out = _cli("ledger", "unknown", "--warehouse", warehouse)
    assert code == 0 and queued_key in out and lost_key in out and "never loaded" in out

    # SendGrid had queued one of them after all: its processed and delivered events reach the real receiver.
    events = [
        event(f"ev-{kind}", kind, email=QUEUED, send_id=queued_key, sg_message_id="xmsg-queued.filterdrecv-1.0")
        for kind in ("processed", "delivered")
    ]
    body = body_of(events)
    with TestClient(create_app(settings)) as client:
        assert client.post("/sendgrid/events", content=body, headers=signer.headers(body)).status_code == 200
    assert load_events(settings).inserted == 2

    code, out = _cli("ledger", "unknown", "--warehouse", warehouse)
    assert code == 0 and "1 with events" in out and "1 without" in out
    code, out = _cli("ledger", "reconcile", "--warehouse", warehouse)
    assert code == 0 and "1 unknown sends reconciled as accepted; 1 still unknown" in out, out
    assert _ledger(settings.warehouse)[QUEUED][:2] == ("accepted", "xmsg-queued")

    # Releasing is a person's decision, and refused while the send is young or its events may still come.
    code, out = _cli("ledger", "release", lost_key, "--warehouse", warehouse)
    assert code == 1 and "less than 48 h" in out, out
    code, out = _cli("ledger", "release", queued_key, "--warehouse", warehouse)
    assert code == 1 and "not unknown" in out
    code, out = _cli("ledger", "release", lost_key, "--older-than-hours", "0", "--warehouse", warehouse)
    assert code == 1 and "run `kizuna events load` first" in out, out
    assert _ledger(settings.warehouse)[LOST][0] == "unknown"

    # Three days on, the events were loaded since, and none mention it: it was never queued.
    con = duckdb.connect(warehouse)
    try:
        con.execute(
            "UPDATE ops.send_ledger SET finished_at = finished_at - INTERVAL 3 DAY WHERE message_key = ?", [lost_key]
        )
    finally:
        con.close()
    load_events(settings)  # the 15-minute load ran after the webhook's retries ended (it moves its timestamp)
    con = duckdb.connect(warehouse)
    try:
        con.execute("UPDATE ops.email_events_cursor SET updated_at = ?", [datetime.now(UTC).replace(tzinfo=None)])
    finally:
        con.close()
    code, out = _cli("ledger", "release", lost_key, "--warehouse", warehouse)
    assert code == 0 and f"released {lost_key}" in out, out
    assert _ledger(settings.warehouse)[LOST][0] == "failed_permanent"

    sendgrid_standin.state.by_address = {}
    again = run_campaign(settings, load_campaign(CAMPAIGN), "run-2", SG_AS_OF)
    assert (again.sent, again.unknown) == (1, 0)
    per_address = collections.Counter(e for a in sendgrid_standin.state.accepted for e in a.to_emails)
    assert per_address[LOST] == 1 and QUEUED not in per_address  # the queued one is never sent a second time
    code, out = _cli("ledger", "unknown", "--warehouse", warehouse)
    assert code == 0 and "no unknown sends" in out


def test_release_a_whole_campaign_takes_only_what_is_provably_unsent(tmp_path: Path) -> None:
    """A hand-made ledger: old unknown sends of two campaigns, one with an event, one too young."""
    from kizuna.tracking.loader import ensure_tracking_tables

    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        ensure_tracking_tables(con)
        for key, campaign, hours_ago in (
            ("a-old", "A", 96),
            ("a-event", "A", 96),
            ("a-young", "A", 2),
            ("b-old", "B", 96),
        ):
            con.execute(
                "INSERT INTO ops.send_ledger (message_key, campaign, contact_id, email, occasion, run_id, state, "
                "attempts, claimed_at, finished_at, error) VALUES (?, ?, 'p', 'x@example.jp', 'once', 'r1', 'unknown', "
                "1, now(), timezone('UTC', now()) - to_hours(?::BIGINT), 'SendGrid 500')",
                [key, campaign, hours_ago],
            )
        con.execute("INSERT INTO ops.email_events (sg_event_id, event, send_id) VALUES ('e1', 'processed', 'a-event')")
        con.execute("INSERT INTO ops.email_events_cursor VALUES ('store', 'seg', 0, timezone('UTC', now()))")
    finally:
        con.close()

    code, out = _cli("ledger", "unknown", "--campaign", "A", "--warehouse", str(warehouse))
    assert code == 0 and "3 unknown: 1 with events" in out and "b-old" not in out, out
    code, out = _cli("ledger", "release", "--campaign", "A", "--warehouse", str(warehouse))
    assert code == 2 and "--campaign NAME --all" in out  # never a whole campaign by accident
    code, out = _cli("ledger", "release", "--campaign", "A", "--all", "--warehouse", str(warehouse))
    assert code == 0 and "1 released, 2 refused" in out, out
    assert "not released a-event: 1 webhook events show SendGrid queued it" in out and "not released a-young" in out
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        states = dict(con.execute("SELECT message_key, state FROM ops.send_ledger").fetchall())
    finally:
        con.close()
    assert states == {"a-old": "failed_permanent", "a-event": "unknown", "a-young": "unknown", "b-old": "unknown"}
