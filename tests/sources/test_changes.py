"""Ingest what changed: unchanged files skipped by hash, changed ones compared with the last published load."""

from __future__ import annotations

import pytest

from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.quality.gate import GateFailedError, gate_and_publish
from kizuna.sources.changes import options_sha256
from kizuna.sources.ingest import stage_sources
from kizuna.sources.mapping import TableMapping
from tests.quality.test_gate import AS_OF, base_rows, cell, load_good, write_sources
from tests.sources.test_ingest import raw_fingerprint


def table_oids(settings: Settings) -> dict[str, int]:
    """DuckDB's id of every raw table: a table replaced (even by equal rows) gets a new one."""
    with connect(settings.warehouse) as con:
        rows = con.execute("SELECT table_name, table_oid FROM duckdb_tables() WHERE schema_name = 'raw'").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def last_loads(settings: Settings) -> dict[str, tuple[object, ...]]:
    with connect(settings.warehouse) as con:
        rows = con.execute(
            "SELECT table_name, status, row_count, inserted_rows, updated_rows, deleted_rows FROM ops.loads "
            "WHERE load_id = (SELECT max(load_id) FROM ops.loads)"
        ).fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def load_changes(settings: Settings, load_id: str) -> set[tuple[str, str, str]]:
    with connect(settings.warehouse) as con:
        rows = con.execute(
            "SELECT table_name, key, change FROM ops.load_changes WHERE load_id = ?", [load_id]
        ).fetchall()
    return {(str(t), str(k), str(c)) for t, k, c in rows}


def test_first_load_inserts_every_key(settings: Settings) -> None:
    load_good(settings)
    loads = last_loads(settings)
    assert loads["customers"] == ("staged", 3, 3, 0, 0)
    assert loads["invoices"] == ("staged", 2, 2, 0, 0)


def test_unchanged_files_are_not_parsed_and_raw_is_kept(settings: Settings) -> None:
    # Day 1 quarantines a contact (malformed email); days 2 and 3's files are byte for byte the same.
    rows = base_rows()
    cell("contacts", 0, "email", "ichi@@example")(rows, settings.source_dir)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)
    before, oids = raw_fingerprint(settings), table_oids(settings)

    # Day 2: contacts is parsed again, as its last load left a row in quarantine (one quarantined on what other
    # rows say may pass now); the bad contact fails by itself again, so it is kept out without a new report.
    progress: list[str] = []
    result = stage_sources(settings, progress=progress.append)
    assert sorted(result.unchanged) == ["customers", "invoices", "subscriptions"]
    assert "customers.csv (unchanged)" in progress and "contacts.csv" in progress
    verdict = gate_and_publish(settings, AS_OF)
    assert verdict.quarantined == {} and verdict.kept_out["contacts"] == 1  # not reported again
    assert raw_fingerprint(settings) == before

    # Day 3: nothing is left in quarantine from the last loads: every file is reused as published.
    result = stage_sources(settings)
    assert sorted(result.unchanged) == ["contacts", "customers", "invoices", "subscriptions"]
    verdict = gate_and_publish(settings, AS_OF)
    assert verdict.quarantined == {}
    assert raw_fingerprint(settings) == before
    kept = ("customers", "invoices", "subscriptions")  # reused as published since day 1: the same tables
    assert {t: table_oids(settings)[t] for t in kept} == {t: oids[t] for t in kept}
    loads = last_loads(settings)
    assert loads["contacts"] == ("unchanged", 2, 0, 0, 0)
    assert loads["customers"] == ("unchanged", 3, 0, 0, 0)
    assert load_changes(settings, result.load_id) == set()


def test_inserted_updated_deleted_keys_are_exact(settings: Settings) -> None:
    load_good(settings)
    rows = base_rows()
    customers = rows["customers"][1]
    customers[1][1] = "二号商事ホールディングス株式会社"  # C2 renamed: updated
    customers[0][2] = "１２０"  # C1's employee count in full-width digits: the same value, not a change
    customers.append(["C4", "四号株式会社", "12", "2026-11-01", ""])  # inserted
    customers.reverse()  # rows moved in the file: not a change
    contacts = rows["contacts"][1]
    del contacts[2]  # P3 deleted
    contacts.append(["P4", "C4", "yon@example.co.jp", "true", "true", "ja"])
    rows["invoices"][1][1][5] = "paid"  # I2 paid: updated
    write_sources(settings.source_dir, rows)

    result = stage_sources(settings)
    assert result.unchanged == ["subscriptions"]
    gate_and_publish(settings, AS_OF)

    assert load_changes(settings, result.load_id) == {
        ("customers", "C2", "updated"),
        ("customers", "C4", "inserted"),
        ("contacts", "P3", "deleted"),
        ("contacts", "P4", "inserted"),
        ("invoices", "I2", "updated"),
    }
    with connect(settings.warehouse) as con:
        before = dict(
            con.execute(
                "SELECT key, before_row::JSON ->> '$.name' FROM ops.load_changes "
                "WHERE table_name = 'customers' AND load_id = ?",
                [result.load_id],
            ).fetchall()
        )
        deleted = con.execute(
            "SELECT before_row::JSON ->> '$.email' FROM ops.load_changes WHERE key = 'P3' AND change = 'deleted'"
        ).fetchone()
    assert before == {"C2": "二号商事株式会社", "C4": None}  # the row an update replaced; none for an insert
    assert deleted == ("san@example.co.jp",)
    loads = last_loads(settings)
    assert loads["customers"] == ("staged", 4, 1, 1, 0)
    assert loads["contacts"] == ("staged", 3, 1, 0, 1)
    assert loads["invoices"] == ("staged", 2, 0, 1, 0)
    assert loads["subscriptions"] == ("unchanged", 3, 0, 0, 0)


