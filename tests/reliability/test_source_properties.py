"""Properties of the file source: every input either loads exactly what was written or fails naming where.

Hypothesis writes real files (UTF-8, UTF-8 with BOM, CP932; CRLF, LF or CR line ends; quoted or not; blank
lines; extra and blank-named columns; any column order and header case) and stages them with the real
`stage_file` into a fresh schema of one DuckDB file per test. A file that loads must hold the values written,
with the contract's types, on the spreadsheet rows they were written on; a file that does not must fail with a
SourceError or findings naming the file (and the row and column where one is at fault). Anything else, an
unexpected exception, or a value that differs, fails the property.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from kizuna.core.contract import SOURCE_ROW_COLUMN, TABLES_BY_NAME, ColumnType, Table
from kizuna.core.errors import SourceContractError, SourceError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.sources.files import StagedFile, stage_file
from kizuna.sources.ingest import stage_sources
from tests.reliability.conftest import examples

TOKYO = ZoneInfo("Asia/Tokyo")
# The stager fixture is shared by the examples of a test on purpose (one DuckDB file, a fresh schema each).
RELAXED = [HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much, HealthCheck.too_slow]
T = ColumnType
# Tables whose columns cover every contract type between them.
PROPERTY_TABLES = ("subscriptions", "customers", "contacts", "usage", "invoices")


@dataclass
class Stager:
    """One DuckDB file for a whole test; each example stages into a fresh schema, in a transaction rolled back
    by the next example (no commit to write to disk: the examples stay fast, and each starts from nothing)."""

    con: duckdb.DuckDBPyConnection
    folder: Path
    open: bool = False

    def stage(self, table: Table, data: bytes, suffix: str = ".csv") -> tuple[StagedFile | None, list[Any], int]:
        path = self.folder / f"{table.name}{suffix}"
        path.write_bytes(data)
        if self.open:
            self.con.execute("ROLLBACK")
        self.con.execute("BEGIN TRANSACTION")
        self.open = True
        self.con.execute("CREATE SCHEMA prop")
        return stage_file(self.con, table, path, "prop", self.folder / "tmp")

    def loaded(self, table: Table) -> list[dict[str, Any]]:
        cursor = self.con.execute(f'SELECT * FROM prop."{table.name}" ORDER BY {SOURCE_ROW_COLUMN}')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture
def stager(tmp_path: Path) -> Iterator[Stager]:
    con = duckdb.connect(str(tmp_path / "properties.duckdb"))
    con.execute("SET TimeZone = 'Asia/Tokyo'")  # what stage_sources sets from KIZUNA_TIMEZONE
    try:
        yield Stager(con, tmp_path)
    finally:
        con.close()


# --- what a spreadsheet user writes ---------------------------------------------------------------------------


# docs/sources.md: full-width ASCII (U+FF01-U+FF5E) and the ideographic space fold to ASCII first (NFKC's width
# folding), then DuckDB's trim() removes the Unicode space separators (category Zs: " ", NBSP, ...) and nothing
# else: "Surrounding spaces are trimmed". Empty cells are NULL.
_WIDTH_FOLDED = str.maketrans({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "})


def expected_text(value: str) -> str | None:
    value = value.translate(_WIDTH_FOLDED)
    start, end = 0, len(value)
    while start < end and unicodedata.category(value[start]) == "Zs":
        start += 1
    while end > start and unicodedata.category(value[end - 1]) == "Zs":
        end -= 1
    return value[start:end] or None


def _round_trips(encoding: str) -> Callable[[str], bool]:
    def ok(ch: str) -> bool:
        try:
            return ch.encode(encoding).decode(encoding) == ch
        except UnicodeError:
            return False

    return ok


# Characters a cell may hold: anything printable and the characters CSV must quote, but no NUL (refused as
# binary, see below) and no lone surrogates (not text).
AWKWARD = [*",\"\r\n \u3000\t'=;#\\", "株式会社", "ｶﾌﾞｼｷｶﾞｲｼｬ", "é", "😀", "\u202e", "\ufeff", "\x85", "\u2028"]
CELL_CHARS = st.one_of(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    st.sampled_from(AWKWARD),
)


def cell_text(required: bool) -> st.SearchStrategy[str]:
    text = st.lists(CELL_CHARS, max_size=8).map("".join)
    return text.filter(lambda v: expected_text(v) is not None) if required else text


def _with_case(word: str, draw: st.DrawFn) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c for c in word)


@st.composite
def typed_cell(draw: st.DrawFn, ctype: ColumnType, required: bool) -> tuple[str, Any]:
    """(what the cell says, what the warehouse must hold) for one value of `ctype`, spelled as people do."""
    blank = st.sampled_from(["", " ", "\u3000"])
    if not required and ctype is not T.TEXT and draw(st.integers(0, 5)) == 0:
        return draw(blank), None
    pad = draw(st.sampled_from(["", " ", "\u3000 "]))
    if ctype is T.TEXT:
        text = draw(cell_text(required))
        return text, expected_text(text)
    if ctype is T.INTEGER:
        n = draw(st.integers(-(10**15), 10**15))
        spelled = draw(st.sampled_from([str(n), f"{n:,}", f"{n}.0", f"+{n}" if n >= 0 else str(n)]))
        return pad + spelled + pad, n
    if ctype is T.MONEY:
        d = draw(st.decimals(min_value=-(10**12), max_value=10**12, places=draw(st.integers(0, 2))))
        spelled = draw(st.sampled_from([f"{d}", f"{d:,}", f"¥{d:,}", f"￥{d:,}", f"{d:,}円", f"{d} 円"]))
        return pad + spelled + pad, d.quantize(Decimal("0.01"))
    if ctype is T.NUMBER:
        x = draw(st.floats(allow_nan=False, allow_infinity=False))
        return pad + repr(x) + pad, x
    if ctype is T.DATE:
        d = draw(st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)))
        spelled = draw(
            st.sampled_from([d.isoformat(), d.isoformat().replace("-", "/"), f"{d.year:04d}/{d.month}/{d.day}"])
        )
        return pad + spelled + pad, d
    if ctype is T.TIMESTAMP:
        # 1900-2200: Tokyo's offset has been +09:00 since 1888, so "business time" has one meaning.
        at = draw(st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)))
        if draw(st.booleans()):
            at = at.replace(microsecond=0)
        style = draw(st.sampled_from(["naive", "slashes", "offset", "utc"]))
        if style == "naive":
            spelled = at.isoformat(sep=" ")
        elif style == "slashes":
            spelled = at.isoformat(sep=" ").replace("-", "/")
        elif style == "offset":
            offset = dt.timezone(dt.timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
            return pad + at.replace(tzinfo=offset).isoformat() + pad, at.replace(tzinfo=offset).astimezone(
                dt.UTC
            ).replace(tzinfo=None)
        else:
            spelled = at.isoformat() + "Z"
            return pad + spelled + pad, at
        return pad + spelled + pad, at.replace(tzinfo=TOKYO).astimezone(dt.UTC).replace(tzinfo=None)
    if ctype is T.BOOLEAN:
        b = draw(st.booleans())
        word = draw(st.sampled_from(["true", "t", "1", "yes", "y"] if b else ["false", "f", "0", "no", "n"]))
        return pad + _with_case(word, draw) + pad, b
    raise AssertionError(ctype)


@dataclass
class WrittenFile:
    table: Table
    data: bytes
    encoding: str
    expected: list[dict[str, Any]]  # one per record, with SOURCE_ROW_COLUMN
    columns: list[str]  # the contract columns present, in file order


@st.composite
def written_files(draw: st.DrawFn, max_rows: int = 4) -> WrittenFile:
    """A contract file as Excel or a script might write it, with the values it must load as."""
    table = TABLES_BY_NAME[draw(st.sampled_from(PROPERTY_TABLES))]
    present = [c for c in table.columns if c.required or draw(st.booleans())]
    extras = draw(st.lists(st.sampled_from(["memo", "備考", "Extra Column"]), max_size=2, unique=True))
    extras += [""] * draw(st.integers(0, 2))  # Excel's trailing empty columns
    order = draw(st.permutations([*present, *extras]))
    header = [
        _with_case(c.name, draw) + draw(st.sampled_from(["", " "])) if not isinstance(c, str) else c for c in order
    ]
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp932"]))
    records, expected = [], []
    for _ in range(draw(st.integers(0 if not table.required else 1, max_rows))):
        cells, values = [], {}
        for c in order:
            if isinstance(c, str):
                cells.append(draw(cell_text(False)))
                continue
            spelled, value = draw(typed_cell(c.type, c.required))  # a blank stays blank: staging applies defaults
            cells.append(spelled)
            values[c.name] = value
        records.append(cells)
        expected.append(values)
    if encoding == "cp932":
        fits = _round_trips("cp932")
        assume(all(fits(ch) for cells in [header, *records] for cell in cells for ch in cell))

    out = io.StringIO()
    terminator = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    quote_all = draw(st.booleans())
    out.write(csv_line(header, terminator, quote_all))
    row = 2
    for cells, values in zip(records, expected, strict=True):
        blanks = draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 0 else 0
        out.write(terminator * blanks)  # an empty line: a spreadsheet shows an empty row
        row += blanks
        out.write(csv_line(cells, terminator, quote_all))
        values[SOURCE_ROW_COLUMN] = row
        row += 1
    out.write(terminator * draw(st.integers(0, 2)))
    text = out.getvalue()
    data = text.encode("utf-8")
    if encoding == "utf-8-sig":
        data = codecs.BOM_UTF8 + data
    elif encoding == "cp932":
        data = text.encode("cp932")
        # A CP932 file that is also valid UTF-8 may be read as UTF-8 (docs/reliability.md, known limits).
        assume(not _is_utf8(data))
    full = [
        {c.name: values.get(c.name) for c in table.columns} | {SOURCE_ROW_COLUMN: values[SOURCE_ROW_COLUMN]}
        for values in expected
    ]
    return WrittenFile(table, data, encoding, full, [c.name for c in order if not isinstance(c, str)])


def csv_line(cells: list[str], terminator: str, quote_all: bool = False) -> str:
    """One RFC 4180 record. (Python's csv.writer leaves a lone LF unquoted when the line end is CR, and the
    reverse, which no reader can read back.)"""

    def field(value: str) -> str:
        if quote_all or any(ch in value for ch in ',"\r\n'):
            return '"' + value.replace('"', '""') + '"'
        return value

    return ",".join(field(c) for c in cells) + terminator


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _same(loaded: Any, wanted: Any) -> bool:
    if isinstance(wanted, float) and isinstance(loaded, float):
        return loaded == wanted or (loaded != loaded and wanted != wanted)
    return bool(loaded == wanted) and type(loaded) is type(wanted)


# --- the properties -------------------------------------------------------------------------------------------


@settings(max_examples=examples(40), suppress_health_check=RELAXED)
@given(written=written_files())
def test_a_well_formed_file_loads_exactly_what_was_written(stager: Stager, written: WrittenFile) -> None:
    staged, findings, _ = stager.stage(written.table, written.data)
    assert findings == [] and staged is not None, [str(f) for f in findings]
    assert staged.rows == len(written.expected)
    assert staged.encoding == written.encoding
    loaded = [{k: v for k, v in row.items() if k != "_source_file"} for row in stager.loaded(written.table)]
    for got, wanted in zip(loaded, written.expected, strict=True):
        wrong = {k: (got[k], wanted[k]) for k in wanted if not _same(got[k], wanted[k])}
        assert not wrong, f"loaded != written on row {wanted[SOURCE_ROW_COLUMN]}: {wrong}"


# Values DuckDB's casts accept but the contract does not (each once loaded as something else: 1.5 as 2, NaN,
# 'infinity' as a date, a year of 12345, 0x10 as 16), and what people type by mistake.
BAD = {
    T.INTEGER: ["1.5", "0x10", "1e3", "１２", "12人", "#N/A", "=1+1", "9223372036854775808", "1 200", "1_000"],
    T.MONEY: ["nan", "1e400", "(1,000)", "1.2.3", "-", "¥", "#DIV/0!", "99999999999999999", "1,000ドル"],
    T.NUMBER: ["NaN", "inf", "-Infinity", "1e309", "0x10", "1,2e3x", "#VALUE!", "１"],
    T.DATE: ["infinity", "-infinity", "epoch", "12345-01-01", "-2024-01-01", "2024-01-01 (BC)", "2024-02-30",
             "2024-13-01", "45292", "R6/1/5", "令和6年1月5日", "0000-01-01", "today"],
    T.TIMESTAMP: ["infinity", "epoch", "allballs", "12345-01-01 00:00", "0000-01-01 00:00", "2024-02-30 10:00",
                  "now", "2024-01-01 25:00", "yesterday"],
    T.BOOLEAN: ["maybe", "要確認", "TRUE!", "2", "on", "off"],  # はい is true (docs/sources.md)
}  # fmt: skip


@settings(max_examples=examples(25), suppress_health_check=RELAXED)
@given(written=written_files(max_rows=3), data=st.data())
def test_a_bad_value_is_named_by_file_row_and_column(stager: Stager, written: WrittenFile, data: st.DataObject) -> None:
    typed = [c for c in written.columns if written.table.column(c).type is not T.TEXT]
    assume(written.expected and typed)
    record = data.draw(st.integers(0, len(written.expected) - 1), label="record")
    column = data.draw(st.sampled_from(typed), label="column")
    ctype = written.table.column(column).type
    bad = data.draw(st.sampled_from(BAD[ctype]), label="bad value")
    text = written.data.decode("utf-8-sig" if written.encoding != "cp932" else "cp932")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    records = [r for r in rows[1:] if r]
    records[record][[h.strip().lower() for h in header].index(column)] = bad
    text = "".join(csv_line(r, "\n") for r in [header, *records])
    staged, findings, total = stager.stage(written.table, text.encode("utf-8"))
    assert staged is None and total >= 1
    file = f"{written.table.name}.csv"
    assert all(f.file == file and f.row is not None and f.column is not None for f in findings)
    where = [(f.row, f.column) for f in findings]
    assert (record + 2, column) in where, [str(f) for f in findings]
    named = next(f for f in findings if (f.row, f.column) == (record + 2, column))
    assert named.message.startswith("is not ") and repr(bad) in named.message


@st.composite
def broken_csv(draw: st.DrawFn) -> tuple[bytes, int]:
    """A customers file whose record `row` (spreadsheet numbering) is not CSV a spreadsheet would read."""
    n = draw(st.integers(1, 4))
    at = draw(st.integers(0, n - 1))
    lines, row, bad_row = ["customer_id,name"], 2, 0
    for i in range(n):
        blanks = draw(st.integers(0, 1))
        lines += [""] * blanks
        row += blanks
        if i == at:
            bad_row = row
            lines.append(
                draw(
                    st.sampled_from(
                        [
                            "C9,too,many",
                            "C9",
                            'C9,"never closed',
                            'C9,"closed"then more',
                            'C9,"a"",b"x',
                            "C9,x,,y",
                        ]
                    )
                )
            )
            row += 1
            if lines[-1].startswith('C9,"never'):
                break
        else:
            lines.append(f'C{i},"株式会社 {i}, ""引用"""')
            row += 1
    return ("\n".join(lines) + "\n").encode("utf-8"), bad_row


