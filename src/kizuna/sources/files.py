"""The file source: CSV (UTF-8 or CP932) and customers.xlsx from a directory, parsed to the contract's types."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from xml.etree import ElementTree

import duckdb

from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, ColumnType, Table
from kizuna.core.errors import Finding, SourceError
from kizuna.sources.encoding import detect_encoding, to_utf8
from kizuna.sources.mapping import TableMapping, find_mapped_file, normalise_header

MAX_FINDINGS_PER_FILE = 20
# The longest record (line) read, in bytes: DuckDB's default, stated so the row-naming fallback agrees with it.
MAX_RECORD_BYTES = 2_000_000
# A workbook whose parts expand to more than this is refused before it is parsed: a few hundred kilobytes of
# zip can declare gigabytes of sheet XML (a zip bomb), which the Excel reader would expand in memory.
MAX_XLSX_UNCOMPRESSED_BYTES = 1 << 30
# Booleans as spreadsheets and Japanese forms write them (compared after width folding and lower-casing).
_TRUE = ("true", "t", "1", "yes", "y", "はい", "○", "◯", "〇", "有")
_FALSE = ("false", "f", "0", "no", "n", "いいえ", "×", "✕", "無")
# NFKC's width folding, done in SQL so no row passes through Python: full-width ASCII (！ to ～) and the
# ideographic space become their ASCII forms, so １００００, ２０２４-０２-０１ and Ｃ００１ parse and match.
_FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF_WIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + " "


@dataclass
class StagedFile:
    """A file parsed into a typed table of the incoming schema."""

    table: str
    file: str
    encoding: str
    rows: int
    sha256: str
    ignored_columns: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # the header row as matched (normalised)


def missing_required_file(table: Table, mapping: TableMapping | None) -> Finding:
    """The finding for a required table no file feeds: named as the mapping's file pattern, else <table>.csv."""
    expected = mapping.file if mapping else f"{table.name}.csv"
    return Finding(expected, None, None, f"required file is missing ({table.name})")


def find_file(source_dir: Path, table: Table, mapping: TableMapping | None = None) -> Path | None:
    """The file that feeds `table`: the mapping's file, else <name>.csv, or <name>.xlsx where Excel is allowed."""
    if mapping is not None:
        return find_mapped_file(source_dir, mapping)
    csv_path = source_dir / f"{table.name}.csv"
    xlsx_path = source_dir / f"{table.name}.xlsx"
    if csv_path.exists() and table.excel_allowed and xlsx_path.exists():
        raise SourceError(xlsx_path.name, None, None, f"both {csv_path.name} and {xlsx_path.name} exist; keep only one")
    if csv_path.exists():
        return csv_path
    if table.excel_allowed and xlsx_path.exists():
        return xlsx_path
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _excel_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores every number as a float: 12 must not become "12.0"
    return str(value)


_XLSX_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_XLSX_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
FORMULA_WITHOUT_VALUE = "formula without a value; save the workbook in Excel first (it stores the results then)"


