"""A file read again types only its new records (kizuna.sources.text_hashes): what it stages equals the full path's.

Each day 2 is staged twice from the same day 1: on the warehouse as published (its text hashes kept) and on a
copy without the kept text hashes (every record typed, as before). Everything staged must be equal: the typed
tables with their provenance, the replace lists, per-key and text hashes, the change list and the load record.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect, publish_incoming, staged_load_id
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv
from tests.quality.test_gate import AS_OF, CONTACTS, CUSTOMERS, INVOICES, SUBSCRIPTIONS, USAGE, base_rows

BOM = "\ufeff"


def _csv(header: list[str], lines: list[str]) -> str:
    return ",".join(header) + "\r\n" + "".join(f"{line}\r\n" for line in lines)


def _subscriptions() -> str:
    return _csv(SUBSCRIPTIONS, [",".join(r) for r in base_rows()["subscriptions"][1]])


DAY_ONE = {
    "customers.csv": _csv(
        CUSTOMERS,
        [
            "C1,株式会社一号,120,2024-01-05 10:00,tanaka@example.co.jp",
            "C2,二号商事株式会社,30,2024-02-01,",
            "C3,三号株式会社,8,2025-06-01,",
            "C4,四号株式会社,4,2025-07-01,",
            'C5,"株式会社\n五号",5,2025-08-01,',
        ],
    ),
    "contacts.csv": _csv(
        CONTACTS,
        [
            "P1,C1,ichi@example.co.jp,true,true,ja",
            "P2,C2,ni@@example,true,false,ja",  # quarantined by the gate on day 1
            "P3,C3,三@example.co.jp,true,true,en",
        ],
    ),
    "invoices.csv": BOM
    + _csv(
        INVOICES,
        ["I1,C1,2026-10-01 09:00,88000,JPY,paid", "I2,C3,2026-10-01 09:00,33000,JPY,open"],
    ),
    "usage.csv": _csv(
        USAGE,
        ["C1,2026-10-01,active_users,12", "C1,2026-10-01,seats,4", "C2,2026-10-01,active_users,3"],
    ),
    "subscriptions.csv": _subscriptions(),
}

DAY_TWO = {
    "customers.csv": _csv(
        CUSTOMERS,
        [
            "C3,三号株式会社,８,2025-06-01,",  # moved, and its text changed (full-width 8) with the same value
            "C2,二号商事ホールディングス株式会社,30,2024-02-01,",  # updated
            "",  # a blank line: the rows below are one further down in a spreadsheet
            "C1,株式会社一号,120,2024-01-05 10:00,tanaka@example.co.jp",  # moved
            'C5,"株式会社\n五号",5,2025-08-01,',  # a quoted newline, moved up (C4 deleted)
            "C6,六号株式会社,6,2026-11-01,",  # inserted
        ],
    ),
    "contacts.csv": _csv(
        CONTACTS,
        [
            "P3,C3,三@example.co.jp,true,true,en",  # moved
            "P2,C2,ni@example.co.jp,true,false,ja",  # fixed
            "P1,C1,ichi@example.co.jp,true,false,ja",  # updated
        ],
    ),
    "invoices.csv": BOM
    + _csv(
        INVOICES,
        [
            'I1,C1,2026-10-01 09:00,"88,000",JPY,paid',  # the text changed, the amount did not
            "I2,C3,2026-10-01 09:00,33000,JPY,open",
            "I3,C6,2026-11-01 09:00,6600,JPY,open",
        ],
    ),
    "usage.csv": _csv(
        USAGE,
        [
            "C2,2026-10-01,active_users,3",  # moved
            "C1,2026-10-01,active_users,12",
            "C1,2026-10-01,seats,5",  # changed (keyless: one row deleted, one inserted)
        ],
    ),
    "subscriptions.csv": _subscriptions(),
}

ENCODINGS = {"customers.csv": "cp932", "contacts.csv": "cp932"}  # invoices.csv is UTF-8 with a BOM


def _write(src: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (src / name).write_bytes(text.encode(ENCODINGS.get(name, "utf-8")))


def _staged(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """Every table of the incoming schema, every row (load ids and times aside), sorted."""
    with connect(settings.warehouse) as con:
        names = [
            str(r[0])
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw_incoming' ORDER BY 1"
            ).fetchall()
        ]
        tables = {}
        for name in names:
            columns = [
                str(r[0])
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw_incoming' "
                    "AND table_name = ? ORDER BY ordinal_position",
                    [name],
                ).fetchall()
            ]
            kept = ", ".join(f'"{c}"' for c in columns if c not in ("load_id", "loaded_at"))
            rows = con.execute(f'SELECT {kept} FROM raw_incoming."{name}"').fetchall()
            tables[name] = sorted(rows, key=repr)
        return tables


def _text_hash_tables(settings: Settings) -> list[str]:
    with connect(settings.warehouse) as con:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw_hashes' AND table_name LIKE '_texthashes__%' "
            "ORDER BY 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


def _full_path_copy(settings: Settings, root: Path) -> Settings:
    """A copy of the warehouse without the kept text hashes: the next load types every record."""
    root.mkdir()
    (root / "src").mkdir()
    copy = Settings(source_dir=settings.source_dir, warehouse=root / "warehouse.duckdb", var_dir=root / "var")
    shutil.copy(settings.warehouse, copy.warehouse)
    with connect(copy.warehouse) as con:
        for name in _text_hash_tables(copy):
            con.execute(f'DROP TABLE raw_hashes."{name}"')
    return copy


@pytest.fixture
def day_one(settings: Settings) -> Settings:
    _write(settings.source_dir, DAY_ONE)
    stage_sources(settings)
    verdict = gate_and_publish(settings, AS_OF)
    assert verdict.quarantined == {"contacts": 1}
    return settings


def test_a_day_two_staged_from_kept_text_hashes_equals_the_full_path(day_one: Settings, tmp_path: Path) -> None:
    # contacts: the gate quarantined a row, so raw is not what was staged and its text hashes are not kept.
    assert _text_hash_tables(day_one) == [
        f"_texthashes__{t}" for t in ("customers", "invoices", "subscriptions", "usage")
    ]
    full = _full_path_copy(day_one, tmp_path / "full")
    _write(day_one.source_dir, DAY_TWO)
    shortcut_result = stage_sources(day_one)
    full_result = stage_sources(full)

    shortcut, reference = _staged(day_one), _staged(full)
    assert list(shortcut) == list(reference)
    for name in reference:
        assert shortcut[name] == reference[name], name
    assert {s.table: (s.rows, str(s.changes)) for s in shortcut_result.staged} == {
        s.table: (s.rows, str(s.changes)) for s in full_result.staged
    }
    with connect(day_one.warehouse) as con:
        customers = con.execute(
            "SELECT customer_id, employee_count, _source_row FROM raw_incoming.customers ORDER BY 1"
        ).fetchall()
    assert customers == [("C1", 120, 5), ("C2", 30, 3), ("C3", 8, 2), ("C5", 5, 6), ("C6", 6, 7)]
    assert {s.table: str(s.changes) for s in shortcut_result.staged if s.table in ("customers", "invoices")} == {
        "customers": "+1 ~1 -1",
        "invoices": "+1 ~0 -0",
    }


def test_records_read_before_take_their_values_from_raw(day_one: Settings) -> None:
    """The shortcut at work: a raw value changed behind ingest's back (never done but here) is what a record
    with the same text stages as; a record whose text is new is typed from the file."""
    with connect(day_one.warehouse) as con:
        con.execute("UPDATE raw.invoices SET status = 'sentinel' WHERE invoice_id = 'I2'")
    _write(day_one.source_dir, DAY_TWO)
    stage_sources(day_one)
    with connect(day_one.warehouse) as con:
        statuses = con.execute(
            "SELECT invoice_id, status, _source_row FROM raw_incoming.invoices ORDER BY 1"
        ).fetchall()
    assert statuses == [("I1", "paid", 2), ("I2", "sentinel", 3), ("I3", "open", 4)]


def test_a_bad_value_in_a_new_record_is_named_as_by_the_full_path(day_one: Settings, tmp_path: Path) -> None:
    full = _full_path_copy(day_one, tmp_path / "full")
    day_two = dict(DAY_TWO)
    day_two["invoices.csv"] = day_two["invoices.csv"].replace("6600", "六千六百")
    _write(day_one.source_dir, day_two)
    with pytest.raises(SourceContractError) as shortcut:
        stage_sources(day_one)
    with pytest.raises(SourceContractError) as reference:
        stage_sources(full)
    assert [str(f) for f in shortcut.value.findings] == [str(f) for f in reference.value.findings]
    assert [(f.file, f.row, f.column) for f in shortcut.value.findings] == [("invoices.csv", 4, "amount")]


def test_a_full_refresh_types_every_record(day_one: Settings) -> None:
    with connect(day_one.warehouse) as con:
        con.execute("UPDATE raw.invoices SET status = 'sentinel' WHERE invoice_id = 'I2'")
    _write(day_one.source_dir, DAY_TWO)
    stage_sources(day_one.model_copy(update={"full_refresh": True}))
    with connect(day_one.warehouse) as con:
        statuses = con.execute("SELECT invoice_id, status FROM raw_incoming.invoices ORDER BY 1").fetchall()
    assert statuses == [("I1", "paid"), ("I2", "open"), ("I3", "open")]


def test_text_hashes_are_not_kept_for_a_table_the_gate_rewrote(day_one: Settings) -> None:
    """Published as staged, raw keeps the staged text hashes; not when the staged table no longer is what was
    read (here a row removed after ingest, as the gate's quarantine does)."""
    _write(day_one.source_dir, DAY_TWO)
    stage_sources(day_one)
    with connect(day_one.warehouse) as con:
        con.execute("DELETE FROM raw_incoming.invoices WHERE invoice_id = 'I3'")
    gate_and_publish(day_one, AS_OF)
    assert "_texthashes__invoices" not in _text_hash_tables(day_one)
    assert "_texthashes__contacts" in _text_hash_tables(day_one)  # read whole on day 2, published as staged
    with connect(day_one.warehouse) as con:
        kept = con.execute("SELECT count(*), sum(r) FROM raw_hashes._texthashes__contacts").fetchall()
    assert kept == [(3, 9)]


MAPPING = """
customers:
  file: "顧客*.csv"
  columns: {customer_id: 取引先ID, name: 取引先名}
subscriptions:
  file: "契約*.csv"
  keep: {区分: [契約]}
  columns:
    {subscription_id: 契約ID, customer_id: 取引先ID, start_date: 開始日, mrr: 月額, status: ステータス, currency: {constant: JPY}}
  values:
    status: {有効: active, 解約: canceled, "*": null}
"""
MAPPED_HEADER = ["契約ID", "取引先ID", "開始日", "月額", "ステータス", "区分"]


def _mapped(settings: Settings, root: Path, mapping: str, contracts: list[list[str]]) -> Settings:
    (root / "mapping.yaml").write_text(mapping, encoding="utf-8")
    (root / "sources.yaml").write_text(f"files:\n  mapping: {root / 'mapping.yaml'}\n", encoding="utf-8")
    write_csv(
        settings.source_dir / "顧客一覧.csv", ["取引先ID", "取引先名"], [["C1", "株式会社A"], ["C2", "株式会社B"]]
    )
    write_csv(settings.source_dir / "契約一覧.csv", MAPPED_HEADER, contracts, encoding="cp932")
    return settings.model_copy(update={"sources_config": root / "sources.yaml"})


def test_a_mapped_file_with_a_row_filter_equals_the_full_path(settings: Settings, tmp_path: Path) -> None:
    mapped = _mapped(
        settings,
        tmp_path,
        MAPPING,
        [
            ["K1", "C1", "2024/01/01", "10,000円", "有効", "契約"],
            ["Q1", "C2", "2024/01/01", "99,999", "有効", "見積"],  # filtered out: never staged, no text hash kept
            ["K2", "C2", "2024/02/01", "5000", "解約", "契約"],
        ],
    )
    stage_sources(mapped)
    with connect(settings.warehouse) as con:
        publish_incoming(con, str(staged_load_id(con)))
    assert "_texthashes__subscriptions" in _text_hash_tables(settings)
    full = _full_path_copy(mapped, tmp_path / "full").model_copy(update={"sources_config": tmp_path / "sources.yaml"})
    day_two = [
        ["K2", "C2", "2024/02/01", "5000", "解約", "契約"],  # moved
        ["Q1", "C2", "2024/01/01", "99,999", "有効", "見積"],
        ["K1", "C1", "2024/01/01", "10,000円", "有効", "契約"],
        ["K3", "C2", "2024/03/01", "7000", "不明", "契約"],  # inserted, its status mapped by "*"
    ]
    stage_sources(_mapped(settings, tmp_path, MAPPING, day_two))
    stage_sources(full)
    assert _staged(settings) == _staged(full)
    with connect(settings.warehouse) as con:
        rows = con.execute("SELECT subscription_id, status, _source_row FROM raw_incoming.subscriptions ORDER BY 1")
        assert rows.fetchall() == [("K1", "active", 4), ("K2", "canceled", 2), ("K3", None, 5)]


def test_a_changed_mapping_types_every_record(settings: Settings, tmp_path: Path) -> None:
    contracts = [
        ["K1", "C1", "2024/01/01", "10,000円", "有効", "契約"],
        ["K2", "C2", "2024/02/01", "5000", "解約", "契約"],
    ]
    stage_sources(_mapped(settings, tmp_path, MAPPING, contracts))
    with connect(settings.warehouse) as con:
        publish_incoming(con, str(staged_load_id(con)))
        con.execute("UPDATE raw.subscriptions SET status = 'sentinel'")
    stage_sources(_mapped(settings, tmp_path, MAPPING.replace("解約: canceled", "解約: cancelled"), contracts))
    with connect(settings.warehouse) as con:
        rows = con.execute("SELECT subscription_id, status FROM raw_incoming.subscriptions ORDER BY 1").fetchall()
    assert rows == [("K1", "active"), ("K2", "cancelled")]
