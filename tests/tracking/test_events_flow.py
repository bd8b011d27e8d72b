"""The events-load flow on the session's Prefect harness, and the engagement marts built on what it loaded."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pytest

from flows.events_load import events_load
from kizuna import dbt_runner
from kizuna.settings import Settings
from kizuna.tracking.store import EventStore
from kizuna.warehouse import connect
from tests.tracking.conftest import event

T0 = 1_735_689_600  # 2025-01-01 00:00:00 UTC


def _ledger_row(con: duckdb.DuckDBPyConnection, send_id: str, state: str) -> None:
    con.execute(
        "INSERT INTO ops.send_ledger (message_key, campaign, contact_id, email, occasion, run_id, state, claimed_at) "
        "VALUES (?, 'renewal_notice', ?, ?, '2025-01', 'run-1', ?, ?)",
        [send_id, send_id, f"{send_id}@example.co.jp", state, datetime(2025, 1, 1)],
    )


@pytest.mark.usefixtures("prefect_harness")
def test_events_load_flow_then_engagement_marts(tracking_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EventStore(tracking_settings.events_dir)
    store.open()
    store.append(
        [
            event("p1", "processed", send_id="s1", timestamp=T0),
            event("d1", "delivered", send_id="s1", timestamp=T0 + 5),
            event("o1", "open", send_id="s1", timestamp=T0 + 6, sg_machine_open=True),
            event("c1", "click", send_id="s1", timestamp=T0 + 8, url="https://x.jp/pricing"),
            event("o2", "open", send_id="s1", timestamp=T0 + 600, sg_machine_open=False),
            event("c2", "click", send_id="s1", timestamp=T0 + 660, url="https://x.jp/pricing"),
            event("d2", "delivered", send_id="s2", timestamp=T0 + 5),
            event("u2", "unsubscribe", send_id="s2", timestamp=T0 + 900),
        ],
        received_at=datetime.now(UTC),
    )
    store.close()
    monkeypatch.setenv("KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY", tracking_settings.sendgrid_webhook_public_key or "")
    result = events_load(events_dir=str(tracking_settings.events_dir), warehouse=str(tracking_settings.warehouse))
    assert (result.inserted, result.suppressions, result.deferred) == (8, 1, False)

    with connect(tracking_settings.warehouse) as con:
        for send_id, state in [("s1", "accepted"), ("s2", "accepted"), ("s3", "pending")]:
            _ledger_row(con, send_id, state)
    built = dbt_runner.build(
        tracking_settings, date(2025, 1, 2), select="path:models/staging/email path:models/marts/engagement"
    )
    assert built.count("model") == 5 and not built.failed
    with connect(tracking_settings.warehouse, read_only=True) as con:
        s1 = con.execute(
            "SELECT delivered_at, first_open_at, first_human_open_at, first_click_at, first_human_click_at, "
            "is_first_click_scanner FROM marts.email_sends WHERE send_id = 's1'"
        ).fetchone()
        perf = con.execute(
            "SELECT sent, delivered, human_openers, human_clickers, unsubscribed, click_to_open_rate "
            "FROM marts.campaign_performance"
        ).fetchall()
    assert s1 is not None
    assert [str(v) for v in s1] == [
        "2025-01-01 00:00:05",
        "2025-01-01 00:00:06",
        "2025-01-01 00:10:00",
        "2025-01-01 00:00:08",
        "2025-01-01 00:11:00",
        "True",
    ]
    assert perf == [(2, 2, 1, 1, 1, 1.0)]


def test_marts_build_on_a_fresh_warehouse(tracking_settings: Settings) -> None:
    from kizuna.tracking.loader import ensure_tracking_tables

    with connect(tracking_settings.warehouse) as con:
        ensure_tracking_tables(con)
    with_unit_tests = tracking_settings.model_copy(update={"dbt_unit_tests": True})
    built = dbt_runner.build(
        with_unit_tests, date(2025, 1, 2), select="path:models/staging/email path:models/marts/engagement"
    )
    assert built.count("model") == 5 and built.count("unit_test") == 2
