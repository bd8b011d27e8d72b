"""Reading a file in one pass: UTF-8 read in place, spreadsheet rows without a search for blank lines, the
findings pass only for a file that has findings, and the keyed diff as one aggregation."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.sources.files import stage_file
from kizuna.sources.ingest import stage_sources
from tests.sources.test_ingest import CUSTOMERS_HEADER, good_sources, load

CUSTOMERS = TABLES_BY_NAME["customers"]
HEADER = ",".join(CUSTOMERS_HEADER)


def _stage_customers(settings: Settings, text: bytes, tmp_dir: Path) -> tuple[object, list[str], list[tuple]]:
    """Stage `text` as customers.csv: (the staged file, findings as text, rows as (id, employees, row))."""
    path = settings.source_dir / "customers.csv"
    path.write_bytes(text)
    with connect(settings.warehouse) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {INCOMING_SCHEMA}")
        staged, findings, _ = stage_file(con, CUSTOMERS, path, INCOMING_SCHEMA, tmp_dir)
        rows = (
            con.execute(
                f"SELECT customer_id, employee_count, _source_row FROM {INCOMING_SCHEMA}.customers ORDER BY 3"
            ).fetchall()
            if staged
            else []
        )
    return staged, [str(f) for f in findings], rows


def test_a_utf8_file_with_a_bom_is_read_in_place_without_a_copy(settings: Settings, tmp_path: Path) -> None:
    tmp_dir = tmp_path / "ingest-tmp"
    text = codecs.BOM_UTF8 + f'{HEADER}\r\nC1,株式会社テスト,"1,200",,\r\nC2,テスト,30,,\r\n'.encode()
    staged, findings, rows = _stage_customers(settings, text, tmp_dir)
    assert findings == []
    assert staged.encoding == "utf-8-sig" and staged.header[0] == "customer_id"
    assert rows == [("C1", 1200, 2), ("C2", 30, 3)]
    assert not tmp_dir.exists() or not any(tmp_dir.iterdir())  # the old code wrote a UTF-8 copy there


def test_a_cp932_file_with_a_bad_byte_names_the_line_of_that_byte(settings: Settings) -> None:
    good_sources(settings.source_dir, encoding="cp932")
    path = settings.source_dir / "customers.csv"
    # Line 2 holds Japanese (not UTF-8); line 4's 0x81 0x20 is no CP932 character.
    path.write_bytes(path.read_bytes() + b"C3,\x81\x20broken,1,,\r\n")
    with pytest.raises(SourceContractError, match=r"customers.csv: is neither UTF-8 nor CP932.*line 4 .*read as CP932"):
        stage_sources(settings)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            "C1,a,1,,\nC2,b,2,,\nC3,c,x3,,\n",
            "customers.csv, row 4, column employee_count: is not a whole number (found 'x3')",
            id="plain",
        ),
        pytest.param(
            "C1,a,1,,\n\nC2,b,2,,\n\n\nC3,c,x3,,",
            "customers.csv, row 7, column employee_count: is not a whole number (found 'x3')",
            id="blank-lines-and-no-final-line-end",
        ),
        pytest.param(
            'C1,"two\nlines",1,,\nC2,,2,,\n',
            "customers.csv, row 3, column name: required value is empty",
            id="a-record-over-two-lines",
        ),
    ],
)
def test_a_refused_value_names_its_spreadsheet_row_and_column(
    settings: Settings, tmp_path: Path, body: str, message: str
) -> None:
    staged, findings, _ = _stage_customers(settings, f"{HEADER}\n{body}".encode(), tmp_path / "t")
    assert staged is None and findings == [message]


def test_rows_after_blank_lines_keep_their_spreadsheet_rows(settings: Settings, tmp_path: Path) -> None:
    """The line count says the rows are not 2, 3, 4, ...: the file is numbered as a spreadsheet shows it."""
    text = f"{HEADER}\r\nC1,a,1,,\r\n\r\nC2,b,2,,\r\nC3,c,3,,\r\n\r\n".encode()
    staged, findings, rows = _stage_customers(settings, text, tmp_path / "t")
    assert findings == [] and staged.rows == 3
    assert rows == [("C1", 1, 2), ("C2", 2, 4), ("C3", 3, 5)]


def test_a_key_written_twice_is_an_update(settings: Settings) -> None:
    """The diff compares a key's rows as a multiset: a duplicate row is a change even with equal hashes."""
    good_sources(settings.source_dir)
    load(settings)
    path = settings.source_dir / "customers.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines, lines[1]]))  # C1's row once more
    result = stage_sources(settings)
    with connect(settings.warehouse) as con:
        changes = con.execute(
            f"SELECT table_name, key, change FROM {INCOMING_SCHEMA}._load_changes ORDER BY ALL"
        ).fetchall()
    assert changes == [("customers", "C1", "updated")]
    assert {s.table: str(s.changes) for s in result.staged}["customers"] == "+0 ~1 -0"
