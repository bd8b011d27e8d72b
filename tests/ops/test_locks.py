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

import duckdb
import pytest

from kizuna.locks import WarehouseBusyError, wait_until_free, writer_lock
from kizuna.settings import PROJECT_DIR

HOLD_DUCKDB = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(120)"
HOLD_WRITER = (
    "import sys, time; from pathlib import Path; from kizuna.locks import writer_lock\n"
    "with writer_lock(Path(sys.argv[1]), wait_seconds=0, flow_run_id='flow-run-of-the-other'):\n"
    "    print('ready', flush=True); time.sleep(120)"
)


@contextmanager
def holder(code: str, warehouse: Path) -> Iterator[subprocess.Popen[str]]:
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
