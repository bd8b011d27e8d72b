"""Publishing a changed table applies its delta to raw (core/raw_delta.py): raw ends equal to a copy of the
staged table, provenance included, without the table being written again."""

from __future__ import annotations

import logging

import duckdb
import pytest

from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.raw_lines import materialize_staged
from kizuna.core.settings import Settings
from kizuna.core.warehouse import _side, connect, mark_rewritten, publish_incoming, staged_load_id
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.quality.test_gate import AS_OF, USAGE, USAGE_ROWS, base_rows, write_sources
from tests.sources.test_changes import load_changes
from tests.sources.test_ingest import raw_fingerprint

TABLES = ("customers", "contacts", "invoices", "usage")


def _fingerprint(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, str]:
    """Every row of a table, every column, as a sorted multiset (the staged table before publishing: its copy)."""
    sql = "SELECT count(*) || ':' || coalesce(md5(string_agg(CAST(r AS VARCHAR), '|' ORDER BY CAST(r AS VARCHAR))), '')"
    return {t: str(con.execute(f'{sql} FROM {schema}."{t}" r').fetchall()[0][0]) for t in TABLES}


def deltas(caplog: pytest.LogCaptureFixture, logger: str = "kizuna.core.raw_delta") -> list[tuple[str, int, int]]:
    """(table, published rows replaced, staged rows put instead) of every table published as a delta: by its
    replace list (raw_delta), or by its changed lines (logger kizuna.core.raw_lines)."""
    return [r.args for r in caplog.records if r.name == logger]  # type: ignore[misc]


def assert_kept_hashes_describe_raw(settings: Settings, tables: tuple[str, ...] = TABLES) -> None:
    """The per-key hashes kept at publish (raw_hashes) are those of raw as published, key by key."""
    with connect(settings.warehouse) as con:
        for t in tables:
            side = _side(con, TABLES_BY_NAME[t], "raw")
            fresh = f"SELECT key, sum(h) AS h, count(*) AS n, sum(p) AS p FROM ({side}) GROUP BY key"
            differ = con.execute(
                f'SELECT count(*) FROM (({fresh}) EXCEPT ALL (SELECT * FROM raw_hashes."{t}")) UNION ALL '
                f'SELECT count(*) FROM ((SELECT * FROM raw_hashes."{t}") EXCEPT ALL ({fresh}))'
            ).fetchall()
            assert differ == [(0,), (0,)], t


def _day_one(settings: Settings) -> None:
    rows = base_rows()
    rows["usage"] = (USAGE, USAGE_ROWS)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)