def _first_sheet_part(archive: zipfile.ZipFile) -> str:
    """The zip member holding the workbook's first sheet (the one excel_to_csv reads)."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    sheet = workbook.find(f"{_XLSX_MAIN}sheets/{_XLSX_MAIN}sheet")
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    rel_id = sheet.get(f"{_XLSX_REL}id") if sheet is not None else None
    for rel in rels.iter(f"{_PACKAGE_REL}Relationship"):
        if rel.get("Id") == rel_id:
            target = str(rel.get("Target"))
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return "xl/worksheets/sheet1.xml"


def _column_index(cell_ref: str) -> int:
    """0-based column of an A1 reference ('C7' -> 2)."""
    index = 0
    for ch in cell_ref:
        if not ch.isalpha():
            break
        index = index * 26 + ord(ch.upper()) - ord("A") + 1
    return index - 1


def formulas_without_values(path: Path) -> list[tuple[int, int]]:
    """(sheet row, 0-based column) of every formula cell on the first sheet with no stored result.

    A workbook written by a program (openpyxl, many exporters) keeps formulas but not their results until
    Excel recalculates and saves it; readers then see an empty cell, and the value would load as blank.
    """
    found: list[tuple[int, int]] = []
    try:
        with zipfile.ZipFile(path) as archive, archive.open(_first_sheet_part(archive)) as sheet:
            for _, element in ElementTree.iterparse(sheet):
                if element.tag != f"{_XLSX_MAIN}c":
                    continue
                if element.find(f"{_XLSX_MAIN}f") is not None:
                    value = element.find(f"{_XLSX_MAIN}v")
                    if value is None or not (value.text or "").strip():
                        ref = element.get("r") or ""
                        digits = "".join(ch for ch in ref if ch.isdigit())
                        if digits:
                            found.append((int(digits), _column_index(ref)))
                element.clear()  # streamed: a large sheet is never held whole
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile):
        return []  # an unusual layout: calamine reads the sheet (or names the problem) as before
    return found


def excel_to_csv(path: Path, dest: Path) -> Path:
    """Copy the first sheet of an .xlsx workbook to a UTF-8 CSV, keeping row numbers aligned."""
    from python_calamine import CalamineWorkbook

    try:
        with zipfile.ZipFile(path) as archive:
            expanded = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(path.name, None, None, f"cannot be read as an Excel workbook ({exc})") from exc
    if expanded > MAX_XLSX_UNCOMPRESSED_BYTES:
        raise SourceError(
            path.name,
            None,
            None,
            f"expands to {expanded:,} bytes, over the {MAX_XLSX_UNCOMPRESSED_BYTES:,}-byte limit for a workbook; "
            "export the sheet as CSV instead",
        )
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types for broken workbooks
        raise SourceError(path.name, None, None, f"cannot be read as an Excel workbook ({exc})") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        for row in rows:
            writer.writerow([_excel_cell(v) for v in row])
    return dest


def _read_header(path: Path, file: str) -> list[str]:
    """The header record's names, stripped and lower-cased (a quoted name may span lines, as a record may)."""
    with path.open("r", encoding="utf-8", newline="") as fh:
        try:
            first = next(_csv_records(fh, strict=True), [])
        except csv.Error as exc:
            raise SourceError(file, 1, None, f"the header row is not valid CSV ({exc})") from exc
    return [normalise_header(h) for h in first]


_BLANK_LINE = (b"\n\n", b"\n\r", b"\r\r")


def _has_blank_line(path: Path) -> bool:
    """Whether an empty line may occur before the end: DuckDB skips those, a spreadsheet counts them as rows."""
    with path.open("rb") as fh:
        end = fh.seek(0, 2)
        while end > 0:  # the line ends that close the file are not blank lines inside it
            fh.seek(end - 1)
            if fh.read(1) not in (b"\r", b"\n"):
                break
            end -= 1
        fh.seek(0)
        tail, left = b"", end
        while left > 0 and (chunk := fh.read(min(1 << 20, left))):
            left -= len(chunk)
            data = tail + chunk
            if any(pattern in data for pattern in _BLANK_LINE):
                return True
            tail = data[-1:]
    return False


def spreadsheet_rows(path: Path) -> list[int] | None:
    """For each record DuckDB reads (blank lines skipped), its spreadsheet row; None when they are 2, 3, 4, ...

    A spreadsheet shows an empty line as an empty row, so a finding after one must count it. Only files with
    blank lines pay for this pass over the file.
    """
    if not _has_blank_line(path):
        return None
    rows: list[int] = []
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = _csv_records(fh, strict=False)
        try:
            next(reader, None)
            for row, record in enumerate(reader, start=2):
                if record:
                    rows.append(row)
        except csv.Error:  # a record over the size limit: DuckDB refuses the file, and find_csv_defect names it
            return None
    return rows


def _csv_records(fh: io.TextIOBase, *, strict: bool) -> Iterator[list[str]]:
    """csv.reader allowing fields as long as DuckDB allows records (its own default limit is 128 KiB)."""
    if csv.field_size_limit() < MAX_RECORD_BYTES:
        csv.field_size_limit(MAX_RECORD_BYTES)  # process-wide, but only ever raised
    return csv.reader(fh, strict=strict)


