"""One hostile event never stops tracking: it goes to the rejects table with a reason, the rest loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from starlette.testclient import TestClient

from bench.events.loadgen import Signer
from kizuna.core.settings import Settings
from kizuna.tracking.app import create_app
from kizuna.tracking.loader import load_events
from kizuna.tracking.store import list_segments
from tests.tracking.conftest import body_of, event

MISSING = object()

# (id, field, value, rejected reason fragment or None when the event loads)
HOSTILE: list[tuple[str, str, Any, str | None]] = [
    ("timestamp-1e20", "timestamp", 1e20, "timestamp"),
    ("timestamp-huge-int", "timestamp", 10**20, "timestamp"),
    ("timestamp-negative", "timestamp", -1, "timestamp"),
    ("timestamp-negative-huge", "timestamp", -(10**30), "timestamp"),
    ("timestamp-string", "timestamp", "yesterday", "timestamp"),
    ("timestamp-fraction", "timestamp", 1_735_689_600.5, "timestamp"),
    ("timestamp-bool", "timestamp", True, "timestamp"),
    ("timestamp-object", "timestamp", {"s": 1}, "timestamp"),
    ("timestamp-digits-string", "timestamp", "1735689600", None),  # numeric text: read as the number
    ("timestamp-missing", "timestamp", MISSING, None),  # loaded without a time
    ("asm-group-huge", "asm_group_id", 10**25, "asm_group_id"),
    ("asm-group-negative", "asm_group_id", -5, "asm_group_id"),
    ("event-missing", "event", MISSING, "'event'"),
    ("event-number", "event", 7, "'event'"),
    ("email-object", "email", {"a": [1, 2]}, None),
    ("email-nul", "email", "a\x00b@example.co.jp", None),
    ("sg-event-id-missing", "sg_event_id", MISSING, None),
    ("url-huge-number", "url", 10**40, None),
]


def _hostile(name: str, key: str, value: Any) -> dict[str, Any]:
    evt = event(f"hostile-{name}", "open")
    if value is MISSING:
        evt.pop(key)
    else:
        evt[key] = value
    return evt


def _post(settings: Settings, signer: Signer, batches: list[list[dict[str, Any]]]) -> None:
    """Through the real receiver, signed as SendGrid would: what it stores is what the loader gets."""
    with TestClient(create_app(settings)) as client:
        for batch in batches:
            body = body_of(batch)
            response = client.post("/sendgrid/events", content=body, headers=signer.headers(body))
            assert response.status_code == 200, response.text


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(("name", "key", "value", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_one_hostile_event_never_stops_later_unsubscribes(
    tracking_settings: Settings, signer: Signer, name: str, key: str, value: Any, reason: str | None
) -> None:
    before = event("before", "delivered")
    later = event("later-unsub", "unsubscribe", email="later@example.co.jp")
    _post(tracking_settings, signer, [[before, _hostile(name, key, value)], [later]])

    first = load_events(tracking_settings)
    assert not first.deferred
    again = load_events(tracking_settings)  # the next run (every 15 minutes) goes on, nothing is read twice
    assert (again.lines_read, again.inserted) == (0, 0)

    loaded = {r[0] for r in _query(tracking_settings.warehouse, "SELECT sg_event_id FROM ops.email_events")}
    assert {"before", "later-unsub"} <= loaded
    assert _query(tracking_settings.warehouse, "SELECT email FROM ops.suppressions") == [("later@example.co.jp",)]
    rejects = _query(tracking_settings.warehouse, "SELECT reason, line FROM ops.email_event_rejects")
    if reason is None:
        assert (first.inserted, first.rejected, rejects) == (3, 0, [])
    else:
        assert (first.inserted, first.rejected) == (2, 1)
        [(why, line)] = rejects
        assert reason in why and f"hostile-{name}" in line, why


def test_values_json_allows_but_the_receiver_never_stores_still_do_not_stop_the_loader(
    tracking_settings: Settings, signer: Signer
) -> None:
    """NaN and Infinity (a segment restored from elsewhere, or written by another tool) are rejects too."""
    _post(tracking_settings, signer, [[event("first")]])
    [segment] = list_segments(tracking_settings.events_dir)
    with segment.open("ab") as fh:
        stamp = '"received_at":"2025-01-01T00:00:00.000000Z"'
        fh.write(b"{" + stamp.encode() + b',"event":{"event":"open","sg_event_id":"nan","timestamp":NaN}}\n')
        fh.write(b"{" + stamp.encode() + b',"event":{"event":"open","sg_event_id":"inf","asm_group_id":-Infinity}}\n')
        fh.write(b'{"received_at":"not a time","event":{"event":"open","sg_event_id":"bad-received"}}\n')
    _post(tracking_settings, signer, [[event("after", "unsubscribe", email="after@example.co.jp")]])
    result = load_events(tracking_settings)
    assert (result.inserted, result.rejected) == (2, 3)
    reasons = dict(_query(tracking_settings.warehouse, "SELECT segment_offset, reason FROM ops.email_event_rejects"))
    assert len(reasons) == 3 and all(reasons.values())
    assert _query(tracking_settings.warehouse, "SELECT email FROM ops.suppressions") == [("after@example.co.jp",)]


def test_an_unsubscribe_with_a_broken_timestamp_is_rejected_but_still_suppresses(
    tracking_settings: Settings, signer: Signer
) -> None:
    """Opt-out always wins: the event is set aside for a person to look at, the address is suppressed anyway."""
    broken = event("u-broken", "unsubscribe", email="Hanako@Example.co.jp", timestamp=1e20)
    _post(tracking_settings, signer, [[broken]])
    result = load_events(tracking_settings)
    assert (result.inserted, result.rejected, result.suppressions) == (0, 1, 1)
    [(email, why, detail)] = _query(tracking_settings.warehouse, "SELECT email, reason, detail FROM ops.suppressions")
    assert (email, why, detail) == ("hanako@example.co.jp", "unsubscribe", "u-broken")


def test_a_row_duckdb_still_refuses_joins_the_rejects_alone(tracking_settings: Settings) -> None:
    """The last guard: a value no check foresaw (here an event row built by hand, past the checks) is set aside
    with DuckDB's reason, and the chunk's other rows load."""
    from kizuna.tracking import loader

    good = loader.event_row(event("good"), "2025-01-01T00:00:00+00:00", "000000000001-x.jsonl", 0)
    bad = list(loader.event_row(event("bad"), "2025-01-01T00:00:00+00:00", "000000000001-x.jsonl", 100))
    bad[[name for name, _ in loader.EVENT_COLUMNS].index("event_timestamp")] = 10**20
    chunk = loader._Chunk([good, tuple(bad)], [], "000000000001-x.jsonl", 200)
    con = duckdb.connect()
    try:
        loader._stage(con, chunk)
        assert con.execute("SELECT sg_event_id FROM _incoming").fetchall() == [("good",)]
    finally:
        con.close()
    [(segment, offset, reason, line)] = chunk.rejects
    assert (segment, offset) == ("000000000001-x.jsonl", 100) and reason.startswith("not loadable: Conversion Error")
    assert '"sg_event_id":"bad"' in line
