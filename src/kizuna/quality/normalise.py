"""Normalising harmless variants in staged values before the checks, so a cosmetic change is not a bad load."""

from __future__ import annotations

from dataclasses import dataclass

from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN
from kizuna.core.errors import Finding
from kizuna.core.raw_lines import materialize_staged
from kizuna.core.sql_dialect import dialect_of

# An address with a display name, as mail clients and CRM exports write it (RFC 5322 name-addr):
# `"Taro Sato" <taro@example.co.jp>`, `佐藤 太郎 <taro@example.co.jp>`, `<taro@example.co.jp>`. The display name
# says nothing kizuna uses, and the address inside is what a plain column holds: keep the address.
_NAME_ADDR = r'^\s*(?:"[^"]*"|[^"<>@]*?)\s*<\s*([^<>\s@]+@[^<>\s@]+)\s*>\s*$'

# normaliser name -> (pattern a value must match in full, the group kept, what the change is called); in the syntax
# DuckDB's RE2 and PostgreSQL's regular expressions share
NORMALISERS: dict[str, tuple[str, int, str]] = {
    "email_address": (_NAME_ADDR, 1, "address with a display name: kept the address"),
}


@dataclass(frozen=True)
class Normalisation:
    """How many values of one column a normaliser rewrote in a staged load, with the first as an example."""

    table: str
    column: str
    change: str
    count: int
    example: Finding

    def __str__(self) -> str:
        values = "value" if self.count == 1 else "values"
        return f"{self.table}.{self.column}: {self.count:,} {values} rewritten ({self.change}), e.g. {self.example}"


def normalise_column(con: Connection, schema: str, table: str, column: str, kind: str) -> Normalisation | None:
    """Rewrite the values of one staged column that match the normaliser; None when none did."""
    pattern, group, change = NORMALISERS[kind]
    target = f'{schema}."{table}"'
    dialect, quoted = dialect_of(con), f'"{column}"'
    matches = dialect.full_match(quoted, f"'{pattern}'")
    row = con.execute(
        f"SELECT count(*), {dialect.first_by(SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN)}, min({SOURCE_ROW_COLUMN}), "
        f"{dialect.first_by(quoted, SOURCE_ROW_COLUMN)} FROM {target} WHERE {matches}"
    ).fetchone()
    if not row or not row[0]:
        return None
    count, file, first_row, before = row
    kept = dialect.regexp_group(quoted, f"'{pattern}'", group)
    materialize_staged(con, schema, table)  # a load of changed lines is staged as a view
    con.execute(f"UPDATE {target} SET {quoted} = {kept} WHERE {matches}")
    after = con.execute(
        f'SELECT "{column}" FROM {target} WHERE {SOURCE_ROW_COLUMN} = ? LIMIT 1', [first_row]
    ).fetchone()
    example = Finding(str(file), int(first_row), column, f"{before!r} -> {after[0] if after else ''!r}")
    return Normalisation(table, column, change, int(count), example)
