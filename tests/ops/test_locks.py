"""One writer at a time: another run holds the writer lock, an analyst's process holds the DuckDB file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import duckdb
import pytest

from kizuna.core.locks import WarehouseBusyError, wait_until_free, writer_lock
from kizuna.core.settings import PROJECT_DIR
from tests.ops.conftest import AS_OF, base_env, tool, write_sources_by_hand
from tests.postgres_server import PostgresServer

HOLD_DUCKDB = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(120)"
HOLD_READ_ONLY = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); print('ready', flush=True); "
    "time.sleep(120)"
)
HOLD_WRITER = (
    "import sys, time; from pathlib import Path; from kizuna.core.locks import writer_lock\n"
    "with writer_lock(Path(sys.argv[1]), wait_seconds=0, flow_run_id='flow-run-of-the-other'):\n"
    "    print('ready', flush=True); time.sleep(120)"
)


HOLD_SERVER_WRITER = (
    "import sys, time; from kizuna.core.locks import writer_lock\n"
    "with writer_lock(sys.argv[1], wait_seconds=0, flow_run_id='flow-run-of-the-other'):\n"
    "    print('ready', flush=True); time.sleep(120)"
)


@contextmanager
def holder(code: str, warehouse: Path | str) -> Iterator[subprocess.Popen[str]]:
    """A separate process running code on the warehouse; yields once it says 'ready'; SIGKILLed at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(warehouse)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR / "src")},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    return path


def test_an_analysts_session_is_waited_for_then_named(warehouse: Path) -> None:
    with holder(HOLD_DUCKDB, warehouse) as proc:
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError) as caught:
            wait_until_free(warehouse, wait_seconds=1.5)
        waited = time.monotonic() - started
    assert 1.4 <= waited < 10
    assert f"PID {proc.pid}" in str(caught.value) and "duckdb.connect" in str(caught.value)
    assert "KIZUNA_WAREHOUSE_WAIT_SECONDS" in str(caught.value)
    wait_until_free(warehouse, wait_seconds=0)  # free again once that process is gone


def test_another_run_holding_the_writer_lock_is_named_and_a_sigkill_frees_it(warehouse: Path) -> None:
    with holder(HOLD_WRITER, warehouse) as proc:
        with pytest.raises(WarehouseBusyError) as caught, writer_lock(warehouse, wait_seconds=0.5):
            pass
        assert f"PID {proc.pid}" in str(caught.value) and "flow-run-of-the-other" in str(caught.value)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with writer_lock(warehouse, wait_seconds=2):  # the kernel released the dead process's lock
            pass


def test_on_postgresql_the_writer_lock_is_a_sessions_advisory_lock_named_and_freed_by_a_sigkill(
    postgres_server: PostgresServer,
) -> None:
    postgres_server.create_database("locks")
    url = postgres_server.url("locks", password="pg-pass-9012")
    with holder(HOLD_SERVER_WRITER, url) as proc:
        with pytest.raises(WarehouseBusyError) as caught, writer_lock(url, wait_seconds=0.5):
            pass
        said = str(caught.value)
        assert f"kizuna pid {proc.pid} run flow-run-of-the-other (server process" in said, said
        assert "KIZUNA_WAREHOUSE_WAIT_SECONDS" in said and "pg-pass-9012" not in said
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # The server ended the dead process's session, and its lock. The lock is a session's, not a process's:
        # a second session of this process is another writer.
        with writer_lock(url, wait_seconds=5), pytest.raises(WarehouseBusyError), writer_lock(url, wait_seconds=0):
            pass
    with writer_lock(url, wait_seconds=0):  # released on leaving
        wait_until_free(url, wait_seconds=0)  # a server lets every session in: nothing to wait for


def test_a_run_waits_for_the_writer_lock_while_it_is_briefly_held(warehouse: Path) -> None:
    with holder(HOLD_WRITER, warehouse) as proc:
        subprocess.Popen(["sh", "-c", f"sleep 1; kill -9 {proc.pid}"])
        started = time.monotonic()
        with writer_lock(warehouse, wait_seconds=30):
            pass
    assert time.monotonic() - started < 15


