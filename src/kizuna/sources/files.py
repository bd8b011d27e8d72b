"""The file source: CSV (UTF-8 or CP932) and customers.xlsx from a directory, parsed to the contract's types."""

from __future__ import annotations

import csv
import hashlib
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from xml.etree import ElementTree

from kizuna.core.connection import Connection
from kizuna.core.contract import Table
from kizuna.core.errors import Finding, SourceError
from kizuna.core.warehouse import ChangeCounts
from kizuna.sources.csv_records import read_header, spreadsheet_rows
from kizuna.sources.encoding import FileScan, detect_encoding, scan_file, to_utf8
from kizuna.sources.line_delta import FileReading, lines_fingerprint, stage_changed_lines, stage_lines
from kizuna.sources.mapping import TableMapping, find_mapped_file, normalise_header
from kizuna.sources.reading import MAX_FINDINGS_PER_FILE, load_text, load_typed, text_select, value_findings

# A workbook whose parts expand to more than this is refused before it is parsed: a few hundred kilobytes of
# zip can declare gigabytes of sheet XML (a zip bomb), which the Excel reader would expand in memory.
MAX_XLSX_UNCOMPRESSED_BYTES = 1 << 30


@dataclass(frozen=True)
class LineReuse:
    """What a file's lines are read against: its reading options' fingerprint, and the file name of its table's
    last published load (None: parse the whole file, but keep its lines for the next load)."""

    options: str
    last_file: str | None


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
    status: str = "staged"  # or UNCHANGED: the published raw table reused, the file not parsed (sources.changes)
    options_sha256: str | None = None
    changes: ChangeCounts | None = None  # keys inserted, updated, deleted against the last published load


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


def file_sha256(path: Path) -> str:
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


def _source_headers(table: Table, mapping: TableMapping | None) -> dict[str, str]:
    """Contract column -> the (normalised) header it is read from: the mapping's, else the column's own name."""
    headers = {c: c for c in table.column_names}
    if mapping:
        headers.update({c: normalise_header(h) for c, h in mapping.headers.items()})
        for c in mapping.constants:
            headers.pop(c, None)
    return headers


def _utf8_text(path: Path, table: Table, tmp_dir: Path, scan: FileScan | None = None) -> tuple[Path, str]:
    """The file as UTF-8 CSV text (the first sheet of a workbook), and the encoding it was read in."""
    if path.suffix.lower() == ".xlsx":
        return excel_to_csv(path, tmp_dir / f"{table.name}.from-xlsx.csv"), "xlsx"
    encoding = detect_encoding(path, scan)
    return to_utf8(path, encoding, tmp_dir / f"{table.name}.utf8.csv"), encoding


def read_export_header(path: Path, table: Table, tmp_dir: Path) -> list[str]:
    """The header row of a source file as ingest matches it (normalised names)."""
    text_path, _ = _utf8_text(path, table, tmp_dir)
    return read_header(text_path, path.name)


