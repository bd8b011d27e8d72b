"""How the `kizuna` process ends: garbage collected once, the rest frozen so shutdown does not traverse it again."""

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
import atexit, gc, json, sys
import duckdb
work = sys.argv[1]
holder = {"con": duckdb.connect(work + "/w.duckdb")}
holder["self"] = holder
holder["con"].execute("CREATE TABLE t AS SELECT 42 AS answer")
del holder
atexit.register(lambda: print(json.dumps({"frozen": gc.get_freeze_count()}), flush=True))
sys.argv = ["kizuna", "--help"]
from kizuna.cli.main import main
main()
"""


def test_the_process_ends_frozen_after_closing_what_only_a_cycle_held(tmp_path: Path) -> None:
    script = tmp_path / "child.py"  # a file, not -c: pyspark (via Great Expectations) exits when __main__ has none
    script.write_text(CHILD, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": f"{PROJECT_DIR / 'src'}{os.pathsep}{PROJECT_DIR}"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr  # --help's own exit code, not hidden by the freeze
    assert json.loads(out.stdout.strip().splitlines()[-1])["frozen"] > 10_000
    assert not (tmp_path / "w.duckdb.wal").exists()
    import duckdb

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT answer FROM t").fetchone() == (42,)
