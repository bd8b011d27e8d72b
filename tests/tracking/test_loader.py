"""The loader: exactly once, duplicates dropped, partial lines, suppressions, and a warehouse held elsewhere."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kizuna.core.settings import Settings
from kizuna.tracking import loader
from kizuna.tracking.loader import load_events
from kizuna.tracking.store import encode_batch, list_segments
from tests.tracking.conftest import event, store_events


def _query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _count(settings: Settings) -> int:
    return int(_query(settings, "SELECT count(*) FROM ops.email_events")[0][0])


def test_load_twice_loads_once(tracking_settings: Settings) -> None:
    store_events(tracking_settings, [event(f"e{i}") for i in range(5)], [event(f"f{i}", "open") for i in range(3)])
    first = load_events(tracking_settings)
    assert (first.inserted, first.duplicates, first.deferred) == (8, 0, False)
    again = load_events(tracking_settings)
    assert (again.inserted, again.lines_read) == (0, 0)
    assert _count(tracking_settings) == 8
    store_events(tracking_settings, [event("g1", "click", url="https://x.jp")])  # a restarted receiver: new segment
    assert load_events(tracking_settings).inserted == 1
    assert _count(tracking_settings) == 9
    assert len(list_segments(tracking_settings.events_dir)) == 2


def test_duplicates_sendgrid_sends_are_dropped(tracking_settings: Settings) -> None:
    original = event("e1", "click", url="https://x.jp/a")
    store_events(
        tracking_settings,
        [original, event("e2", "click", url="https://x.jp/b")],
        [original],  # the same event again
        [{**original, "sg_event_id": "retried-with-new-id"}],  # a retried batch: new id, same content
        [event("e3", sg_message_id=None), event("e4", sg_message_id=None)],  # no message id: ids decide
    )
    result = load_events(tracking_settings)
    assert (result.inserted, result.duplicates) == (4, 2)
    assert sorted(r[0] for r in _query(tracking_settings, "SELECT sg_event_id FROM ops.email_events")) == [
        "e1",
        "e2",
        "e3",
        "e4",
    ]
    store_events(tracking_settings, [{**original, "sg_event_id": "later-retry"}])  # across loads too
    assert load_events(tracking_settings).inserted == 0


def test_custom_args_are_columns(tracking_settings: Settings) -> None:
    store_events(tracking_settings, [event("e1", "open", sg_machine_open=True, locale="ja", message_key=None)])
    load_events(tracking_settings)
    row = _query(
        tracking_settings,
        "SELECT send_id, run_id, campaign, template, locale, is_machine_open, event_at FROM ops.email_events",
    )[0]
    assert row[:6] == ("renewal_notice:c1:2025-01", "run-1", "renewal_notice", "renewal_notice", "ja", True)
    assert str(row[6]) == "2025-01-01 00:00:00"


def test_incomplete_last_line_waits_without_advancing(tracking_settings: Settings) -> None:
    store_events(tracking_settings, [event("e1"), event("e2")])
    segment = list_segments(tracking_settings.events_dir)[0]
    line = encode_batch([event("e3")], received_at=datetime.now(UTC))
    with segment.open("ab") as fh:
        fh.write(line[:40])  # a write cut short: never acknowledged
    result = load_events(tracking_settings)
    assert result.inserted == 2
    assert result.cursor.endswith(f"@{segment.stat().st_size - 40}")
    with segment.open("ab") as fh:
        fh.write(line[40:])  # the writer finishes the line (the newest segment may still grow)
    assert load_events(tracking_settings).inserted == 1
    assert _count(tracking_settings) == 3


def test_crash_debris_in_a_closed_segment_is_set_aside(tracking_settings: Settings) -> None:
    store_events(tracking_settings, [event("e1")])
    segment = list_segments(tracking_settings.events_dir)[0]
    with segment.open("ab") as fh:
        fh.write(b'{"received_at":"2025-01-01T00:00:00Z","event":{"sg_ev')  # receiver killed mid-write
    store_events(tracking_settings, [event("e2")])  # the restarted receiver writes a new segment
    result = load_events(tracking_settings)
    assert (result.inserted, result.rejected) == (2, 1)
    assert _query(tracking_settings, "SELECT reason FROM ops.email_event_rejects")[0][0].startswith("incomplete")
    assert load_events(tracking_settings).lines_read == 0


def test_failure_inside_the_transaction_keeps_cursor_and_events_together(
    tracking_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_events(tracking_settings, [event("e1"), event("u1", "unsubscribe")])
    monkeypatch.setattr(loader, "_UPSERT_SUPPRESSIONS", "SELECT no_such_column FROM _incoming")
    with pytest.raises(duckdb.Error):
        load_events(tracking_settings)
    assert _count(tracking_settings) == 0
    assert _query(tracking_settings, "SELECT count(*) FROM ops.email_events_cursor")[0][0] == 0
    monkeypatch.undo()
    assert load_events(tracking_settings).inserted == 2


def test_suppressions_upserted_earliest_kept(tracking_settings: Settings) -> None:
    store_events(
        tracking_settings,
        [
            event("d1", "delivered", email="ok@example.co.jp"),
            event("u1", "unsubscribe", email="Taro@Example.co.jp", timestamp=1_735_700_000),
            event("u0", "group_unsubscribe", email="taro@example.co.jp", timestamp=1_735_690_000),
            event("b1", "bounce", type="blocked", email="blocked@example.co.jp"),
            event("b2", "bounce", type="bounce", email="gone@example.co.jp"),
            event("x1", "dropped", email="dropped@example.co.jp", reason="Bounced Address"),
            event("s1", "spamreport", email="spam@example.co.jp"),
        ],
    )
    result = load_events(tracking_settings)
    assert result.suppressions == 5
    rows = _query(tracking_settings, "SELECT email, reason, source, detail FROM ops.suppressions ORDER BY email")
    assert rows == [
        ("blocked@example.co.jp", "blocked", "sendgrid", "b1"),
        ("dropped@example.co.jp", "dropped", "sendgrid", "x1"),
        ("gone@example.co.jp", "bounce", "sendgrid", "b2"),
        ("spam@example.co.jp", "spamreport", "sendgrid", "s1"),
        ("taro@example.co.jp", "group_unsubscribe", "sendgrid", "u0"),
    ]
    store_events(tracking_settings, [event("u2", "unsubscribe", email="taro@example.co.jp", timestamp=1_735_800_000)])
    load_events(tracking_settings)  # a later opt-out does not move the first one
    assert _query(tracking_settings, "SELECT detail FROM ops.suppressions WHERE email = 'taro@example.co.jp'") == [
        ("u0",)
    ]


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold_warehouse(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process (like the daily run) holding the DuckDB file for a while."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_held_warehouse_is_waited_for(tracking_settings: Settings) -> None:
    store_events(tracking_settings, [event("e1"), event("e2")])
    holder = _hold_warehouse(tracking_settings.warehouse, 2.0)
    started = time.monotonic()
    result = load_events(tracking_settings, wait_seconds=20)
    holder.wait(timeout=10)
    assert not result.deferred and result.inserted == 2
    assert time.monotonic() - started >= 1.5  # it waited for the holder rather than failing


def test_warehouse_held_too_long_defers_and_loses_nothing(tracking_settings: Settings) -> None:
    store_events(tracking_settings, [event("e1"), event("e2")])
    holder = _hold_warehouse(tracking_settings.warehouse, 4.0)
    try:
        result = load_events(tracking_settings, wait_seconds=1.0)
    finally:
        holder.wait(timeout=10)
    assert result.deferred and result.inserted == 0
    assert len(list_segments(tracking_settings.events_dir)) == 1  # the events wait in the store
    later = load_events(tracking_settings)
    assert (later.inserted, later.deferred) == (2, False)
