"""The shipped mappings load their example exports (HubSpot, Salesforce, a Japanese ledger) through the daily flow."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from kizuna.core.warehouse import connect

EXPORTS = Path(__file__).parents[1] / "sources" / "exports"
AS_OF = dt.date(2026, 11, 20)


# Expected figures are worked out by hand from the files: e.g. HubSpot's closed-won deals 1,200,000, 600,000,
# 240,000 and 360,000 yen a year are 200,000 yen of MRR in four subscriptions of three paying companies.
@pytest.mark.parametrize(
    ("mapping", "ending_mrr", "paying", "files"),
    [
        ("hubspot-export", Decimal(200_000), 3, {"customers": "hubspot-crm-exports-all-companies-2026-11-20.csv"}),
        ("salesforce-report", Decimal(295_000), 3, {"deals": "opportunities-report-2026-11-20.csv"}),
        ("kintone-ja", Decimal(100_000), 3, {"contacts": "担当者一覧_20261120.csv"}),
    ],
    ids=["hubspot", "salesforce", "japanese"],
)
def test_a_shipped_mapping_loads_its_export_through_the_daily_run(
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mapping: str,
    ending_mrr: Decimal,
    paying: int,
    files: dict[str, str],
) -> None:
    from flows.daily import daily

    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"files:\n  mapping: {mapping}\n", encoding="utf-8")
    monkeypatch.setenv("KIZUNA_SOURCES_CONFIG", str(sources_file))
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("KIZUNA_OUTBOX_DIR", str(tmp_path / "var" / "outbox"))
    warehouse = tmp_path / "warehouse.duckdb"

    daily(source_dir=str(EXPORTS / mapping), warehouse=str(warehouse), as_of=AS_OF)

    with connect(warehouse) as con:
        october = con.execute(
            "SELECT ending_mrr, ending_customers FROM marts.mrr_kpis_monthly WHERE month = DATE '2026-10-01'"
        ).fetchone()
        loaded = dict(con.execute("SELECT table_name, source_file FROM ops.loads").fetchall())
    assert october == (ending_mrr, paying)
    for table, file in files.items():
        assert loaded[table] == file
