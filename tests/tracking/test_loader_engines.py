"""The events loader on DuckDB and on PostgreSQL (issue 24): exactly once, duplicates dropped, suppressions kept.

The same store loaded into a warehouse of each engine through the one Connection interface, with the same
outcome expected of both (tests/tracking/test_loader.py covers the rest on DuckDB: crashes, held files).
"""

from __future__ import annotations

from pathlib import Path

from kizuna.core.connection import connect
from kizuna.core.settings import Settings
from kizuna.tracking.loader import load_events
from tests.tracking.conftest import event, store_events


def test_events_load_once_with_their_suppressions_on_each_engine(
    tracking_settings: Settings, engine_target: Path | str
) -> None:
    original = event("e1", "click", url="https://x.jp/a")
    store_events(
        tracking_settings,
        [original, event("e2", "open", sg_machine_open=True, locale="ja"), original],  # the same event twice
        [{**original, "sg_event_id": "retried-with-new-id"}],  # a retried batch: new id, same content
        [
            event("u1", "unsubscribe", email="Taro@Example.co.jp", timestamp=1_735_700_000),
            event("u0", "group_unsubscribe", email="taro@example.co.jp", timestamp=1_735_690_000),
            event("b1", "bounce", type="blocked", email="blocked@example.co.jp"),
        ],
    )
    first = load_events(tracking_settings, warehouse=engine_target)
    assert (first.inserted, first.duplicates, first.suppressions, first.deferred) == (5, 2, 2, False)
    assert load_events(tracking_settings, warehouse=engine_target).lines_read == 0  # nothing twice
    store_events(tracking_settings, [event("u2", "unsubscribe", email="taro@example.co.jp", timestamp=1_735_800_000)])
    assert load_events(tracking_settings, warehouse=engine_target).inserted == 1
    with connect(engine_target, read_only=True) as con:
        ids = con.execute("SELECT sg_event_id FROM ops.email_events ORDER BY sg_event_id").fetchall()
        assert [r[0] for r in ids] == ["b1", "e1", "e2", "u0", "u1", "u2"]
        machine = con.execute("SELECT is_machine_open, locale FROM ops.email_events WHERE sg_event_id = 'e2'")
        assert machine.fetchone() == (True, "ja")
        kept = con.execute("SELECT email, reason, detail FROM ops.suppressions ORDER BY email").fetchall()
        assert kept == [  # the earliest opt-out of an address is kept; a later one does not move it
            ("blocked@example.co.jp", "blocked", "b1"),
            ("taro@example.co.jp", "group_unsubscribe", "u0"),
        ]
        cursor = con.execute("SELECT count(*), min(byte_offset) FROM ops.email_events_cursor").fetchone()
        assert cursor is not None and cursor[0] == 1 and cursor[1] > 0