def find_csv_defect(path: Path, expected_fields: int) -> tuple[int | None, str]:
    """The first record a strict CSV reader rejects, as (spreadsheet row, problem); (None, '') if none.

    Only called after DuckDB refused the file: its errors do not name a row, and a person needs one.
    """
    row = 1
    try:
        with path.open("r", encoding="utf-8", newline="") as fh:
            reader = _csv_records(fh, strict=True)
            next(reader, None)
            for row, record in enumerate(reader, start=2):
                if record and len(record) != expected_fields:
                    return row, (
                        f"has {len(record)} fields where the header has {expected_fields} "
                        "(a line cut short, or an unquoted comma?)"
                    )
                if sum(len(v.encode("utf-8")) + 1 for v in record) > MAX_RECORD_BYTES:
                    return row, f"is longer than {MAX_RECORD_BYTES:,} bytes, the limit for one record"
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            return row + 1, f"is longer than {MAX_RECORD_BYTES:,} bytes, the limit for one record"
        return row + 1, f"is not valid CSV from this row on ({exc}; an unclosed quote, or a file cut short?)"
    return None, ""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cast_expr(col: str, ctype: ColumnType) -> str:
    """DuckDB's cast of the trimmed text column to its contract type (NULL where it does not parse)."""
    v = _quote(col)
    if ctype is ColumnType.INTEGER:
        return f"try_cast(replace({v}, ',', '') AS BIGINT)"
    if ctype is ColumnType.MONEY:
        return f"try_cast(regexp_replace({v}, '[,¥￥円\\s]', '', 'g') AS DECIMAL(18,2))"
    if ctype is ColumnType.NUMBER:
        return f"try_cast(replace({v}, ',', '') AS DOUBLE)"
    if ctype is ColumnType.DATE:
        # CRM exports write dates with a time of day (HubSpot's "2024-02-01 10:23"): the date is what counts.
        formats = ", ".join(f"'{d}{t}'" for d in ("%Y-%m-%d", "%Y/%m/%d") for t in ("", " %H:%M", " %H:%M:%S"))
        return f"coalesce(try_strptime({v}, [{formats}])::DATE, try_cast({v} AS DATE))"
    if ctype is ColumnType.TIMESTAMP:
        # Naive text is business-local time (the session TimeZone); stored as UTC.
        return f"timezone('UTC', try_cast(replace({v}, '/', '-') AS TIMESTAMPTZ))"
    if ctype is ColumnType.BOOLEAN:
        t = ", ".join(f"'{x}'" for x in _TRUE)
        f = ", ".join(f"'{x}'" for x in _FALSE)
        return f"CASE WHEN lower({v}) IN ({t}) THEN true WHEN lower({v}) IN ({f}) THEN false END"
    return v


def _cast_column(col: str) -> str:
    return _quote(f"__cast_{col}")


def _typed_expr(col: str, ctype: ColumnType) -> str:
    """The contract's value over `_casts()`: the cast where the text is what the contract accepts, else NULL.

    DuckDB's casts accept more than the contract: '1.5' as an integer (rounded to 2), '0x10' (16), 'NaN' and
    'inf' as numbers, 'infinity', 'epoch', '2024-01-01 (BC)' and years past 9999 as dates. Those are refused,
    not loaded. The guards read the cast's column, so each cast is computed once.
    """
    v, x = _quote(col), _cast_column(col)
    if ctype is ColumnType.INTEGER:
        return f"CASE WHEN regexp_full_match(replace({v}, ',', ''), '[+-]?[0-9]+(\\.0+)?') THEN {x} END"
    if ctype is ColumnType.NUMBER:
        return f"CASE WHEN isfinite({x}) THEN {x} END"
    if ctype in (ColumnType.DATE, ColumnType.TIMESTAMP):
        return f"CASE WHEN regexp_matches({v}, '^[0-9]{{4}}[-/]') AND year({x}) BETWEEN 1 AND 9999 THEN {x} END"
    return v if ctype is ColumnType.TEXT else x


def _casts(table: Table, text_table: str) -> str:
    """The text table with each typed column's cast beside it (DuckDB computes only those a query uses)."""
    casts = [
        f"{_cast_expr(c.name, c.type)} AS {_cast_column(c.name)}"
        for c in table.columns
        if c.type is not ColumnType.TEXT
    ]
    return f"(SELECT *, {', '.join(casts)} FROM {text_table})" if casts else text_table


def _source_headers(table: Table, mapping: TableMapping | None) -> dict[str, str]:
    """Contract column -> the (normalised) header it is read from: the mapping's, else the column's own name."""
    headers = {c: c for c in table.column_names}
    if mapping:
        headers.update({c: normalise_header(h) for c, h in mapping.headers.items()})
        for c in mapping.constants:
            headers.pop(c, None)
    return headers


