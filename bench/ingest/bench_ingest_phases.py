"""Benchmark: where one day-2 ingest spends its seconds, phase by phase, this tree beside another git ref.

    python bench/ingest/bench_ingest_phases.py --base W --source-dir S [--baseline-ref s10] [--workdir D] [--publish]

W is a published warehouse directory (warehouse.duckdb and var/, e.g. a day-1 run); S the next day's export.
Per side (baseline first, then this tree), a child process copies W, runs `stage_sources` on S with that side's
code and times the phase functions it calls (wall and CPU seconds; CPU counts DuckDB's threads too, and is the
steadier figure on a shared machine). Phases a side does not have are left out. With --publish, each side then
publishes the staged load (publish_incoming, the gate's last step, without the gate's checks) and a multiset
checksum of every raw table (every column, provenance included) must be the same on both sides. The copy is
deleted after.
A tree that keeps the published tables' per-key hashes (core/raw_delta.py, raw_hashes) gets them made on its copy
of W first, untimed (W was built by an older kizuna; a day-1 publish by the tree leaves them).
Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# (module, function, phase): the functions stage_sources calls, old and new names both.
PHASES = [
    ("kizuna.sources.encoding", "scan_file", "read bytes once: sha256, NUL, UTF-8, lines"),
    ("kizuna.sources.files", "file_sha256", "read bytes: sha256"),
    ("kizuna.sources.encoding", "detect_encoding", "detect encoding"),
    ("kizuna.sources.encoding", "to_utf8", "to_utf8"),
    ("kizuna.sources.csv_records", "spreadsheet_rows", "blank-line search, spreadsheet rows"),
    ("kizuna.sources.files", "_load_text", "read_csv into an all-text table"),
    ("kizuna.sources.files", "_value_findings", "value findings (a pass over the text table)"),
    ("kizuna.sources.reading", "load_typed", "read_csv, fold, cast into the typed table (one pass)"),
    ("kizuna.sources.files", "stage_file", "stage_file, all of it"),
    ("kizuna.core.warehouse", "stage_changes", "stage_changes (keyed diff, before rows)"),
    ("kizuna.sources.fx", "record_fx_currencies", "fx currencies"),
]


def _timed(acc: dict[str, list[float]], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[label][0] += time.perf_counter() - wall
            acc[label][1] += time.process_time() - cpu

    return timed


def raw_checksums(settings: Any) -> dict[str, str]:
    """Per raw table: its row count and the sum of its whole rows' hashes (a multiset checksum)."""
    from kizuna.core.contract import TABLES
    from kizuna.core.warehouse import connect

    with connect(settings.warehouse) as con:
        return {
            t.name: str(con.execute(f'SELECT count(*), sum(hash(r)) FROM raw."{t.name}" r').fetchone()) for t in TABLES
        }


def keep_hashes_of_base(settings: Any) -> float:
    """Keep the base's per-key hashes (raw_hashes) as a day-1 publish by this tree would have (the base was
    built by an older kizuna); the seconds it took, not counted in the ingest. Only on a tree that keeps them."""
    import duckdb

    from kizuna.core import warehouse
    from kizuna.core.contract import TABLES

    side_of = getattr(warehouse, "_side", None)
    raw_delta = Path(warehouse.__file__).with_name("raw_delta.py")
    if side_of is None or not raw_delta.exists() or "raw_hashes" not in raw_delta.read_text():
        return 0.0
    wall = time.perf_counter()
    with warehouse.connect(settings.warehouse) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw_hashes")
        for table in TABLES:
            side = side_of(con, table, "raw")
            kept = f'raw_hashes."{table.name}"'
            con.execute(
                f"CREATE OR REPLACE TABLE {kept} AS SELECT key, sum(h) AS h, count(*) AS n, sum(p) AS p "
                f"FROM ({side}) GROUP BY key"
            )
            fingerprint = f"{duckdb.__version__} {side}".replace('FROM raw."', 'FROM raw_incoming."')
            con.execute(f"COMMENT ON TABLE {kept} IS '{fingerprint.replace(chr(39), chr(39) * 2)}'")
    return time.perf_counter() - wall


def child(base: Path, source_dir: Path, work: Path, publish: bool) -> None:
    from kizuna.core.runtime import quiet_third_parties

    quiet_third_parties()
    import kizuna.sources.ingest as ingest
    from kizuna.core.settings import Settings

    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for module_name, name, label in PHASES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, name, None)
        if fn is None:
            continue
        wrapped = _timed(acc, label, fn)
        for loaded in list(sys.modules.values()):  # every module that imported the function by name
            if getattr(loaded, "__name__", "").startswith("kizuna") and getattr(loaded, name, None) is fn:
                setattr(loaded, name, wrapped)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    settings = Settings(source_dir=source_dir, warehouse=work / "warehouse.duckdb", var_dir=work / "var")
    kept_hashes = keep_hashes_of_base(settings)
    wall, cpu = time.perf_counter(), time.process_time()
    result = ingest.stage_sources(settings)
    acc["ingest, all of it"] = [time.perf_counter() - wall, time.process_time() - cpu]
    raw: dict[str, str] = {}
    if publish:
        from kizuna.core.warehouse import connect, publish_incoming

        with connect(settings.warehouse) as con:
            wall, cpu = time.perf_counter(), time.process_time()
            publish_incoming(con, result.load_id)
            acc["publish_incoming (without the gate)"] = [time.perf_counter() - wall, time.process_time() - cpu]
        raw = raw_checksums(settings)
    shutil.rmtree(work, ignore_errors=True)
    changes = {s.table: str(s.changes) for s in result.staged}
    phases = {k: [round(w, 2), round(c, 2)] for k, (w, c) in acc.items()}
    print(json.dumps({"phases": phases, "changes": changes, "raw": raw, "base hashes kept in (s)": kept_hashes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--baseline-ref", default="s10")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-ingest-phases"))
    parser.add_argument("--publish", action="store_true", help="publish the staged load too, and compare raw")
    parser.add_argument("--child", choices=["baseline", "tree"])
    args = parser.parse_args()
    if args.child:
        child(args.base, args.source_dir, args.workdir / f"run-{args.child}", args.publish)
        return
    baseline = args.workdir / "baseline"
    shutil.rmtree(baseline, ignore_errors=True)
    baseline.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", args.baseline_ref, "src"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
    figures = {}
    for side, src in (("baseline", baseline / "src"), ("tree", ROOT / "src")):
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
        command = [sys.executable, __file__, "--child", side, *sys.argv[1:]]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        figures[side] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(figures, indent=1))
    assert figures["baseline"]["changes"] == figures["tree"]["changes"], "the two sides staged different changes"
    assert figures["baseline"]["raw"] == figures["tree"]["raw"], "the two sides published different raw tables"


if __name__ == "__main__":
    main()
