"""SIGKILL during ingest (while staging, and inside the publish transaction) and during event loading, then a re-run.

The killed process blocks at a chosen point (after writing a marker), so each kill lands exactly where it is
meant to; the test polls for the marker (bounded) and kills the process group. Loopback and temporary files only.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from kizuna.core.locks import writer_lock
from kizuna.core.settings import Settings
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from kizuna.tracking.loader import load_events
from kizuna.tracking.store import EventStore
from tests.reliability.conftest import AS_OF, BLOCK_HERE, start_victim, wait_for_marker
from tests.sources.test_ingest import raw_fingerprint
from tests.tracking.conftest import event

# Ingest as the daily flow does it (under the writer lock), in a process we kill at the marked point.
INGEST_VICTIM = (
    BLOCK_HERE
    + """
import datetime as dt, sys
from pathlib import Path
import kizuna.sources.ingest as ingest
from kizuna.quality.gate import gate_and_publish
import kizuna.core.warehouse as warehouse
from kizuna.core.locks import writer_lock
from kizuna.core.settings import Settings

marker, where, as_of = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3])
if where == "staging":  # after the second source file is staged: the incoming schema is half full
    real_stage_file, staged = ingest.stage_file, []
    def stage_file(*args, **kwargs):
        out = real_stage_file(*args, **kwargs)
        staged.append(out)
        if len(staged) == 2:
            block_here(marker)
        return out
    ingest.stage_file = stage_file
else:  # inside publish_incoming's transaction, after every raw table was replaced, before COMMIT
    real_table_exists = warehouse.table_exists
    def table_exists(con, schema, name):
        if name == "_quarantine":
            block_here(marker)
        return real_table_exists(con, schema, name)
    warehouse.table_exists = table_exists
settings = Settings()
with writer_lock(settings.warehouse, wait_seconds=0):
    ingest.stage_sources(settings)
    gate_and_publish(settings, as_of)
raise SystemExit("the victim was not stopped at its kill point")
"""
)


def _ingest(settings: Settings) -> None:
    with writer_lock(settings.warehouse, wait_seconds=0):  # the dead run's lock went with its process
        stage_sources(settings)
        gate_and_publish(settings, AS_OF)


def _kill(proc: object) -> None:
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _schemas_and_loads(settings: Settings) -> tuple[set[str], int, int]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
        loads = con.execute("SELECT count(DISTINCT load_id) FROM ops.loads").fetchone()
        sentinel = con.execute("SELECT count(*) FROM marts.sentinel").fetchone()
    finally:
        con.close()
    assert loads is not None and sentinel is not None
    return schemas, int(loads[0]), int(sentinel[0])


@pytest.mark.parametrize("where", ["staging", "publishing"], ids=["while-staging", "inside-publish-transaction"])
def test_sigkill_during_ingest_keeps_the_last_good_load_and_a_rerun_publishes_the_new_one(
    tmp_path: Path, demo_sources: Callable[[int], Path], where: str
) -> None:
    src = tmp_path / "src"
    shutil.copytree(demo_sources(11), src)
    settings = Settings(source_dir=src, warehouse=tmp_path / "warehouse.duckdb", var_dir=tmp_path / "var")
    _ingest(settings)  # the last good load
    with duckdb.connect(str(settings.warehouse)) as con:  # stands for the marts dbt built from it
        con.execute("CREATE SCHEMA marts; CREATE TABLE marts.sentinel AS SELECT * FROM raw.customers")
    good = raw_fingerprint(settings)

    shutil.rmtree(src)
    shutil.copytree(demo_sources(12), src)  # the next day's files: same size, different content
    env = {
        **os.environ,
        "KIZUNA_SOURCE_DIR": str(src),
        "KIZUNA_WAREHOUSE": str(settings.warehouse),
        "KIZUNA_VAR_DIR": str(settings.var_dir),
    }
    marker = tmp_path / "reached"
    victim = start_victim(INGEST_VICTIM, str(marker), where, AS_OF.isoformat(), env=env)
    try:
        wait_for_marker(marker, victim)
    finally:
        _kill(victim)

    assert raw_fingerprint(settings) == good, "a killed ingest changed raw"
    schemas, loads, sentinel = _schemas_and_loads(settings)
    assert loads == 1 and sentinel == 150  # no half-recorded load; the marts untouched

    _ingest(settings)  # the next normal run
    after = raw_fingerprint(settings)
    assert after != good and after.keys() == good.keys()
    schemas, loads, _ = _schemas_and_loads(settings)
    assert "raw_incoming" not in schemas and loads == 2
    fresh = Settings(source_dir=src, warehouse=tmp_path / "fresh.duckdb", var_dir=tmp_path / "var-fresh")
    _ingest(fresh)
    assert after == raw_fingerprint(fresh), "the re-run's raw is exactly what a clean load of the new files gives"


# The event loader, killed inside its third transaction (events inserted, cursor not yet moved).
LOADER_VICTIM = (
    BLOCK_HERE
    + """
import sys
from pathlib import Path
import kizuna.tracking.loader as loader
from kizuna.core.settings import Settings

marker = sys.argv[1]
real_count, calls = loader._count, []
def count(cursor):
    calls.append(1)
    if len(calls) == 5:  # the third chunk's INSERT INTO ops.email_events has run; COMMIT has not
        block_here(marker)
    return real_count(cursor)
loader._count = count
loader.load_events(Settings(), wait_seconds=5, max_bytes_per_transaction=4096)
raise SystemExit("the victim was not stopped at its kill point")
"""
)


def test_sigkill_mid_event_load_then_a_rerun_loads_every_event_exactly_once(tmp_path: Path) -> None:
    events_dir = tmp_path / "events"
    store = EventStore(events_dir)
    store.open()
    try:
        for batch in range(20):
            events = [event(f"e{batch:02d}-{i}", sg_message_id=f"m{batch}-{i}") for i in range(10)]
            if batch == 15:  # SendGrid resending an earlier batch (same ids): must still count once
                events = [event(f"e03-{i}", sg_message_id=f"m3-{i}") for i in range(10)]
            store.append(events)
    finally:
        store.close()
    settings = Settings(events_dir=events_dir, warehouse=tmp_path / "warehouse.duckdb", var_dir=tmp_path / "var")
    env = {**os.environ, "KIZUNA_EVENTS_DIR": str(events_dir), "KIZUNA_WAREHOUSE": str(settings.warehouse)}

    marker = tmp_path / "reached"
    victim = start_victim(LOADER_VICTIM, str(marker), env=env)
    try:
        wait_for_marker(marker, victim)
    finally:
        _kill(victim)

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        committed = con.execute("SELECT count(*) FROM ops.email_events").fetchone()
        cursor = con.execute("SELECT segment, byte_offset FROM ops.email_events_cursor").fetchall()
    finally:
        con.close()
    assert committed is not None and 0 < committed[0] < 190  # two transactions committed, the third is gone
    assert len(cursor) == 1

    result = load_events(settings, wait_seconds=5, max_bytes_per_transaction=4096)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT sg_event_id) FROM ops.email_events").fetchone()
    finally:
        con.close()
    assert rows == distinct == 190  # 19 distinct batches of 10: nothing lost, nothing twice
    assert result.inserted == 190 - committed[0] and result.duplicates == 10 and not result.deferred
    again = load_events(settings, wait_seconds=5)
    assert again.inserted == 0 and again.lines_read == 0
