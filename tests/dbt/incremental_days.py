"""The demo's day 1 and its realistic next day, through the daily run's steps, built once a session and shared.

tests/demo/test_next_day.py, tests/dbt/test_incremental.py and tests/ops/test_incremental_crash.py read these
(copy a warehouse before writing to it): one day 1 build for all three instead of one each.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest

from kizuna import pipeline
from kizuna.core.settings import Settings
from kizuna.demo.generate import generate_demo_data
from kizuna.demo.next_day import next_day_demo_data
from kizuna.transform import dbt_runner

AS_OF = date(2026, 2, 17)  # a Tuesday: the next day is the 18th, mid-month, past the 15th's plan changes
NEXT = date(2026, 2, 18)
# The smallest demo with every kind of backdated change (the generator makes each at least once, whatever the
# rate); the 10,000 is run by hand with KIZUNA_TEST_INCREMENTAL_CUSTOMERS=10000 (docs/incremental.md).
CUSTOMERS = int(os.environ.get("KIZUNA_TEST_INCREMENTAL_CUSTOMERS", "1000"))
SEED = 11
RATE = 0.005  # the default change rate
# The full refresh builds every model without data tests, to keep the test short: the incremental day runs them.
MODELS_ONLY = "resource_type:seed resource_type:model"


@dataclass(frozen=True)
class Days:
    root: Path
    day1: Path  # day 1's export
    day2: Path  # the next day's export
    built1: Path  # warehouse: day 1 through ingest, gate and dbt build (every model and test), as the daily run
    built2: Path  # built1 with day 2 through the same steps: the incremental build, its month found from the load
    full2: Path  # built2 with every model built again with --full-refresh
    rebuilt: str  # what day 2's build said it rebuilt

    def settings(self, source_dir: Path, warehouse: Path, *, full_refresh: bool = False) -> Settings:
        return Settings(
            source_dir=source_dir,
            warehouse=warehouse,
            var_dir=self.root / "var",
            outbox_dir=self.root / "outbox",
            full_refresh=full_refresh,
        )


def run_day(settings: Settings, as_of: date) -> dbt_runner.BuildResult:
    """The daily run's steps up to the marts: ingest, gate (raises on a critical failure), dbt build (raises)."""
    pipeline.ingest(settings)
    pipeline.gate(settings, as_of)
    pipeline.prepare_marts_inputs(settings)
    return pipeline.build(settings, as_of)


@functools.cache
def _exports(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True)
    generate_demo_data(root / "day1", CUSTOMERS, SEED, AS_OF)
    day, _ = next_day_demo_data(root / "day1", root / "day2", SEED, change_rate=RATE)
    assert day == NEXT  # read from the files: the day after the latest event
    return root / "day1", root / "day2"


@functools.cache
def _days(root: Path) -> Days:
    day1, day2 = _exports(root)
    days = Days(root, day1, day2, root / "built1.duckdb", root / "built2.duckdb", root / "full2.duckdb", "")
    run_day(days.settings(day1, days.built1), AS_OF)
    shutil.copy(days.built1, days.built2)
    built = run_day(days.settings(day2, days.built2), NEXT)
    shutil.copy(days.built2, days.full2)
    dbt_runner.build(days.settings(day2, days.full2, full_refresh=True), NEXT, select=MODELS_ONLY)
    return Days(**{**days.__dict__, "rebuilt": built.rebuilt or ""})


def shared_exports(factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Day 1's export and the next day's, written on first use in the session."""
    return _exports(factory.getbasetemp() / "incremental-days")


def shared_days(factory: pytest.TempPathFactory) -> Days:
    """The exports and their warehouses, built on first use in the session, under its base temporary directory."""
    return _days(factory.getbasetemp() / "incremental-days")


def differences(left: Path, right: Path, *, ignore: Collection[str] = ()) -> dict[str, tuple[int, int]]:
    """Per table of marts.* (and intermediate.*): rows of one not in the other, each way (EXCEPT ALL), and a
    ('types', …) entry when the column names or types differ."""
    con = duckdb.connect(str(left), read_only=True)
    try:
        con.execute(f"ATTACH '{right}' AS other (READ_ONLY)")
        found: dict[str, dict[tuple[str, str], list[str]]] = {}
        for database, schema, table, cols in con.execute(
            "SELECT database_name, schema_name, table_name, list(column_name || ' ' || data_type ORDER BY column_index) "
            "FROM duckdb_columns() WHERE schema_name IN ('marts', 'intermediate') GROUP BY ALL"
        ).fetchall():
            found.setdefault(database, {})[schema, table] = cols
        theirs = found.pop("other")
        (mine,) = found.values()
        for ignored in ignore:
            schema, _, table = ignored.partition(".")
            for relations in (mine, theirs):
                relations.pop((schema, table), None)
        assert mine.keys() == theirs.keys()
        out: dict[str, tuple[int, int]] = {}
        for schema, table in sorted(mine):
            name = f"{schema}.{table}"
            if mine[schema, table] != theirs[schema, table]:
                out[name + " (types)"] = (1, 1)
                continue
            one = f'SELECT * FROM {schema}."{table}"'
            two = f'SELECT * FROM other.{schema}."{table}"'
            counts = tuple(
                con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0]  # type: ignore[index]
                for a, b in ((one, two), (two, one))
            )
            if counts != (0, 0):
                out[name] = counts  # type: ignore[assignment]
        return out
    finally:
        con.close()
