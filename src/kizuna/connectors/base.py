"""What a connector is: something that writes one raw table's changes since a cursor into a ChangeSink."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from kizuna.core.contract import Table

Cursor = dict[str, Any]  # a connector's own JSON-able position, e.g. {"companies": "2026-11-01T00:00:00Z"}


class ConnectorError(RuntimeError):
    """A pull failed (after its retries). The message names source and object, never a secret."""


@dataclass(frozen=True)
class PullOutcome:
    """How a pull ended: the cursor to store once the load is published, and whether it saw everything.

    snapshot=True means the sink holds the whole table (a first or full pull, or a source without cursors):
    the stored mirror is replaced instead of merged with.
    """

    cursor: Cursor
    snapshot: bool


class Connector(Protocol):
    """One source system. `tables` are the raw tables it can feed."""

    name: str
    tables: tuple[str, ...]

    def pull(self, table: Table, cursor: Cursor | None, sink: ChangeSink) -> PullOutcome:
        """Write every record changed since `cursor` (all records when cursor is None) and every deletion."""
        ...


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | Decimal | int | float):
        return str(value)
    return str(value)


@dataclass
class ChangeSink:
    """Collects one pull of one table: upserted records (as a contract CSV) and deleted keys.

    The CSV goes through the file source's parser, so API records get the same types, rules and findings
    as files; each CSV row remembers which API record it came from (`ref`), so findings can name it.
    A key upserted twice keeps its last version; a key deleted after its upsert stays deleted.
    """

    table: Table
    path: Path
    upserts: int = 0
    deleted: set[str] = field(default_factory=set)
    refs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(self.table.column_names)

    def upsert(self, record: Mapping[str, object], ref: str) -> None:
        """One record in the contract's column names; `ref` names it in the source, e.g. 'company 1234'.

        Timestamps as the file source reads them: an aware datetime is an instant (pass APIs' UTC times
        aware); a naive one is read in the business time zone (settings.timezone), like a naive CSV cell.
        """
        unknown = set(record) - set(self.table.column_names)
        if unknown:
            raise ValueError(f"{self.table.name}: not contract columns: {', '.join(sorted(unknown))}")
        self._writer.writerow([_cell(record.get(c)) for c in self.table.column_names])
        self.refs.append(ref)
        self.upserts += 1
        if self.table.key is not None:
            self.deleted.discard(str(record.get(self.table.key)))

    def delete(self, key: str) -> None:
        """The record with this contract key is gone (deleted or archived in the source)."""
        if self.table.key is None:
            raise ValueError(f"{self.table.name} has no key; a connector must pull it whole (snapshot)")
        self.deleted.add(str(key))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def ref_of_row(self, row: int | None) -> str | None:
        """The source record behind a CSV row in spreadsheet numbering (the header is row 1)."""
        if row is None or not 2 <= row < len(self.refs) + 2:
            return None
        return self.refs[row - 2]
