"""Building the dbt project in tests: one `dbt build` on a warehouse, raw tables loaded from frames or CSVs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from kizuna.core.contract import TABLES
from kizuna.core.warehouse import RAW_SCHEMA, raw_table_ddl

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


@dataclass
class Build:
    warehouse: Path
    warnings: list[str] = field(default_factory=list)

    def query(self, sql: str) -> pd.DataFrame:
        # dbt-duckdb keeps its DuckDB instance open in this process after the build; a read-only
        # connection would be a second configuration of the same file, which DuckDB refuses.
        con = duckdb.connect(str(self.warehouse))
        try:
            return con.sql(sql).df()
        finally:
            con.close()


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every raw table of the contract that does not exist yet (empty), so dbt always builds.

    Only tests need this: a real warehouse gets its raw tables from the gate's publish (publish_incoming).
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    existing = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [RAW_SCHEMA]
        ).fetchall()
    }
    for table in TABLES:
        if table.name not in existing:
            con.execute(raw_table_ddl(table))


def prepare_warehouse(path: Path) -> None:
    """Every table the project's sources name, empty: raw (the contract) and ops (tracking, ledger)."""
    from kizuna.tracking.loader import ensure_tracking_tables

    con = duckdb.connect(str(path))
    try:
        ensure_raw_schema(con)
        ensure_tracking_tables(con)
    finally:
        con.close()


def run_dbt(
    workdir: Path,
    as_of: date,
    env: Mapping[str, str],
    target: str | None = None,
    command: str = "build",
    extra: tuple[str, ...] = (),
    profiles_dir: Path = PROJECT_DIR,
) -> list[str]:
    """One dbt command on the project; fails the test on any error. Returns the warnings."""
    from dbt.cli.main import dbtRunner

    warnings: list[str] = []

    def on_event(event: Any) -> None:
        if event.info.level == "warn":
            warnings.append(f"{event.info.name}: {event.info.msg}")

    args = [
        command,
        "--project-dir", str(PROJECT_DIR),
        "--profiles-dir", str(profiles_dir),
        "--target-path", str(workdir / "target"),
        "--log-path", str(workdir / "logs"),
        "--vars", json.dumps({"as_of": as_of.isoformat()}),
    ]  # fmt: skip
    if target:
        args += ["--target", target]
    args += extra
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.setenv("DO_NOT_TRACK", "1")
        outcome = dbtRunner(callbacks=[on_event]).invoke(args)
    assert outcome.exception is None, f"dbt could not run: {outcome.exception}"
    failed = [f"{r.node.name}: {r.status}: {r.message}" for r in outcome.result if r.status in ("error", "fail")]
    assert outcome.success and not failed, "dbt build failed:\n" + "\n".join(failed)
    return warnings


# dbt's unit tests give the same result on every DuckDB build (fixed inputs, their own as_of): they run in one
# whole DuckDB build, test_mrr_models.py's playbook build, and on each other engine; every other DuckDB build of
# these tests leaves them out (≈ 57 nodes each).
NO_UNIT_TESTS = ("--exclude-resource-type", "unit_test")


def dbt_build(workdir: Path, warehouse: Path, as_of: date, extra: tuple[str, ...] = NO_UNIT_TESTS) -> Build:
    """One `dbt build` of the project on a DuckDB `warehouse`: every model and data test, with `extra` (by
    default the unit tests left out: NO_UNIT_TESTS)."""
    return Build(warehouse, run_dbt(workdir, as_of, {"KIZUNA_WAREHOUSE": str(warehouse)}, extra=extra))


def create_warehouse(path: Path, frames: Mapping[str, pd.DataFrame]) -> None:
    """A warehouse whose raw schema holds these rows (missing contract columns stay null)."""
    prepare_warehouse(path)
    con = duckdb.connect(str(path))
    try:
        for table, frame in frames.items():
            con.register("frame", frame)
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            con.execute(f"INSERT INTO raw.{table} ({columns}) SELECT {columns} FROM frame")
            con.unregister("frame")
    finally:
        con.close()


def load_source_dir(path: Path, source_dir: Path) -> None:
    """A warehouse whose raw schema holds a source directory's CSVs, typed by the contract (no gate:
    for tests and the benchmark, whose demo data is known to be clean)."""
    prepare_warehouse(path)
    con = duckdb.connect(str(path))
    try:
        con.execute("PRAGMA disable_progress_bar")
        for table in TABLES:
            csv = source_dir / f"{table.name}.csv"
            if not csv.exists():
                continue
            types = {c.name: c.type.value for c in table.columns}
            columns = ", ".join(f'"{c}"' for c in types)
            con.execute(
                f"INSERT INTO raw.{table.name} ({columns}, _source_file, _source_row) "
                f"SELECT {columns}, ?, row_number() OVER () + 1 "
                f"FROM read_csv(?, header = true, columns = {types!r}, nullstr = '')",
                [csv.name, str(csv)],
            )
    finally:
        con.close()


def replace_source_dir(path: Path, source_dir: Path) -> None:
    """The raw tables of an existing warehouse replaced with another day's export (load_source_dir's caveat holds)."""
    if path.exists():
        con = duckdb.connect(str(path))
        try:
            for (table,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [RAW_SCHEMA]
            ).fetchall():
                con.execute(f'DELETE FROM {RAW_SCHEMA}."{table}"')
        finally:
            con.close()
    load_source_dir(path, source_dir)


def normalised(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Same values, same representation: dates and timestamps as text, decimals and ints as floats."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            out[column] = values.dt.strftime("%Y-%m-%d %H:%M:%S")
        elif values.dtype == object:
            sample = values.dropna()
            first = sample.iloc[0] if len(sample) else None
            if first is not None and not isinstance(first, (str, bool)):
                try:
                    out[column] = pd.to_numeric(values)
                except (TypeError, ValueError):
                    out[column] = values.astype(str).where(values.notna(), None)
            if isinstance(first, date):
                out[column] = pd.to_datetime(values).dt.strftime("%Y-%m-%d %H:%M:%S")
        if pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].astype(float)
    return out.sort_values(keys, ignore_index=True)
