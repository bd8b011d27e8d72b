"""Bounded load on loopback: a real receiver process, signed SendGrid-like batches, and a SIGKILL mid-load.

KIZUNA_LOAD_SECONDS sets the sustained run (default 10 s, for the suite's time budget; the issue's figure is 60:
KIZUNA_LOAD_SECONDS=60, and bench/events measures longer runs). The kill test runs half as long.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from bench.events.loadgen import ReceiverProcess, Signer, drive, stored_event_ids
from kizuna.core.settings import Settings
from kizuna.tracking.loader import load_events

RATE = 2000  # events per second, the sustained load
SECONDS = float(os.environ.get("KIZUNA_LOAD_SECONDS", "10"))


def _warehouse_ids(settings: Settings) -> tuple[int, int]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        row = con.execute("SELECT count(*), count(DISTINCT sg_event_id) FROM ops.email_events").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), int(row[1])


def test_sustained_load_keeps_every_acknowledged_event(tmp_path: Path, signer: Signer) -> None:
    receiver = ReceiverProcess(tmp_path / "events", signer.public_key_b64, log=tmp_path / "receiver.log")
    receiver.start()
    try:
        report = drive(receiver.url, signer, SECONDS, RATE)
    finally:
        receiver.stop()
    print(f"\nsustained: {report.summary()}")
    assert set(report.statuses) == {"200"}, report.statuses
    assert report.events_acked >= 0.95 * RATE * SECONDS  # it kept up with the offered rate
    stored, partial = stored_event_ids(tmp_path / "events")
    assert report.acked_ids <= stored and partial == 0


def test_sigkill_mid_load_loses_nothing_acknowledged(tmp_path: Path, signer: Signer) -> None:
    events_dir = tmp_path / "events"
    receiver = ReceiverProcess(events_dir, signer.public_key_b64, log=tmp_path / "receiver.log")
    receiver.start()
    seconds = SECONDS / 2

    def kill_and_restart() -> None:
        receiver.kill()  # SIGKILL: no shutdown, batches in flight are cut off
        receiver.start()

    try:
        report = drive(receiver.url, signer, seconds, RATE, run_id="kill", during=(seconds / 2, kill_and_restart))
    finally:
        receiver.stop()
    print(f"\nkill: {report.summary()}")
    refused = sum(n for status, n in report.statuses.items() if status != "200")
    assert refused > 0, "the kill should have cut some requests off"
    stored, _ = stored_event_ids(events_dir)
    assert report.acked_ids <= stored, f"{len(report.acked_ids - stored)} acknowledged events lost"

    settings = Settings(events_dir=events_dir, warehouse=tmp_path / "warehouse.duckdb")
    result = load_events(settings, wait_seconds=5)
    rows, distinct = _warehouse_ids(settings)
    assert rows == distinct == len(stored)  # exactly once, whatever the kill left twice in the store
    assert result.inserted == len(stored)
