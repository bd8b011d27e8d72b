"""A `kizuna run` killed while dbt builds an incremental model, then run again: the writer lock is free at once,
nothing half-made is left to trip over, and the warehouse is the one a full refresh gives."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from kizuna.core import ops
from kizuna.core.locks import lock_path, writer_lock
from kizuna.core.settings import PROJECT_DIR
from tests.dbt.incremental_days import NEXT, Days, differences, shared_days
from tests.ops.conftest import tool, workspace_env

INCREMENTAL_START = "START sql incremental model intermediate.int_mrr_movements_classified"


def _kizuna_run(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [tool("python"), "-m", "kizuna.cli", "run", "--as-of", str(NEXT)],
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_line(log: Path, line: str, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()[-3000:]
        if log.exists() and line in log.read_text(errors="replace"):
            return
        time.sleep(0.1)  # polling a log another process writes: no event to wait on
    raise AssertionError(f"dbt did not log {line!r} within {timeout} s")


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Days:
    """Day 1 built by the daily run's steps; day 2 built with --full-refresh beside it (shared, once a session)."""
    return shared_days(tmp_path_factory)


@pytest.mark.timeout(600)  # two daily runs (one killed half-way) on 2 shared cores
def test_a_day_killed_during_an_incremental_build_and_run_again_equals_a_full_refresh(
    prefect_server: str, days: Days, tmp_path: Path
) -> None:
    shutil.copytree(days.day2, tmp_path / "src")
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(days.built1, warehouse)
    (tmp_path / "no-campaigns").mkdir()
    env = workspace_env(
        tmp_path,
        PREFECT_API_URL=prefect_server,
        # what is under test ends with dbt: one dbt task (not one per node, ≈ 140 ms each), and no campaigns
        KIZUNA_DBT_NODE_TASKS="never",
        KIZUNA_CAMPAIGNS_DIR=str(tmp_path / "no-campaigns"),
    )

    killed = _kizuna_run(env)
    _wait_for_line(tmp_path / "var" / "dbt" / "logs" / "dbt.log", INCREMENTAL_START, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    with writer_lock(warehouse, wait_seconds=0):  # the kernel dropped the dead run's lock
        assert lock_path(warehouse).exists()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:  # day 2 was published and its build, incremental from the load's month, never finished
        (month,) = con.execute(f"SELECT max(rebuild_from_month) FROM {ops.LOADS}").fetchone() or (None,)
        last = con.execute(
            f"SELECT status, rebuild_from_month FROM {ops.DBT_BUILDS} ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    assert month is not None and month < NEXT.replace(day=1)
    assert last == ("running", month)

    again = _kizuna_run(env)
    output, _ = again.communicate(timeout=300)
    text = output.decode()
    assert again.returncode == 0, text[-4000:]
    # the day-2 load counts still (its build never passed), with the rerun's own (unchanged files: the as-of month),
    # its customers rebuilt from their own month as in the day's first build
    assert f" back to {month:%Y-%m} (1 load since" in days.rebuilt
    assert "incremental models: " + days.rebuilt.replace("(1 load since", "(2 loads since") in text
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
        leftovers = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_name LIKE '%__dbt_tmp%' OR table_name LIKE '%__dbt_backup%'"
        ).fetchall()
    finally:
        con.close()
    assert "raw_incoming" not in schemas and leftovers == []
    # the run's scores step writes these two after dbt (kizuna.scoring.run): not models, not in the full refresh
    assert differences(warehouse, days.full2, ignore=("marts.customer_scores", "marts.deal_forecasts")) == {}
