"""One scored demo warehouse for the package's tests: demo sources → raw → features → scores (trained and stored)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kizuna.core.settings import Settings
from kizuna.scoring.run import ScoreResult, score_warehouse
from kizuna.transform import dbt_runner
from tests.conftest import demo_settings, publish_demo_raw

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


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Demo sources → raw (published without the gate: its own tests cover it) → features → scores."""
    settings = demo_settings(tmp_path_factory.mktemp("scores"))
    publish_demo_raw(settings, CUSTOMERS, seed=7, as_of=AS_OF)
    dbt_runner.build(settings, AS_OF, select=SELECT)
    yield Demo(settings, score_warehouse(settings, AS_OF, scored_at=SCORED_AT))