def test_quarantined_changes_are_counted_as_published(settings: Settings) -> None:
    load_good(settings)
    rows = base_rows()
    rows["contacts"][1][0][2] = "ichi@@example"  # P1 updated, then quarantined: raw no longer has it
    write_sources(settings.source_dir, rows)
    result = stage_sources(settings)
    verdict = gate_and_publish(settings, AS_OF)
    assert verdict.quarantined == {"contacts": 1}
    assert load_changes(settings, result.load_id) == {("contacts", "P1", "deleted")}
    assert last_loads(settings)["contacts"] == ("staged", 2, 0, 0, 1)


def test_a_change_of_reading_options_stages_the_file_again(settings: Settings) -> None:
    load_good(settings)
    # Naive timestamps are read in the configured time zone: the same bytes give other values.
    other = settings.model_copy(update={"timezone": "UTC"})
    result = stage_sources(other)
    assert "customers" not in result.unchanged
    gate_and_publish(other, AS_OF)
    assert {(k, c) for t, k, c in load_changes(settings, result.load_id) if t == "customers"} == {
        ("C1", "updated"),
        ("C2", "updated"),
        ("C3", "updated"),
    }
    # A mapping's options are part of the fingerprint as well.
    customers = TABLES_BY_NAME["customers"]
    plain = TableMapping("customers", "companies.csv", headers={"name": "Company name"})
    renamed = TableMapping("customers", "companies.csv", headers={"name": "Company"})
    assert options_sha256(customers, plain, "Asia/Tokyo") != options_sha256(customers, renamed, "Asia/Tokyo")
    assert options_sha256(customers, plain, "Asia/Tokyo") == options_sha256(customers, plain, "Asia/Tokyo")


def test_full_refresh_stages_every_file(settings: Settings) -> None:
    load_good(settings)
    result = stage_sources(settings.model_copy(update={"full_refresh": True}))
    assert result.unchanged == []
    assert result.staged[0].changes is not None and str(result.staged[0].changes) == "+0 ~0 -0"


@pytest.mark.parametrize("stage", ["ingest", "gate"], ids=["contract-error", "gate-stop"])
def test_a_failing_day_two_leaves_day_one(settings: Settings, stage: str) -> None:
    load_good(settings)
    before = raw_fingerprint(settings)
    with connect(settings.warehouse) as con:
        loads_before = con.execute("SELECT * FROM ops.loads ORDER BY ALL").fetchall()
        changes_before = con.execute("SELECT * FROM ops.load_changes ORDER BY ALL").fetchall()
    rows = base_rows()
    rows["customers"][1][1][1] = "二号商事ホールディングス株式会社"
    if stage == "ingest":
        rows["contacts"][1][1][2] = ""  # a required value left empty
    else:
        rows["subscriptions"][1][0][4] = "-80000"  # a negative MRR stops the gate
    write_sources(settings.source_dir, rows)
    with pytest.raises(SourceContractError if stage == "ingest" else GateFailedError):
        stage_sources(settings)
        gate_and_publish(settings, AS_OF)
    assert raw_fingerprint(settings) == before
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT * FROM ops.loads ORDER BY ALL").fetchall() == loads_before
        assert con.execute("SELECT * FROM ops.load_changes ORDER BY ALL").fetchall() == changes_before


# Two addresses DuckDB's hash() cannot tell apart: they differ only in the last byte of their first and second
# 8-byte words, where its string hash lets two differences cancel (about 3 in 1,000 such pairs collide; found by
# search, as real exports hold many numbered values like these: two lines of a 1M-customer subscriptions.csv did).
SAME_HASH = ("0925356976491494@example.co.jp", "0925356076491499@example.co.jp")


def test_an_update_is_seen_even_where_duckdbs_hash_collides(settings: Settings) -> None:
    with connect(settings.warehouse) as con:
        assert con.execute("SELECT hash(?) = hash(?)", list(SAME_HASH)).fetchone() == (True,)  # still a collision
    rows = base_rows()
    cell("contacts", 0, "email", SAME_HASH[0])(rows, settings.source_dir)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)
    cell("contacts", 0, "email", SAME_HASH[1])(rows, settings.source_dir)  # P1's address corrected
    write_sources(settings.source_dir, rows)

    result = stage_sources(settings)
    gate_and_publish(settings, AS_OF)

    assert load_changes(settings, result.load_id) == {("contacts", "P1", "updated")}
    with connect(settings.warehouse) as con:
        published = con.execute("SELECT email FROM raw.contacts WHERE contact_id = 'P1'").fetchone()
    assert published == (SAME_HASH[1],)