_TYPE_HINT = {
    ColumnType.INTEGER: "a whole number",
    ColumnType.MONEY: "an amount (digits, optional decimals)",
    ColumnType.NUMBER: "a number",
    ColumnType.DATE: "a date (YYYY-MM-DD or YYYY/MM/DD)",
    ColumnType.TIMESTAMP: "a date-time (YYYY-MM-DD HH:MM[:SS], optional UTC offset)",
    ColumnType.BOOLEAN: "true or false",
}


def _utf8_text(path: Path, table: Table, tmp_dir: Path) -> tuple[Path, str]:
    """The file as UTF-8 CSV text (the first sheet of a workbook), and the encoding it was read in."""
    if path.suffix.lower() == ".xlsx":
        return excel_to_csv(path, tmp_dir / f"{table.name}.from-xlsx.csv"), "xlsx"
    encoding = detect_encoding(path)
    return to_utf8(path, encoding, tmp_dir / f"{table.name}.utf8.csv"), encoding


def read_export_header(path: Path, table: Table, tmp_dir: Path) -> list[str]:
    """The header row of a source file as ingest matches it (normalised names)."""
    text_path, _ = _utf8_text(path, table, tmp_dir)
    return _read_header(text_path, path.name)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _folded(expr: str) -> str:
    """The text with full-width ASCII folded and surrounding spaces trimmed; empty text is NULL."""
    return f"nullif(trim(translate({expr}, {_sql_text(_FULL_WIDTH)}, {_sql_text(_HALF_WIDTH)})), '')"


def _value_mapped(expr: str, value_map: dict[str, str | None]) -> str:
    """The export's value through a mapping's value map; unmapped values stay as they are unless '*' is mapped."""
    from kizuna.sources.mapping import ANY_OTHER_VALUE

    whens = [
        f"WHEN {expr} = {_sql_text(k)} THEN {'NULL' if v is None else _sql_text(v)}"
        for k, v in value_map.items()
        if k != ANY_OTHER_VALUE
    ]
    other = value_map.get(ANY_OTHER_VALUE, "") if ANY_OTHER_VALUE in value_map else None
    fallback = expr if ANY_OTHER_VALUE not in value_map else ("NULL" if other is None else _sql_text(other))
    return f"CASE {' '.join(whens)} ELSE {fallback} END" if whens else fallback