def stage_file(
    con: Connection,
    table: Table,
    path: Path,
    schema: str,
    tmp_dir: Path,
    mapping: TableMapping | None = None,
    scan: FileScan | None = None,
    lines: LineReuse | None = None,
) -> tuple[StagedFile | None, list[Finding], int]:
    """Parse one file into `schema.<table>`. Returns the staged file (None on findings), findings, their total.

    With a mapping (kizuna.sources.mapping) the export's own headers, values and rows are read as the
    contract's; findings then name the export's header beside the contract's column. With `lines`, a UTF-8 CSV
    file whose lines are its records has its lines hashed for the next load, and one whose last published load
    kept them has only its changed lines parsed (kizuna.sources.line_delta).
    """
    if scan is None and path.suffix.lower() != ".xlsx":
        scan = scan_file(path)
    sha = scan.sha256 if scan else file_sha256(path)
    text_path, encoding = _utf8_text(path, table, tmp_dir, scan)
    header = read_header(text_path, path.name)
    source_of = _source_headers(table, mapping)
    named = {c: (mapping.header_of(c) if mapping else c) for c in table.column_names}
    findings = _header_findings(path, table, header, encoding, source_of, named, mapping)
    if findings:
        return None, findings[:MAX_FINDINGS_PER_FILE], len(findings)

    target, text_table = f'{schema}."{table.name}"', f'{schema}."_text_{table.name}"'
    direct = scan if text_path == path else None  # the scan counted this very text's lines
    # Lines stand for records only in a file read as it is (UTF-8 CSV) and without a row filter.
    by_lines = lines is not None and direct is not None and not (mapping and mapping.keep)
    fingerprint = lines_fingerprint(path.name, header, lines.options) if by_lines and lines else None
    staged = StagedFile(table.name, path.name, encoding, 0, sha, _ignored(header, source_of, mapping), header)
    if fingerprint and lines and direct and lines.last_file == path.name:
        reading = FileReading(table, path.name, text_path, header, source_of, mapping)
        done = stage_changed_lines(con, schema, reading, direct.lines, fingerprint, tmp_dir)
        if done is not None and done[1]:
            return None, done[1], done[2]
        if done is not None:
            staged.rows = done[0]
            return staged, [], 0
    rows, refused, text = _load(con, table, path.name, text_path, header, source_of, mapping, target, direct)
    if refused:
        con.execute(f"DROP TABLE {target}")
        load_text(con, path.name, text_path, len(header), text, text_table)
        findings, total = value_findings(con, table, path.name, text_table, named)
        con.execute(f"DROP TABLE {text_table}")
        return None, findings, total
    if fingerprint and direct and rows == direct.lines - 1:
        stage_lines(con, schema, table.name, text_path, fingerprint, rows)  # every line a record: kept for next time
    staged.rows = rows
    return staged, [], 0


def _ignored(header: list[str], source_of: dict[str, str], mapping: TableMapping | None) -> list[str]:
    """The header's columns the load does not read."""
    used = set(source_of.values()) | {normalise_header(h) for h in (mapping.keep if mapping else {})}
    return [h for h in header if h and h not in used]


def _load(
    con: Connection,
    table: Table,
    file: str,
    text_path: Path,
    header: list[str],
    source_of: dict[str, str],
    mapping: TableMapping | None,
    target: str,
    scan: FileScan | None,
) -> tuple[int, int, tuple[str, list[object]]]:
    """reading.load_typed with the right spreadsheet rows: (rows, rows with a refused value, the SELECT read).

    A spreadsheet counts blank lines as rows, DuckDB skips them. Rather than search the file for one first,
    the rows are numbered 2, 3, 4, ... and the last one checked against the file's line count (scan_file):
    when they agree, every line was one record. Otherwise (blank lines, records over several lines, a row
    filter) csv_records.spreadsheet_rows reads the file and, if it has blank lines, the file is read again.
    """
    lines = scan.lines if scan is not None else None
    row_of = None if lines is not None else spreadsheet_rows(text_path)
    text = text_select(table, text_path, header, source_of, mapping, row_of)
    rows, refused, last = load_typed(con, table, file, text_path, len(header), text, target)
    if lines is not None and rows and last != lines:
        row_of = spreadsheet_rows(text_path)
        if row_of is not None:
            text = text_select(table, text_path, header, source_of, mapping, row_of)
            rows, refused, last = load_typed(con, table, file, text_path, len(header), text, target)
    return rows, refused, text


def _header_findings(
    path: Path,
    table: Table,
    header: list[str],
    encoding: str,
    source_of: dict[str, str],
    named: dict[str, str],
    mapping: TableMapping | None,
) -> list[Finding]:
    """What stops a file before its rows are read: a workbook's formulas without values, required or kept
    columns missing from the header, a column named twice."""
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
    return findings
