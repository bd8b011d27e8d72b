"""Shared fixtures: one Prefect harness per session, settings pointing at temporary directories."""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

# Before Prefect is imported anywhere: a private PREFECT_HOME, no telemetry, quiet logs.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="kizuna-prefect-home-")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
# The session's Prefect harness sets an API URL, so "auto" would make every dbt node of every in-process flow run
# its own task run (≈ 140 ms each, ≈ 30-40 s a build). dbt runs in one task here, as `kizuna run` builds; the node
# tasks are tested on a small selection in tests/flows/test_support.py.
os.environ.setdefault("KIZUNA_DBT_NODE_TASKS", "never")

from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir

from kizuna.core.runtime import quiet_third_parties
from kizuna.core.settings import Settings
from tests.postgres_server import postgres_server  # noqa: F401  (session fixture: one PostgreSQL server)
from tests.warehouse_engines import engine_con, engine_target  # noqa: F401  (a warehouse on each engine)

quiet_third_parties()

# Property-based tests (tests/reliability/test_*_properties.py). "ci", the default, is deterministic (the same
# examples every run), keeps no example database and sizes each property by tests.reliability.conftest.examples(n).
# KIZUNA_HYPOTHESIS_PROFILE=deep searches 20 times longer, randomly. Hypothesis's caches (Unicode tables, constants
# found in the code) go to the system's temporary folder, never a .hypothesis folder in the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "kizuna-hypothesis")
hypothesis_settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, database=None)
hypothesis_settings.register_profile("deep", max_examples=2000, deadline=None, database=None)
hypothesis_settings.load_profile(os.environ.get("KIZUNA_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (starting one costs 10-40 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def settings_under(root: Path) -> Settings:
    """Settings whose every output lives under root; sources in root/src (made here)."""
    (root / "src").mkdir()
    return Settings(
        source_dir=root / "src",
        warehouse=root / "warehouse.duckdb",
        var_dir=root / "var",
        outbox_dir=root / "var" / "outbox",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every output lives under tmp_path; sources in tmp_path/src."""
    return settings_under(tmp_path)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def record_passing_gate(con: duckdb.DuckDBPyConnection) -> None:
    """Mark the warehouse as gated, as a daily run leaves it: campaigns refuse to send otherwise."""
    from kizuna.quality.gate import GateVerdict, record_verdict
    from kizuna.quality.validate import CheckResult

    check = CheckResult(
        "raw_customers",
        "customers",
        "expect_column_values_to_be_unique",
        "customer_id",
        "duplicate value",
        "critical",
        True,
    )
    record_verdict(con, GateVerdict("00000000T000000000000Z-test", [check]))


def demo_settings(root: Path) -> Settings:
    """Settings with every path under root, for a demo warehouse built by a test."""
    return Settings(
        source_dir=root / "src", warehouse=root / "warehouse.duckdb", var_dir=root / "var", outbox_dir=root / "outbox"
    )


def publish_demo_raw(settings: Settings, customers: int, seed: int, as_of: dt.date) -> None:
    """Demo sources → staged → raw, published without the gate (its own tests cover it), ready for dbt."""
    from kizuna.core.warehouse import connect, publish_incoming, staged_load_id
    from kizuna.demo.generate import generate_demo_data
    from kizuna.sources.ingest import stage_sources

    generate_demo_data(settings.source_dir, customers=customers, seed=seed, as_of=as_of)
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        load_id = staged_load_id(con)
        assert load_id is not None
        publish_incoming(con, load_id)
