"""The shipped mappings load their example exports (HubSpot, Salesforce, a Japanese ledger) into the MRR marts.

One mapping goes through the whole Prefect daily flow; the other two through the same steps in-process (ingest →
gate → the ops inputs → dbt build, every model and data test). A daily run's fixed cost is the same for every
mapping, and the flow itself is tested on the demo data in test_daily.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from kizuna import pipeline
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect

EXPORTS = Path(__file__).parents[1] / "sources" / "exports"
AS_OF = dt.date(2026, 11, 20)


def through_the_daily_flow(source_dir: Path, warehouse: Path) -> None:
    """The Prefect daily flow, dbt in its one dbt-build task as `kizuna run` builds (KIZUNA_DBT_NODE_TASKS=never
    set by the test): a task run per dbt node costs ≈ 30 s on 2 cores and shows nothing about a mapping;
    tests/flows/test_support.py keeps that path."""
    from flows.daily import daily

    daily(source_dir=str(source_dir), warehouse=str(warehouse), as_of=AS_OF)


def through_the_same_steps_in_process(source_dir: Path, warehouse: Path) -> None:
    """The daily flow's ingest, gate and marts inputs as plain functions, then its dbt build: the same work but
    the campaigns, without a Prefect flow run and a task run each (the flow's fixed cost)."""
    settings = Settings(source_dir=source_dir, warehouse=warehouse)
    pipeline.ingest(settings)  # the same step functions the flow's tasks call
    pipeline.gate(settings, AS_OF)
    pipeline.prepare_marts_inputs(settings)
    pipeline.build(settings, AS_OF)  # raises on any failed model or data test, as the flow's build does


# Expected figures are worked out by hand from the files: e.g. HubSpot's closed-won deals 1,200,000, 600,000,
# 240,000 and 360,000 yen a year are 200,000 yen of MRR in four subscriptions of three paying companies.
@pytest.mark.parametrize(
    ("mapping", "ending_mrr", "paying", "files", "run"),
    [
        (
            "hubspot-export",
            Decimal(200_000),
            3,
            {"customers": "hubspot-crm-exports-all-companies-2026-11-20.csv"},
            through_the_daily_flow,
        ),
        (
            "salesforce-report",
            Decimal(295_000),
            3,
            {"deals": "opportunities-report-2026-11-20.csv"},
            through_the_same_steps_in_process,
        ),
        ("kintone-ja", Decimal(100_000), 3, {"contacts": "担当者一覧_20261120.csv"}, through_the_same_steps_in_process),
    ],
    ids=["hubspot-daily-flow", "salesforce", "japanese"],
)
def test_a_shipped_mapping_loads_its_export_and_gives_the_hand_worked_mrr(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mapping: str,
    ending_mrr: Decimal,
    paying: int,
    files: dict[str, str],
    run: Callable[[Path, Path], None],
) -> None:
    if run is through_the_daily_flow:
        request.getfixturevalue("prefect_harness")
        monkeypatch.setenv("KIZUNA_DBT_NODE_TASKS", "never")
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"files:\n  mapping: {mapping}\n", encoding="utf-8")
    monkeypatch.setenv("KIZUNA_SOURCES_CONFIG", str(sources_file))
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("KIZUNA_OUTBOX_DIR", str(tmp_path / "var" / "outbox"))
    warehouse = tmp_path / "warehouse.duckdb"

    run(EXPORTS / mapping, warehouse)

    with connect(warehouse) as con:
        october = con.execute(
            "SELECT ending_mrr, ending_customers FROM marts.mrr_kpis_monthly WHERE month = DATE '2026-10-01'"
        ).fetchone()
        loaded = dict(con.execute("SELECT table_name, source_file FROM ops.loads").fetchall())
    assert october == (ending_mrr, paying)
    for table, file in files.items():
        assert loaded[table] == file
