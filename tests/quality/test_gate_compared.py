"""Whether the gate checks a table's changed rows alone is said per table (kizuna.core.warehouse.compared_with_raw).

Ingest creates the staged change list before it reads any file (each file's cursor appends its own table's keys as
soon as the file is read), so the list's presence says nothing about a table: the staged _load's status and change
counts do. A first load and a --full-refresh day check every row; a day whose every file is unchanged checks none,
as a normal day checks none of its unchanged tables' rows.
"""

from __future__ import annotations

import pytest

from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import LOAD_CHANGES_STAGING, compared_with_raw, connect, table_exists
from kizuna.quality.changed_rows import is_incremental
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.quality.test_gate import AS_OF, base_rows, write_sources
from tests.quality.test_gate_changes import outcome

TABLES = ["customers", "contacts", "subscriptions", "invoices"]


def incremental(settings: Settings) -> dict[str, bool]:
    with connect(settings.warehouse) as con:
        assert table_exists(con, *LOAD_CHANGES_STAGING.split("."))  # made by every ingest, whatever it compared
        return {t: is_incremental(con, t, settings.full_refresh) for t in TABLES}


def test_first_load_unchanged_day_full_refresh_and_normal_day(settings: Settings) -> None:
    rows = base_rows()
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    assert incremental(settings) == dict.fromkeys(TABLES, False)  # a first load: nothing to compare with
    first = gate_and_publish(settings, AS_OF)
    assert not first.quarantined

    # Every file unchanged: every table reused and compared (no key listed), so no row is checked again.
    staged = stage_sources(settings)
    assert sorted(staged.unchanged) == sorted(TABLES)
    assert incremental(settings) == dict.fromkeys(TABLES, True)
    unchanged = gate_and_publish(settings, AS_OF)
    assert sum(unchanged.checked_rows.values()) == 0
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT count(*) FROM ops.load_changes").fetchone() == (0,)

    # --full-refresh: every file parsed and compared (the list is kept), yet every row checked.
    full = settings.model_copy(update={"full_refresh": True})
    staged = stage_sources(full)
    assert staged.unchanged == []
    assert incremental(full) == dict.fromkeys(TABLES, False)
    whole = gate_and_publish(full, AS_OF)
    assert outcome(whole) == outcome(unchanged)  # every row checked, the same verdicts
    assert whole.checked_rows["raw_customers"] == 3

    # A normal day: one customer renamed; contacts unchanged. Every table compared, one row checked.
    rows["customers"][1][1][1] = "二号商事"
    write_sources(settings.source_dir, rows)
    staged = stage_sources(settings)
    assert sorted(staged.unchanged) == ["contacts", "invoices", "subscriptions"]
    assert incremental(settings) == dict.fromkeys(TABLES, True)
    with connect(settings.warehouse) as con:
        assert compared_with_raw(con, "customers")
        listed = con.execute(f"SELECT table_name, key, change FROM {LOAD_CHANGES_STAGING}").fetchall()
    assert listed == [("customers", "C2", "updated")]
    normal = gate_and_publish(settings, AS_OF)
    assert normal.checked_rows["raw_customers"] == 1
    assert sum(normal.checked_rows.values()) == 1


def test_a_file_with_findings_is_not_compared_and_the_load_stages_nothing(settings: Settings) -> None:
    """Each file is compared on its reading cursor; a load with findings in another file still leaves nothing."""
    rows = base_rows()
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)

    rows["customers"][1][0][2] = "many"  # employee_count: not a number
    rows["invoices"][1][0][3] = "99000"
    write_sources(settings.source_dir, rows)
    with pytest.raises(SourceContractError, match="employee_count"):
        stage_sources(settings)
    with connect(settings.warehouse) as con:
        assert not table_exists(con, "raw_incoming", "_load_changes")
        assert not table_exists(con, "raw_incoming", "invoices")
