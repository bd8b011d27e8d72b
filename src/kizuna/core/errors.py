"""Errors about source data that name the file, the row and the column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One problem in one place of a source file. Rows count as a spreadsheet does: the header is row 1."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}"


class SourceError(ValueError):
    """A single problem that makes a source file unreadable."""

    def __init__(self, file: str, row: int | None, column: str | None, message: str) -> None:
        self.finding = Finding(file, row, column, message)
        super().__init__(str(self.finding))


class SourceContractError(ValueError):
    """Source files break the contract; nothing was published to the warehouse."""

    def __init__(self, findings: Sequence[Finding], total: int | None = None) -> None:
        self.findings = list(findings)
        self.total = total if total is not None else len(self.findings)
        lines = [str(f) for f in self.findings]
        more = self.total - len(self.findings)
        if more > 0:
            lines.append(f"... and {more} more")
        super().__init__(
            "the source data breaks the contract (see docs/sources.md); the warehouse was not changed:\n  "
            + "\n  ".join(lines)
        )
