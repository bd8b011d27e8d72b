"""Delivering a campaign through the SendGrid backend to the stand-in: ledger states, escaping, kill and re-run."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
from pathlib import Path

import pytest

from kizuna.campaigns import ledger
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.spec import Campaign, load_campaign
from kizuna.core.settings import PROJECT_DIR, Settings
from kizuna.core.warehouse import connect
from kizuna.email.outbox import OutboxBackend
from kizuna.email.render import InvalidSubjectError
from tests.campaigns.conftest import SG_AS_OF, SgWarehouse
from tests.scripts import python_script
from tests.standins.sendgrid_server import SendGridStandin

CAMPAIGN_FILE = PROJECT_DIR / "campaigns" / "renewal_reminder.yml"


def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


def ledger_states(settings: Settings) -> dict[str, str]:
    with connect(settings.warehouse) as con:
        return dict(con.execute("SELECT message_key, state FROM ops.send_ledger").fetchall())


def sends_per_address(standin: SendGridStandin) -> collections.Counter[str]:
    return collections.Counter(email for a in standin.state.accepted for email in a.to_emails)


def test_every_selected_contact_gets_one_message_with_its_send_id(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    sg_make_warehouse(60)
    summary = run_campaign(sg_settings, campaign(), "run-1", SG_AS_OF)
    assert (summary.selected, summary.sent, summary.failed, summary.unknown, summary.left_pending) == (60, 60, 0, 0, 0)
    states = ledger_states(sg_settings)
    assert set(states.values()) == {"accepted"}
    accepted = sendgrid_standin.state.accepted
    assert {a.custom_args["send_id"] for a in accepted} == set(states)
    assert {(a.custom_args["campaign"], a.custom_args["run_id"]) for a in accepted} == {("renewal_reminder", "run-1")}
    assert max(sends_per_address(sendgrid_standin).values()) == 1
    with connect(sg_settings.warehouse) as con:
        ids = con.execute("SELECT count(DISTINCT provider_message_id) FROM ops.send_ledger").fetchone()
    assert ids == (60,)

    again = run_campaign(sg_settings, campaign(), "run-2", SG_AS_OF)
    assert (again.selected, again.sent, again.excluded["already_sent"]) == (0, 0, 60)
    assert len(sendgrid_standin.state.accepted) == 60


def test_answers_become_ledger_states_and_only_refusals_are_retried(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    sg_make_warehouse(12)
    sendgrid_standin.state.by_address = {
        "c000001@kunde.example.jp": "400",
        "c000002@kunde.example.jp": "500",
        "c000003@kunde.example.jp": "hang",
    }
    first = run_campaign(sg_settings, campaign(), "run-1", SG_AS_OF)
    assert (first.sent, first.failed, first.unknown) == (9, 1, 2)
    with connect(sg_settings.warehouse) as con:
        rows = dict(
            con.execute("SELECT contact_id, state || ': ' || coalesce(error, '') FROM ops.send_ledger").fetchall()
        )
    assert rows["P-000001"].startswith("failed_permanent: SendGrid 400: stand-in told to answer 400")
    assert rows["P-000002"].startswith("unknown: SendGrid 500")
    assert rows["P-000003"].startswith("unknown: no answer")
    assert not any("SG." in r for r in rows.values())

    sendgrid_standin.state.by_address = {}
    second = run_campaign(sg_settings, campaign(), "run-2", SG_AS_OF)
    assert (second.sent, second.unknown, second.excluded["already_sent"]) == (1, 0, 11)
    received = sendgrid_standin.state.answers
    assert received["202"] == 10 and received["400"] == 1
    assert "c000002@kunde.example.jp" not in sends_per_address(sendgrid_standin)  # unknown: never resent blindly


def test_running_the_same_run_again_never_mails_past_its_cap(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    """A retried run (same run_id) keeps what it sent inside max_recipients and only makes up what failed."""
    sg_make_warehouse(10)
    capped = campaign().model_copy(update={"max_recipients": 4})
    sendgrid_standin.state.by_address = {"c000001@kunde.example.jp": "400"}
    first = run_campaign(sg_settings, capped, "run-1", SG_AS_OF)
    assert (first.selected, first.sent, first.failed) == (4, 3, 1)

    sendgrid_standin.state.by_address = {}
    again = run_campaign(sg_settings, capped, "run-1", SG_AS_OF)
    assert (again.selected, again.sent, again.excluded.get("already_sent", 0)) == (4, 1, 0)
    assert sorted(sends_per_address(sendgrid_standin)) == [f"c00000{i}@kunde.example.jp" for i in range(4)]
    assert set(ledger_states(sg_settings).values()) == {"accepted"}

    assert run_campaign(sg_settings, capped, "run-1", SG_AS_OF).sent == 0  # a third try has nothing left to send
    later = run_campaign(sg_settings, capped, "run-2", SG_AS_OF)  # another run moves on to the next contacts
    assert (later.sent, later.excluded["already_sent"]) == (4, 4)
    assert sum(sends_per_address(sendgrid_standin).values()) == 8


def test_a_customer_name_with_script_is_escaped_in_the_html_sent(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    sg_make_warehouse(3, names={1: "<script>alert('x')</script>株式会社"})
    run_campaign(sg_settings, campaign(), "run-1", SG_AS_OF)
    [sent] = [a for a in sendgrid_standin.state.accepted if a.to_emails == ["c000001@kunde.example.jp"]]
    html = next(c["value"] for c in sent.body["content"] if c["type"] == "text/html")
    assert "<script>" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_a_value_with_a_line_break_stops_the_campaign_before_anything_is_sent(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    sg_make_warehouse(5, products={3: "Kizuna\r\nBcc: victim@example.com"})
    with pytest.raises(InvalidSubjectError, match="one line"):
        run_campaign(sg_settings, campaign(), "run-1", SG_AS_OF)
    assert sendgrid_standin.state.requests == 0
    assert ledger_states(sg_settings) == {}


def test_a_killed_run_leaves_unknown_not_duplicates(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin, tmp_path: Path
) -> None:
    """SIGKILL mid-campaign, re-run: each contact got exactly one message, except those left unknown (≤ 1)."""
    recipients = 300
    sg_make_warehouse(recipients)
    sendgrid_standin.state.delay = 0.02
    env = {
        **os.environ,
        "KIZUNA_WAREHOUSE": str(sg_settings.warehouse),
        "KIZUNA_VAR_DIR": str(sg_settings.var_dir),
        "KIZUNA_EMAIL_BACKEND": "sendgrid",
        "KIZUNA_UNSUBSCRIBE_SECRET": sg_settings.unsubscribe_secret.get_secret_value(),
        "KIZUNA_SENDGRID_API_HOST": sg_settings.sendgrid_api_host,
        "KIZUNA_SENDGRID_API_KEY": "SG.subprocess-key.0123456789abcdef",
        "KIZUNA_SENDGRID_TIMEOUT_SECONDS": "2",
        "KIZUNA_SEND_CONCURRENCY": "4",
        "KIZUNA_SEND_BATCH_SIZE": "20",
        "KIZUNA_APPROVAL_REQUIRED": "never",
        "KIZUNA_SEND_RATE_PER_SECOND": "0",
    }
    script = (
        "import datetime as dt, sys\n"
        "from kizuna.campaigns.run import run_campaign\n"
        "from kizuna.campaigns.spec import load_campaign\n"
        "from kizuna.core.settings import Settings\n"
        "from pathlib import Path\n"
        "run_campaign(Settings(), load_campaign(Path(sys.argv[1])), 'run-killed', dt.date.fromisoformat(sys.argv[2]))\n"
    )
    proc = subprocess.Popen(python_script(script, str(CAMPAIGN_FILE), SG_AS_OF.isoformat()), env=env, cwd=tmp_path)
    try:
        assert sendgrid_standin.state.wait_for_requests(120, timeout=60, alive=lambda: proc.poll() is None), (
            "the sending process never got going"
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it was killed"
    interrupted = ledger_states(sg_settings)
    sending = {k for k, s in interrupted.items() if s == "sending"}
    assert sending and len(sending) <= 2 * 20  # at most two batches were between 'sending' and recorded

    summary = run_campaign(sg_settings, campaign(), "run-2", SG_AS_OF)
    final = ledger_states(sg_settings)
    unknown = {k for k, s in final.items() if s == "unknown"}
    assert len(final) == recipients and set(final.values()) <= {"accepted", "unknown"}
    assert unknown == sending  # exactly the interrupted ones, and nothing else, are unknown
    per_key = collections.Counter(a.custom_args["send_id"] for a in sendgrid_standin.state.accepted)
    assert max(sends_per_address(sendgrid_standin).values()) == 1  # nobody got two
    assert all(per_key[k] == 1 for k, s in final.items() if s == "accepted")  # everyone else got exactly one
    assert all(per_key[k] <= 1 for k in unknown)
    assert summary.sent == sum(1 for s in interrupted.values() if s == "pending")  # the rest, sent by the re-run


def test_an_idempotent_backend_finishes_what_a_killed_run_left_sending(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings
) -> None:
    sg_make_warehouse(4)
    settings = sg_settings.model_copy(update={"email_backend": "outbox"})
    outbox = OutboxBackend(settings.outbox_dir)
    with connect(settings.warehouse) as con:  # as a killed outbox run would leave it
        ledger.ensure_ledger(con)
        con.execute(
            "INSERT INTO ops.send_ledger (message_key, campaign, contact_id, email, occasion, run_id, state, backend, "
            "attempts, claimed_at) SELECT substr(sha256('renewal_reminder' || chr(31) || 'P-000000' || chr(31) || "
            "strftime(?::DATE + 10, '%Y-%m-%d')), 1, 32), 'renewal_reminder', 'P-000000', 'c000000@kunde.example.jp', "
            "'x', 'run-0', 'sending', 'outbox', 1, now()",
            [SG_AS_OF],
        )
    summary = run_campaign(settings, campaign(), "run-1", SG_AS_OF, backend=outbox)
    assert (summary.sent, summary.unknown) == (4, 0)
    assert set(ledger_states(settings).values()) == {"accepted"}
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 4


def test_a_ledger_from_before_the_new_states_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with connect(path) as con:
        con.execute("CREATE SCHEMA ops")
        con.execute(
            "CREATE TABLE ops.send_ledger (message_key VARCHAR PRIMARY KEY, campaign VARCHAR NOT NULL, "
            "contact_id VARCHAR NOT NULL, email VARCHAR NOT NULL, occasion VARCHAR NOT NULL, run_id VARCHAR NOT NULL, "
            "state VARCHAR NOT NULL CHECK (state IN ('pending', 'sent', 'failed')), backend VARCHAR, "
            "provider_message_id VARCHAR, error VARCHAR, claimed_at TIMESTAMP NOT NULL, finished_at TIMESTAMP)"
        )
        con.execute(
            "INSERT INTO ops.send_ledger VALUES ('a', 'c', 'p1', 'e', 'o', 'r', 'sent', 'outbox', 'id', NULL, now(), "
            "now()), ('b', 'c', 'p2', 'e', 'o', 'r', 'failed', 'outbox', NULL, 'x', now(), now())"
        )
        ledger.ensure_ledger(con)
        ledger.ensure_ledger(con)  # and again: nothing to do
        assert dict(con.execute("SELECT message_key, state FROM ops.send_ledger").fetchall()) == {
            "a": "accepted",
            "b": "failed_permanent",
        }
        con.execute("UPDATE ops.send_ledger SET state = 'unknown' WHERE message_key = 'b'")  # the new check holds
