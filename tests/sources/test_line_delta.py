"""A CSV file staged by its changed lines (kizuna.sources.line_delta) stages, gates and publishes exactly what a whole
read of it does: every day-2 file here is loaded into two copies of the same day-1 warehouse, one of which has had
its kept lines dropped (so it reads every file whole), and both must end the same, row for row and key for key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.quality.gate import GateFailedError, gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.conftest import settings_under, write_csv
from tests.quality.test_gate import AS_OF, USAGE, USAGE_ROWS, base_rows, write_sources
from tests.sources.test_ingest import raw_fingerprint

Rows = dict[str, tuple[list[str], list[list[str]]]]


def _day_one() -> Rows:
    rows = base_rows()
    rows["usage"] = (USAGE, [list(r) for r in USAGE_ROWS])
    return rows


def _state(settings: Settings) -> dict[str, object]:
    """Everything a load leaves: raw, the kept per-key hashes and lines, the load's counts and changes, quarantine."""
    raw = raw_fingerprint(settings)
    with connect(settings.warehouse) as con:

        def rows(sql: str) -> list[tuple[object, ...]]:
            return sorted(con.execute(sql).fetchall(), key=repr)

        kept = {
            f"{schema}.{t}": rows(f'SELECT * FROM {schema}."{t}"')
            for schema in ("raw_hashes", "raw_lines")
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
            ).fetchall()
        }
        return {
            "raw": raw,
            "kept": kept,
            "loads": rows(
                "SELECT table_name, row_count, staged_rows, inserted_rows, updated_rows, deleted_rows FROM ops.loads "
                "WHERE load_id = (SELECT max(load_id) FROM ops.loads)"
            ),
            "changes": rows(
                "SELECT table_name, key, change, before_row FROM ops.load_changes "
                "WHERE load_id = (SELECT max(load_id) FROM ops.load_changes)"
            ),
            "quarantine": rows(
                "SELECT table_name, source_row, column_name, rule FROM quarantine.rows "
                "WHERE load_id = (SELECT max(load_id) FROM quarantine.rows)"
            )
            if con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quarantine'"
            ).fetchone()[0]
            else [],
        }


def _load(settings: Settings) -> str:
    """Ingest, gate and publish what the source directory holds; the error's text if ingest refused it."""
    try:
        stage_sources(settings)
    except SourceContractError as exc:
        return str(exc)
    try:
        gate_and_publish(settings, AS_OF)
    except GateFailedError as exc:
        return "\n".join(str(exc).splitlines()[1:])  # its first line names the load and the report
    return "published"


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Settings, Settings]:
    """Two warehouses after the same day 1: `lines` keeps its lines, `whole` has them made unusable."""
    (tmp_path / "lines").mkdir()
    (tmp_path / "whole").mkdir()
    lines, whole = settings_under(tmp_path / "lines"), settings_under(tmp_path / "whole")
    for s in (lines, whole):
        write_sources(s.source_dir, _day_one())
        assert _load(s) == "published"
    with connect(whole.warehouse) as con:  # kept lines that fit no file: every changed file is read whole
        for (table,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw_lines'"
        ).fetchall():
            con.execute(f"COMMENT ON TABLE raw_lines.\"{table}\" IS 'another file'")
    return lines, whole


