"""Crash safety: SIGKILL a `kizuna run` during dbt build; the next run completes and the warehouse is consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb

from kizuna.core.locks import lock_path, writer_lock
from kizuna.core.settings import PROJECT_DIR
from tests.ops.conftest import AS_OF, tool, workspace_env


def _kizuna_run(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [tool("python"), "-m", "kizuna.cli", "run", "--as-of", str(AS_OF)],
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_dbt_nodes(log: Path, proc: subprocess.Popen[bytes], nodes: int, timeout: float = 150) -> None:
    """Until dbt has started `nodes` nodes (its log says "N of M START")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()[-3000:]
        if log.exists() and log.read_text(errors="replace").count(" START ") >= nodes:
            return
        time.sleep(0.2)
    raise AssertionError(f"dbt did not start {nodes} nodes within {timeout} s")


def test_a_run_killed_during_dbt_build_leaves_nothing_the_next_run_trips_over(
    prefect_server: str, workspace: Path
) -> None:
    # dbt in its one dbt-build task, as a plain `kizuna run` builds: one Prefect task per node (≈ 30 s more for the
    # rerun) is what tests/ops/test_deploy.py's worker run shows; the kill lands in dbt's build either way.
    env = workspace_env(workspace, PREFECT_API_URL=prefect_server, KIZUNA_DBT_NODE_TASKS="never")
    killed = _kizuna_run(env)
    _wait_for_dbt_nodes(workspace / "var" / "dbt" / "logs" / "dbt.log", killed, nodes=15)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL

    with writer_lock(workspace / "warehouse.duckdb", wait_seconds=0):  # the kernel dropped the dead run's lock
        assert lock_path(workspace / "warehouse.duckdb").exists()

    again = _kizuna_run(env)
    output, _ = again.communicate(timeout=240)
    assert again.returncode == 0, output.decode()[-4000:]
    assert "kizuna daily run" in output.decode()

    con = duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
        leftovers = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_name LIKE '%__dbt_tmp%' OR table_name LIKE '%__dbt_backup%'"
        ).fetchall()
        raw_customers = con.execute("SELECT count(*) FROM raw.customers").fetchone()
        marts = con.execute("SELECT count(*) FROM marts.customers").fetchone()
        loads = con.execute("SELECT count(DISTINCT load_id) FROM ops.loads").fetchone()
        sending = con.execute("SELECT count(*) FROM ops.send_ledger WHERE state = 'sending'").fetchone()
    finally:
        con.close()
    assert "raw_incoming" not in schemas and leftovers == []
    assert raw_customers == marts == (150,)
    assert loads is not None and loads[0] >= 1 and sending == (0,)