def stage_file(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    path: Path,
    schema: str,
    tmp_dir: Path,
    mapping: TableMapping | None = None,
) -> tuple[StagedFile | None, list[Finding], int]:
    """Parse one file into `schema.<table>`. Returns the staged file (None on findings), findings, their total.

    With a mapping (kizuna.sources.mapping) the export's own headers, values and rows are read as the
    contract's; findings then name the export's header beside the contract's column.
    """
    sha = _sha256(path)
    text_path, encoding = _utf8_text(path, table, tmp_dir)
    header = _read_header(text_path, path.name)
    source_of = _source_headers(table, mapping)
    named = {c: (mapping.header_of(c) if mapping else c) for c in table.column_names}
    findings: list[Finding] = []
    if encoding == "xlsx":
        used = set(source_of.values())
        read = {i: name for i, name in enumerate(header) if name in used}
        findings += [
            Finding(path.name, row, read[column], FORMULA_WITHOUT_VALUE)
            for row, column in formulas_without_values(path)
            if column in read and row > 1
        ]
    findings += [
        Finding(path.name, 1, named[c], "required column is missing from the header row")
        for c in table.required_columns
        if source_of.get(c) not in header and not (mapping and c in mapping.constants)
    ]
    if mapping:
        findings += [
            Finding(path.name, 1, h, f"the mapping keeps rows by this column, but the header has no {h!r}")
            for h in mapping.keep
            if normalise_header(h) not in header
        ]
    # Blank names (Excel's trailing empty columns) are ignored columns, never duplicates.
    duplicated = sorted({h for h in header if h and header.count(h) > 1})
    findings += [Finding(path.name, 1, c, "column appears more than once in the header") for c in duplicated]
    if findings:
        return None, findings[:MAX_FINDINGS_PER_FILE], len(findings)

    text_table = f'{schema}."_text_{table.name}"'
    # The dialect is pinned and the columns are the header's, by position: DuckDB's sniffer would otherwise
    # guess, e.g. take a data row with one field more than the header for the header and skip the real one.
    struct = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header)))
    reader = (
        "read_csv(?, auto_detect = false, header = true, skip = 0, delim = ',', quote = '\"', escape = '\"', "
        f"comment = '', null_padding = false, max_line_size = {MAX_RECORD_BYTES}, columns = {{{struct}}})"
    )
    position = {name: i for i, name in enumerate(header) if name}
    keep = ""
    if mapping and mapping.keep:
        conditions = [
            f"{_folded(f'c{position[normalise_header(h)]}')} IN ({', '.join(_sql_text(v) for v in kept)})"
            for h, kept in mapping.keep.items()
        ]
        keep = f" WHERE {' AND '.join(conditions)}"
    row_of = spreadsheet_rows(text_path)
    row_expr = "(row_number() OVER () + 1)" if row_of is None else "(?::BIGINT[])[row_number() OVER ()]"
    params: list[object] = [str(text_path)] if row_of is None else [row_of, str(text_path)]
    try:
        selects = []
        for col in table.columns:
            source = source_of.get(col.name)
            if mapping and col.name in mapping.constants:
                expr = _sql_text(mapping.constants[col.name])
            elif source in position:
                expr = _folded(f"c{position[source]}")
            else:
                expr = "NULL::VARCHAR"
            if mapping and col.name in mapping.values:
                expr = _value_mapped(expr, mapping.values[col.name])
            selects.append(f"{expr} AS {_quote(col.name)}")
        # One pass over the file. row_number() over the reader follows the file's order (DuckDB preserves
        # insertion order), before a mapping's row filter; tests/sources check that findings name the right rows.
        con.execute(
            f"CREATE OR REPLACE TABLE {text_table} AS SELECT {', '.join(selects)}, {SOURCE_ROW_COLUMN} "
            f"FROM (SELECT *, {row_expr}::BIGINT AS {SOURCE_ROW_COLUMN} FROM {reader}){keep}",
            params,
        )
    except duckdb.Error as exc:
        row, problem = find_csv_defect(text_path, len(header))
        if row is not None:
            raise SourceError(path.name, row, None, problem) from exc
        first_line = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise SourceError(path.name, None, None, f"is not a readable CSV file: {first_line}") from exc

    checks: list[str] = []
    for col in table.columns:
        q = _quote(col.name)
        if col.required:
            checks.append(
                f"SELECT {SOURCE_ROW_COLUMN}, '{col.name}', NULL, 'required value is empty' "
                f"FROM {text_table} WHERE {q} IS NULL"
            )
        if col.type is not ColumnType.TEXT:
            checks.append(
                f"SELECT {SOURCE_ROW_COLUMN}, '{col.name}', {q}, 'is not {_TYPE_HINT[col.type]}' "
                f"FROM {_casts(table, text_table)} WHERE {q} IS NOT NULL AND {_typed_expr(col.name, col.type)} IS NULL"
            )
    union = " UNION ALL ".join(checks)
    total_row = con.execute(f"SELECT count(*) FROM ({union})").fetchone()
    total = int(total_row[0]) if total_row else 0
    if total:
        rows = con.execute(f"SELECT * FROM ({union}) ORDER BY 1, 2 LIMIT {MAX_FINDINGS_PER_FILE}").fetchall()
        for row_no, column, value, problem in rows:
            shown = f" (found {value!r})" if value is not None else ""
            findings.append(Finding(path.name, int(row_no), named.get(column, column), f"{problem}{shown}"))
        con.execute(f"DROP TABLE {text_table}")
        return None, findings, total

    typed = ", ".join(f"{_typed_expr(c.name, c.type)}::{c.type.value} AS {_quote(c.name)}" for c in table.columns)
    con.execute(
        f'CREATE OR REPLACE TABLE {schema}."{table.name}" AS SELECT {typed}, '
        f"?::VARCHAR AS {SOURCE_FILE_COLUMN}, {SOURCE_ROW_COLUMN} FROM {_casts(table, text_table)}",
        [path.name],
    )
    con.execute(f"DROP TABLE {text_table}")
    count_row = con.execute(f'SELECT count(*) FROM {schema}."{table.name}"').fetchone()
    used = set(source_of.values()) | {normalise_header(h) for h in (mapping.keep if mapping else {})}
    ignored = [h for h in header if h and h not in used]
    staged = StagedFile(
        table.name,
        path.name,
        encoding,
        int(count_row[0]) if count_row else 0,
        sha,
        ignored,
        header,
    )
    return staged, [], 0