def _day(pair: tuple[Settings, Settings], write: Callable[[Path], None], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Load the same files into both; assert they end the same; the tables the `lines` side published by lines."""
    caplog.clear()
    caplog.set_level(logging.INFO, logger="kizuna.core.raw_lines")
    lines, whole = pair
    outcomes = []
    for s in (lines, whole):
        write(s.source_dir)
        outcomes.append(_load(s))
        if s is lines:
            by_lines = [str(r.args[0]) for r in caplog.records if r.name == "kizuna.core.raw_lines"]  # type: ignore[index]
    assert outcomes[0] == outcomes[1]
    on_lines, on_whole = _state(lines), _state(whole)
    for part, value in on_whole.items():
        if isinstance(value, dict):
            assert sorted(on_lines[part]) == sorted(value), part  # type: ignore[call-overload]
            for name, got in value.items():
                assert on_lines[part][name] == got, f"{part}: {name}"  # type: ignore[index]
        assert on_lines[part] == value, part
    return sorted(by_lines)


def test_changed_lines_are_staged_alone_and_publish_what_a_whole_read_does(
    pair: tuple[Settings, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    def write(src: Path) -> None:
        rows = _day_one()
        customers = rows["customers"][1]
        customers[1][1] = "二号商事ホールディングス株式会社"  # C2 updated in place
        customers.insert(1, ["C4", "四号株式会社", "12", "2026-11-01", ""])  # C4 inserted mid-file: C2, C3 move down
        contacts = rows["contacts"][1]
        del contacts[0]  # P1 deleted: P2 and P3 move up
        rows["invoices"][1].append(["I3", "C2", "2026-11-01 09:00", "40000", "JPY", "open"])  # appended
        usage = rows["usage"][1]
        usage[0], usage[2] = usage[2], usage[0]  # lines swapped: copies of their rows, at their new rows
        write_sources(src, rows)

    assert _day(pair, write, caplog) == ["contacts", "customers", "invoices", "usage"]
    with connect(pair[0].warehouse) as con:
        customers = con.execute("SELECT customer_id, _source_row FROM raw.customers ORDER BY 2").fetchall()
        usage = con.execute("SELECT customer_id, _source_row FROM raw.usage ORDER BY 2").fetchall()
    assert customers == [("C1", 2), ("C4", 3), ("C2", 4), ("C3", 5)]
    assert usage == [("C3", 2), ("C1", 3), ("C1", 4)]


def test_a_refused_value_on_a_changed_line_is_named_at_its_row_today(
    pair: tuple[Settings, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    before = raw_fingerprint(pair[0])

    def write(src: Path) -> None:
        rows = _day_one()
        del rows["invoices"][1][0]  # I1 gone: I2 moves up to row 2
        rows["invoices"][1].append(["I3", "C2", "2026-11-31 09:00", "40000", "JPY", "open"])  # row 3, bad date
        write_sources(src, rows)

    assert _day(pair, write, caplog) == []
    error = _load(pair[0])
    assert "invoices.csv" in error and "row 3" in error and "issued_at" in error, error
    assert raw_fingerprint(pair[0]) == before


def test_a_quarantined_changed_line_is_checked_again_the_next_day(
    pair: tuple[Settings, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    def write(src: Path) -> None:
        rows = _day_one()
        rows["contacts"][1][1][2] = "ni@@example"  # P2's address broken: quarantined, its line not kept
        write_sources(src, rows)

    _day(pair, write, caplog)
    with connect(pair[0].warehouse) as con:
        assert con.execute("SELECT count(*) FROM raw.contacts WHERE contact_id = 'P2'").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM raw_lines.contacts").fetchone() == (2,)
    _day(pair, write, caplog)  # the same file again: the line is parsed and quarantined again on both


@pytest.mark.parametrize(
    "change",
    [
        pytest.param('C5,"五号\r\n株式会社",3,2026-11-01,\r\n'.encode(), id="a-record-over-two-lines"),
        pytest.param(b"\r\nC5,five,3,2026-11-01,\r\n", id="a-blank-line"),
        pytest.param(b'C5,"five ""5""\r",3,2026-11-01,\r\n', id="a-carriage-return-in-a-quoted-value"),
    ],
)
def test_lines_that_are_not_whole_records_make_a_whole_read(
    pair: tuple[Settings, Settings], caplog: pytest.LogCaptureFixture, change: bytes
) -> None:
    def write(src: Path) -> None:
        write_sources(src, _day_one())  # csv's CRLF line ends, as Excel writes them
        with (src / "customers.csv").open("ab") as fh:
            fh.write(change)

    assert "customers" not in _day(pair, write, caplog)
    with connect(pair[0].warehouse) as con:
        assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (4,)


def test_a_reordered_header_or_many_changed_lines_make_a_whole_read(
    pair: tuple[Settings, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    many = [["C1", f"2020-{m:02d}-01", f"metric_{i}", str(i)] for i in range(150) for m in range(1, 13)]

    def write(src: Path) -> None:
        rows = _day_one()
        header, records = rows["customers"]
        rows["customers"] = ([header[1], header[0], *header[2:]], [[r[1], r[0], *r[2:]] for r in records])
        rows["contacts"][1][0][5] = "en"
        rows["usage"] = (USAGE, many)  # 1,800 lines where day 1 had 3
        write_sources(src, rows)

    assert _day(pair, write, caplog) == ["contacts"]

    def again(src: Path) -> None:
        write(src)
        write_csv(src / "usage.csv", USAGE, [*many[:-1], ["C1", "2021-01-01", "metric_0", "1"]])

    assert _day(pair, again, caplog) == ["usage"]  # yesterday's whole read kept its lines: one line changed
