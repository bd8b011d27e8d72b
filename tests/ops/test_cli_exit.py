"""How the `kizuna` process ends: garbage collected once, the rest frozen so shutdown does not traverse it again.

Only after a run session, whose log holds descriptors 1 and 2 until the process exits: what the shutdown then
prints (DuckDB's extension listing its own module's objects as leaked) goes to the log, never the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kizuna.core.settings import PROJECT_DIR

# A DuckDB connection held only by a reference cycle, never closed: the one collection before the freeze must
# close it (its data checkpointed into the file, no WAL left behind), as the interpreter's shutdown did before.
CHILD = """
import atexit, gc, json, os, sys
import duckdb
work = sys.argv[1]
holder = {"con": duckdb.connect(work + "/w.duckdb")}
holder["self"] = holder
holder["con"].execute("CREATE TABLE t AS SELECT 42 AS answer")
del holder
os.makedirs(work + "/src", exist_ok=True)
report = int(sys.argv[3])
atexit.register(lambda: os.write(report, json.dumps({"frozen": gc.get_freeze_count()}).encode()))
sys.argv = ["kizuna", *sys.argv[2].split()]
from kizuna.cli.main import main
main()
"""


def _kizuna(tmp_path: Path, args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    script = tmp_path / "child.py"  # a file, not -c: pyspark (via Great Expectations) exits when __main__ has none
    script.write_text(CHILD, encoding="utf-8")
    read, write = os.pipe()  # the child's own report, beside the descriptors a run session takes over
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path), args, str(write)],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "PYTHONPATH": f"{PROJECT_DIR / 'src'}{os.pathsep}{PROJECT_DIR}",
            "KIZUNA_VAR_DIR": str(tmp_path / "var"),
        },
        pass_fds=(write,),
        timeout=300,
    )
    os.close(write)
    with os.fdopen(read) as report:
        return out, json.loads(report.read())


def test_a_run_session_ends_frozen_after_closing_what_only_a_cycle_held(tmp_path: Path) -> None:
    out, seen = _kizuna(tmp_path, f"ingest --source-dir {tmp_path / 'src'} --warehouse {tmp_path / 'x.duckdb'}")
    assert seen["frozen"] > 10_000
    assert "nanobind" not in out.stderr + out.stdout  # the shutdown's lines went to the run log
    assert not (tmp_path / "w.duckdb.wal").exists()
    import duckdb

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT answer FROM t").fetchone() == (42,)


def test_a_command_without_a_run_log_ends_as_before(tmp_path: Path) -> None:
    out, seen = _kizuna(tmp_path, "--help")
    assert out.returncode == 0, out.stderr
    assert seen["frozen"] == 0 and "nanobind" not in out.stderr


def test_the_installed_kizuna_command_runs_main_which_ends_the_process_quickly() -> None:
    # The console script calling app() directly skipped main()'s quick exit: `kizuna run` never got it.
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "kizuna"]
    assert script.value == "kizuna.cli:main"