def test_a_day_two_is_published_as_a_delta_equal_to_a_copy(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    _day_one(settings)
    assert_kept_hashes_describe_raw(settings)  # kept from the first load on
    caplog.set_level(logging.INFO, logger="kizuna.core.raw_delta")
    caplog.set_level(logging.INFO, logger="kizuna.core.raw_lines")
    rows = base_rows()
    customers = rows["customers"][1]
    customers[1][1] = "二号商事ホールディングス株式会社"  # C2 updated
    customers.append(["C4", "四号株式会社", "12", "2026-11-01", ""])  # C4 inserted
    customers[0], customers[2] = customers[2], customers[0]  # C1 and C3 only moved in the file
    contacts = rows["contacts"][1]
    del contacts[1]  # P2 deleted: P3 moves up a row
    contacts[0][2] = "ichi@@example"  # P1 updated to a bad email: the gate quarantines it
    contacts.append(["P4", "C4", "yon@example.co.jp", "true", "true", "ja"])  # P4 inserted
    rows["usage"] = (USAGE, [USAGE_ROWS[1], USAGE_ROWS[0], ["C2", "2026-10-01", "active_users", "3"]])  # keyless
    write_sources(settings.source_dir, rows)

    result = stage_sources(settings)
    assert sorted(result.unchanged) == ["invoices", "subscriptions"]
    copies: dict[str, str] = {}
    verdict = gate_and_publish(
        settings, AS_OF, before_publish=lambda con: copies.update(_fingerprint(con, "raw_incoming"))
    )
    assert verdict.quarantined == {"contacts": 1}

    assert {t: v for t, v in raw_fingerprint(settings).items() if t in TABLES} == copies
    with connect(settings.warehouse) as con:
        moved = con.execute("SELECT customer_id, _source_row FROM raw.customers ORDER BY 1").fetchall()
        contacts_left = con.execute("SELECT contact_id, _source_row FROM raw.contacts ORDER BY 1").fetchall()
        usage_rows = con.execute("SELECT _source_row FROM raw.usage ORDER BY 1").fetchall()
    assert moved == [("C1", 4), ("C2", 3), ("C3", 2), ("C4", 5)]
    assert contacts_left == [("P3", 3), ("P4", 4)]  # P1 quarantined, P2 deleted, P3 one row up
    assert usage_rows == [(2,), (3,), (4,)]
    # The changed tables were applied to, not copied: those staged from their changed lines by their rows,
    # contacts (made a table by the gate's quarantine) by its replace list.
    assert set(deltas(caplog, "kizuna.core.raw_lines")) == {
        ("customers", 3, 4),  # rows 2-4 replaced (C3 and C1 moved there, C2 updated); C4 added at row 5
        ("usage", 3, 3),
    }
    assert deltas(caplog) == [("contacts", 3, 2)]  # P1 quarantined, P2 deleted, P3 moved; P3 and P4 put
    assert ("customers", "C2", "updated") in load_changes(settings, result.load_id)
    assert_kept_hashes_describe_raw(settings)
    assert not any(k in ("C1", "C3") for _, k, _ in load_changes(settings, result.load_id))  # a move: no change


def test_a_table_the_gate_rewrote_is_compared_again_before_its_delta_is_applied(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A value rewritten after ingest compared the table (as the gate's normalising does, saying so with
    mark_rewritten): the delta applied is the one of the table as published."""
    _day_one(settings)
    rows = base_rows()
    rows["customers"][1][1][1] = "二号商事ホールディングス株式会社"
    rows["usage"] = (USAGE, USAGE_ROWS)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        materialize_staged(con, "raw_incoming", "customers")  # as the gate does before it writes
        con.execute("UPDATE raw_incoming.customers SET name = '三号' WHERE customer_id = 'C3'")
        mark_rewritten(con, "customers")
        caplog.set_level(logging.INFO, logger="kizuna.core.raw_delta")
        copies = _fingerprint(con, "raw_incoming")
        publish_incoming(con, str(staged_load_id(con)))
    assert {t: v for t, v in raw_fingerprint(settings).items() if t in TABLES} == copies
    with connect(settings.warehouse) as con:
        names = con.execute("SELECT customer_id, name FROM raw.customers ORDER BY 1").fetchall()
    assert names == [("C1", "株式会社一号"), ("C2", "二号商事ホールディングス株式会社"), ("C3", "三号")]
    assert deltas(caplog) == [("customers", 2, 2)]
    assert_kept_hashes_describe_raw(settings, ("customers",))


def test_equal_rows_of_a_keyless_table_are_published_as_a_multiset(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Equal rows (the gate refuses them, a load published without the gate keeps them): one of two deleted, the
    other moved, a new row twice; raw holds each as often, at its own spreadsheet row."""
    rows = base_rows()
    rows["usage"] = (USAGE, [*USAGE_ROWS, USAGE_ROWS[0]])
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        publish_incoming(con, str(staged_load_id(con)))
    caplog.set_level(logging.INFO, logger="kizuna.core.raw_lines")
    rows["usage"] = (USAGE, [USAGE_ROWS[1], USAGE_ROWS[0], USAGE_ROWS[2], USAGE_ROWS[2]])
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        copies = _fingerprint(con, "raw_incoming")
        publish_incoming(con, str(staged_load_id(con)))
        usage = con.execute("SELECT customer_id, month::VARCHAR, _source_row FROM raw.usage ORDER BY 3").fetchall()
    assert raw_fingerprint(settings)["usage"] == copies["usage"]
    assert usage == [("C1", "2026-10-01", 2), ("C1", "2026-09-01", 3), ("C3", "2026-10-01", 4), ("C3", "2026-10-01", 5)]
    assert_kept_hashes_describe_raw(settings, ("usage",))
    # Rows 2, 3 and 5 changed lines (row 4 kept its line): each replaced by a copy of a raw row with its line.
    assert deltas(caplog, "kizuna.core.raw_lines") == [("usage", 3, 3)]


def test_a_warehouse_without_kept_hashes_compares_with_raw_and_keeps_them(settings: Settings) -> None:
    """A warehouse published by an older kizuna (no raw_hashes) or whose kept hashes no longer fit raw: the
    load is compared with the published rows, the same changes found, and the hashes kept from then on."""
    _day_one(settings)
    with connect(settings.warehouse) as con:
        con.execute("DROP TABLE raw_hashes.customers")
        con.execute("DELETE FROM raw_hashes.contacts WHERE key = 'P1'")  # describes fewer rows than raw holds
    rows = base_rows()
    rows["customers"][1][1][1] = "二号商事ホールディングス株式会社"
    rows["contacts"][1][0][5] = "en"
    rows["usage"] = (USAGE, USAGE_ROWS)
    write_sources(settings.source_dir, rows)
    result = stage_sources(settings)
    gate_and_publish(settings, AS_OF)
    assert load_changes(settings, result.load_id) == {("customers", "C2", "updated"), ("contacts", "P1", "updated")}
    assert_kept_hashes_describe_raw(settings, ("customers", "contacts"))