@settings(max_examples=examples(25), suppress_health_check=RELAXED)
@given(case=broken_csv())
def test_a_ragged_or_badly_quoted_record_is_named_by_its_row(stager: Stager, case: tuple[bytes, int]) -> None:
    data, bad_row = case
    with pytest.raises(SourceError) as info:
        stager.stage(TABLES_BY_NAME["customers"], data)
    assert info.value.finding.file == "customers.csv"
    assert info.value.finding.row == bad_row, str(info.value)


def _oracle(text: str) -> list[tuple[int, str | None, str | None]] | None:
    """What a strict RFC 4180 reader finds in a customers file: (row, customer_id, name) of each record."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if header.count("customer_id") != 1 or header.count("name") != 1:
        return None
    at_id, at_name = header.index("customer_id"), header.index("name")
    out = []
    for row, record in enumerate(rows[1:], start=2):
        if not record:
            continue  # a blank line: an empty spreadsheet row, not a record
        # Empty cells past the header's last column are ignored (Excel's trailing commas), as DuckDB does.
        if len(record) < len(header) or any(record[len(header) :]):
            return None
        out.append((row, expected_text(record[at_id]), expected_text(record[at_name])))
    return out


BODY_BYTES = st.one_of(
    st.binary(max_size=40),
    st.lists(
        st.sampled_from(
            [b",", b'"', b"\r", b"\n", b"\r\n", b"\x00", b"\xef\xbb\xbf", b"\xff", b"\x82\xa0", b"\xe3\x81\x82",
             b"\xe9", b"C1", b"x", b" ", b"\x1a", b"\\", b"'", b"#"]
        ),
        max_size=30,
    ).map(b"".join),
)  # fmt: skip


@settings(max_examples=examples(100), suppress_health_check=RELAXED)
@given(prefix=st.sampled_from([b"customer_id,name\n", b"\xef\xbb\xbfcustomer_id,name\r\n", b""]), body=BODY_BYTES)
@example(prefix=b"customer_id,name\n", body=b"C1,x,y\n")  # once: the sniffer took this row for the header
@example(prefix=b"customer_id,name\n", body=b"C1,x\n" + b"y" * 10 + b"\x00\n")  # NUL after the first line
@example(prefix=b"\xef\xbb\xbfcustomer_id,name\n", body=b"C1,\xff\n")  # BOM, then not UTF-8
@example(prefix=b"customer_id,name,,\n", body=b"C1,x,,\n")  # Excel's trailing empty columns
def test_arbitrary_bytes_load_as_a_csv_reader_reads_them_or_fail_naming_the_file(
    stager: Stager, prefix: bytes, body: bytes
) -> None:
    data = prefix + body
    table = TABLES_BY_NAME["customers"]
    try:
        staged, findings, _ = stager.stage(table, data)
    except SourceError as exc:
        assert exc.finding.file == "customers.csv" and str(exc).startswith("customers.csv")
        return
    if staged is None:
        assert findings and all(f.file == "customers.csv" for f in findings)
        return
    # Loaded: it must be what the bytes say, decoded as the encoding the loader reported.
    want = _oracle(data.decode(staged.encoding))
    got = [(r[SOURCE_ROW_COLUMN], r["customer_id"], r["name"]) for r in stager.loaded(table)]
    assert want is not None, f"loaded {got} from bytes a strict CSV reader refuses: {data!r}"
    assert got == want


@settings(max_examples=examples(25), suppress_health_check=RELAXED)
@given(
    text=st.lists(st.sampled_from(["é", "ü", "ß", "ñ", "Ä", "ø", "ÿ", "©", "x", " ", "Müller"]), min_size=1, max_size=8)
    .map("".join)
    .filter(lambda t: any(ord(c) > 127 for c in t))
)
def test_latin_1_text_is_refused_or_reported_as_cp932_never_silently_utf8(stager: Stager, text: str) -> None:
    """Latin-1 (ISO-8859-1) is not in the contract: it fails, or decodes as CP932 and says so.

    CP932 gives a meaning to most byte pairs, so "Mü" may decode as a kanji: such a file loads under the
    encoding 'cp932', recorded in the load for whoever reads the mojibake; it is never passed off as UTF-8.
    """
    data = f"customer_id,name\nC1,{text}\n".encode("latin-1")
    assume(not _is_utf8(data))  # "Ã©" in Latin-1 is "é" in UTF-8: no loader can tell
    try:
        staged, findings, _ = stager.stage(TABLES_BY_NAME["customers"], data)
    except SourceError as exc:
        assert "is neither UTF-8 nor CP932" in str(exc) and "line 2" in str(exc)
        return
    assert staged is not None and not findings
    assert staged.encoding == "cp932"
    [row] = stager.loaded(TABLES_BY_NAME["customers"])
    assert row["name"] == expected_text(data.decode("cp932").split("\n")[1][3:])


# --- examples the properties found, kept as regressions, and the real ingest path -----------------------------


@pytest.mark.parametrize(
    ("table", "data", "problem"),
    [
        ("customers", b"customer_id,name\nC1,x,y\n", "row 2: has 3 fields"),
        ("customers", b"customer_id,name\nC0,a\nC1,x,y\nC2,b\n", "row 3: has 3 fields"),
        ("usage", b"customer_id,month,metric,value\nC1,2026-01-01,m,NaN\n", "row 2, column value: is not a number"),
        ("usage", b"customer_id,month,metric,value\nC1,infinity,m,1\n", "row 2, column month: is not a date"),
        ("subscriptions", b"subscription_id,customer_id,start_date,quantity\nS1,C1,2026-01-01,1.5\n",
         "row 2, column quantity: is not a whole number (found '1.5')"),
        ("customers", b"customer_id,name,employee_count\nC1,x,1\n\n\nC2,y,z\n", "row 5, column employee_count"),
        ("customers", b"customer_id,name\nC1,x\n" + b"y" * (2 << 20) + b"\x00\n", "line 3 holds a NUL byte"),
        ("customers", b"\xef\xbb\xbfcustomer_id,name\nC1,\xff\n", "first undecodable byte is on line 2"),
        ("customers", b"customer_id,name\nC1,\"" + b"x" * 2_100_000 + b"\"\n", "row 2: is longer than 2,000,000 bytes"),
    ],
    ids=["extra-field-only-row", "extra-field-middle-row", "nan", "infinite-date", "rounded-integer",
         "row-after-blank-lines", "nul-after-the-first-megabyte", "bom-then-not-utf8", "record-over-the-limit"],
)  # fmt: skip
def test_found_by_the_properties(stager: Stager, table: str, data: bytes, problem: str) -> None:
    try:
        staged, findings, _ = stager.stage(TABLES_BY_NAME[table], data)
    except SourceError as exc:
        message = str(exc)
    else:
        assert staged is None, "loaded what it should have refused"
        message = "\n".join(str(f) for f in findings)
    assert message.startswith(f"{table}.csv") and problem in message, message


def test_blank_named_columns_are_ignored_and_every_row_keeps_its_spreadsheet_number(stager: Stager) -> None:
    data = b'customer_id,name,,\r\n\r\nC1,x,,\r\n#C2,"a\r\n\r\nb",,\r\n\r\n'
    staged, findings, _ = stager.stage(TABLES_BY_NAME["customers"], data)
    assert not findings and staged is not None and staged.ignored_columns == []
    rows = [(r[SOURCE_ROW_COLUMN], r["customer_id"], r["name"]) for r in stager.loaded(TABLES_BY_NAME["customers"])]
    assert rows == [(3, "C1", "x"), (4, "#C2", "a\r\n\r\nb")]


@settings(max_examples=examples(5), suppress_health_check=RELAXED)
@given(customers=written_files(max_rows=3), body=BODY_BYTES)
def test_stage_sources_loads_whole_files_or_raises_one_contract_error_and_leaves_raw_alone(
    tmp_path_factory: pytest.TempPathFactory, customers: WrittenFile, body: bytes
) -> None:
    """The real entry point: a good customers file and a subscriptions file of arbitrary bytes."""
    assume(customers.table.name == "customers")
    root = tmp_path_factory.mktemp("ingest")
    (root / "src").mkdir()
    settings_ = Settings(source_dir=root / "src", warehouse=root / "w.duckdb", var_dir=root / "var")
    (root / "src" / "customers.csv").write_bytes(customers.data)
    (root / "src" / "subscriptions.csv").write_bytes(b"subscription_id,customer_id,start_date\n" + body)
    try:
        result = stage_sources(settings_)
    except SourceContractError as exc:
        assert exc.findings and all(f.file in ("customers.csv", "subscriptions.csv") for f in exc.findings)
        with connect(settings_.warehouse) as con:
            schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
        assert INCOMING_SCHEMA not in schemas  # nothing half-staged is left
        return
    assert result.rows["customers"] == len(customers.expected)
    assert list((root / "var").glob("**/ingest-*")) == []  # the temporary copies are gone


@settings(max_examples=examples(10), suppress_health_check=RELAXED)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 10**12)),  # an id Excel may hold as a number
            st.text(max_size=10),
            st.one_of(st.none(), st.integers(0, 10**9)),
            st.one_of(st.none(), st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2100, 1, 1))),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_a_workbook_loads_what_its_cells_hold(stager: Stager, rows: list[tuple[Any, str, Any, Any]]) -> None:
    """customers.xlsx as Excel saves it: numbers as floats, date-times as serial numbers, empty cells."""
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: Any) -> Any:  # what a worksheet can hold: no control characters
        return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value

    def read_back(value: Any) -> str | None:  # XML keeps a line end as LF
        return expected_text(str(value).replace("\r\n", "\n").replace("\r", "\n"))

    rows = [(cell(i), cell(name), n, at.replace(microsecond=0) if at else None) for i, name, n, at in rows]
    # openpyxl writes a cell of whitespace only without xml:space="preserve", so it reads back empty: a quirk of
    # the test's writer, not of Excel, which keeps it.
    assume(all(str(i).strip() and name.strip() for i, name, _, _ in rows))
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Customer_ID", "name", "employee_count", "created_at"])
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    staged, findings, _ = stager.stage(TABLES_BY_NAME["customers"], out.getvalue(), suffix=".xlsx")
    assert staged is not None and not findings, [str(f) for f in findings]
    loaded = [
        (r["customer_id"], r["name"], r["employee_count"], r["created_at"])
        for r in stager.loaded(TABLES_BY_NAME["customers"])
    ]
    assert loaded == [
        (
            read_back(i),
            read_back(name),
            n,
            at.replace(tzinfo=TOKYO).astimezone(dt.UTC).replace(tzinfo=None) if at else None,
        )
        for i, name, n, at in rows
    ]
