"""CSV as a spreadsheet reads it: the header record, spreadsheet row numbers, and the first broken record."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from kizuna.core.errors import SourceError
from kizuna.sources.mapping import normalise_header

# The longest record (line) read, in bytes: DuckDB's default, stated so the row-naming fallback agrees with it.
MAX_RECORD_BYTES = 2_000_000


def read_header(path: Path, file: str) -> list[str]:
    """The header record's names, stripped and lower-cased (a quoted name may span lines, as a record may)."""
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
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
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
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
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
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
