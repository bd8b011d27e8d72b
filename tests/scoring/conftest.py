"""One scored demo warehouse for the package's tests: demo sources → raw → features → scores (trained and stored)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kizuna import dbt_runner
from kizuna.demo.generate import generate_demo_data
from kizuna.scoring.run import ScoreResult, score_warehouse
from kizuna.settings import Settings
from kizuna.sources.ingest import stage_sources
from kizuna.warehouse import connect, publish_incoming, staged_load_id

AS_OF = dt.date(2026, 11, 23)
CUSTOMERS = 1500
# stg_crm__contacts: a relationships test on stg_crm__customers reads it.
SELECT = "+int_customer_features_monthly stg_crm__contacts"
SCORED_AT = dt.datetime(2026, 11, 23, 6, 0)
# Data dated on or after this day is rewritten in the leakage test; snapshots up to it must not move.
CUTOFF = dt.date(2026, 6, 1)


@dataclass
class Demo:
    settings: Settings
    result: ScoreResult


def scores_settings(root: Path) -> Settings:
    return Settings(
        source_dir=root / "src", warehouse=root / "warehouse.duckdb", var_dir=root / "var", outbox_dir=root / "outbox"
    )


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Demo sources → raw (published without the gate: its own tests cover it) → features → scores."""
    settings = scores_settings(tmp_path_factory.mktemp("scores"))
    generate_demo_data(settings.source_dir, customers=CUSTOMERS, seed=7, as_of=AS_OF)
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        load_id = staged_load_id(con)
        assert load_id is not None
        publish_incoming(con, load_id)
    dbt_runner.build(settings, AS_OF, select=SELECT)
    yield Demo(settings, score_warehouse(settings, AS_OF, scored_at=SCORED_AT))