@pytest.mark.usefixtures("prefect_harness")
def test_the_daily_run_fails_naming_the_process_that_holds_the_warehouse(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.daily import daily

    (tmp_path / "src").mkdir()
    monkeypatch.setenv("KIZUNA_WAREHOUSE_WAIT_SECONDS", "1")
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    with holder(HOLD_DUCKDB, warehouse) as proc, pytest.raises(WarehouseBusyError, match=f"PID {proc.pid}"):
        daily(source_dir=str(tmp_path / "src"), warehouse=str(warehouse))


def _kizuna(warehouse: Path, tmp_path: Path, wait_seconds: float, *args: str, **extra: str) -> subprocess.Popen[str]:
    env = base_env(
        KIZUNA_WAREHOUSE=str(warehouse),
        KIZUNA_VAR_DIR=str(tmp_path / "var"),
        KIZUNA_OUTBOX_DIR=str(tmp_path / "var" / "outbox"),
        KIZUNA_WAREHOUSE_WAIT_SECONDS=str(wait_seconds),
        **extra,
    )
    return subprocess.Popen(
        [tool("python"), "-m", "kizuna.cli", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _line_saying(stream: IO[str] | None, text: str) -> str:
    """Read lines until one contains text (returned) or the stream ends (''): no sleeping."""
    assert stream is not None
    while line := stream.readline():
        if text in line:
            return str(line)
    return ""


def test_ingest_waits_for_an_analysts_reader_says_who_it_is_and_goes_on_once_it_closes(
    warehouse: Path, tmp_path: Path
) -> None:
    src = write_sources_by_hand(tmp_path / "src", ["C001", "C002"])
    with holder(HOLD_READ_ONLY, warehouse) as reader:
        ingest = _kizuna(warehouse, tmp_path, 120, "ingest", "--source-dir", str(src))
        waiting = _line_saying(ingest.stderr, "waiting for the warehouse")
        reader.send_signal(signal.SIGKILL)  # the analyst closes the notebook
        reader.wait(timeout=10)
    out, err = ingest.communicate(timeout=300)
    assert f"waiting for the warehouse, held by PID {reader.pid} (" in waiting and "read_only=True" in waiting
    assert "giving up after 120 s (KIZUNA_WAREHOUSE_WAIT_SECONDS)" in waiting
    assert ingest.returncode == 0, out + err
    assert "customers.csv: 2 rows" in out and "Traceback" not in out + err


def test_ingest_gives_up_after_the_wait_with_one_message_naming_the_reader(warehouse: Path, tmp_path: Path) -> None:
    src = write_sources_by_hand(tmp_path / "src", ["C001"])
    with holder(HOLD_READ_ONLY, warehouse) as reader:
        ingest = _kizuna(warehouse, tmp_path, 1, "ingest", "--source-dir", str(src))
        out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 1
    assert "Traceback" not in out + err and len(err.splitlines()) <= 5, err
    assert f"error: warehouse {warehouse} is held by PID {reader.pid} (" in err
    assert "waited 1 s (KIZUNA_WAREHOUSE_WAIT_SECONDS)" in err and "log: " in err


def test_kizuna_run_says_it_is_waiting_and_whom_for(prefect_server: str, warehouse: Path, tmp_path: Path) -> None:
    """On the suite's Prefect server: a run without one would start a temporary server first (≈ 10 s)."""
    (tmp_path / "src").mkdir()
    with holder(HOLD_READ_ONLY, warehouse) as reader:
        run = _kizuna(
            warehouse,
            tmp_path,
            1,
            *("run", "--source-dir", str(tmp_path / "src"), "--as-of", str(AS_OF)),
            PREFECT_API_URL=prefect_server,
        )
        out, err = run.communicate(timeout=300)
    assert run.returncode == 1
    assert f"warning: waiting for the warehouse, held by PID {reader.pid} (" in err
    assert f"error: warehouse {warehouse} is held by PID {reader.pid}" in err
    assert "Traceback" not in out + err and len(err.splitlines()) <= 8, err


# Every other command that writes the warehouse, beside run/ingest/check/build above: the same wait, the same words.
OTHER_WRITERS = [
    ("score",),
    ("train-scores",),
    ("campaigns", "send", "winback"),
    ("campaigns", "approve", "RUN", "winback", "--by", "hanako"),
    ("ledger", "reconcile"),
    ("ledger", "release", "SEND"),
]


@pytest.mark.parametrize("args", OTHER_WRITERS, ids=[" ".join(a[:2]) for a in OTHER_WRITERS])
def test_every_writing_command_names_the_reader_it_waited_for(
    warehouse: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    with holder(HOLD_READ_ONLY, warehouse) as reader:
        proc = _kizuna(warehouse, tmp_path, 1, *args)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    assert f"waiting for the warehouse, held by PID {reader.pid} (" in err, err
    assert f"is held by PID {reader.pid}" in err, err
    assert "Traceback" not in out + err and len(err.splitlines()) <= 8, err
