"""`kizuna sources check`: what a source directory holds and what a run would make of it, without a warehouse."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kizuna.core.connection import scratch
from kizuna.core.contract import PRICE_RULE, TABLES, TABLES_BY_NAME, UNLOCKS, Table
from kizuna.core.errors import Finding, SourceError
from kizuna.core.settings import Settings
from kizuna.sources.files import StagedFile, find_file, missing_required_file, read_export_header, stage_file
from kizuna.sources.mapping import Mapping, TableMapping, normalise_header

MAX_PROBLEMS = 20
_SCHEMA = "raw_incoming"


@dataclass
class TableCheck:
    """One contract table: the file that feeds it (if any), what was read, what is missing, what went wrong."""

    table: str
    required: bool
    file: str | None = None
    source: str = "files"  # or the connector that feeds it
    staged: StagedFile | None = None
    columns: dict[str, str] = field(default_factory=dict)  # contract column -> where it is read from
    missing_optional: list[str] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    problem_total: int = 0

    @property
    def unlocks(self) -> str:
        return UNLOCKS.get(self.table, "")


@dataclass
class SourceCheck:
    """The whole directory: one TableCheck per contract table, in contract order."""

    source_dir: Path
    mapping: str | None
    tables: list[TableCheck]

    @property
    def problems(self) -> list[Finding]:
        return [f for t in self.tables for f in t.problems]

    @property
    def problem_total(self) -> int:
        return sum(t.problem_total for t in self.tables)

    @property
    def ready(self) -> bool:
        return self.problem_total == 0


def _columns_read(table: Table, header: list[str], mapping: TableMapping | None) -> dict[str, str]:
    """Contract column -> what it is read from: the export's header, a constant, or the column's own name."""
    read: dict[str, str] = {}
    for column in table.column_names:
        if mapping and column in mapping.constants:
            read[column] = f"constant {mapping.constants[column]!r}"
        elif mapping and column in mapping.headers and normalise_header(mapping.headers[column]) in header:
            read[column] = mapping.headers[column]
        elif column in header:
            read[column] = column
    return read


MRR_OR_AMOUNT = f"the header has neither `mrr` nor `amount` with `billing_period_months`: {PRICE_RULE}"


def _has_revenue(columns: dict[str, str]) -> bool:
    return "mrr" in columns or ("amount" in columns and "billing_period_months" in columns)


def check_sources(settings: Settings, source_dir: Path, mapping: Mapping | None) -> SourceCheck:
    """Parse every file as ingest would, into a throw-away in-memory database; report instead of raising."""
    from kizuna.connectors.routing import FILES, load_routing

    routing = load_routing(settings)
    checks: list[TableCheck] = []
    tmp_dir = Path(tempfile.mkdtemp(prefix="kizuna-sources-check-"))
    con = scratch()
    try:
        con.execute(f"SET TimeZone = '{settings.timezone}'")
        con.execute(f"CREATE SCHEMA {_SCHEMA}")
        for table in TABLES:
            check = TableCheck(table.name, table.required)
            checks.append(check)
            source = routing.source_of(table.name)
            if source != FILES:
                check.source = source
                continue
            table_mapping = mapping.of(table.name) if mapping else None
            try:
                path = find_file(source_dir, table, table_mapping)
            except SourceError as exc:
                check.problems, check.problem_total = [exc.finding], 1
                continue
            if path is None:
                if table.required:
                    check.problems, check.problem_total = [missing_required_file(table, table_mapping)], 1
                continue
            check.file = path.name
            try:
                staged, findings, total = stage_file(con, table, path, _SCHEMA, tmp_dir, table_mapping)
            except SourceError as exc:
                staged, findings, total = None, [exc.finding], 1
            check.staged, check.problems, check.problem_total = staged, findings, total
            if staged is not None and table.required and staged.rows == 0:
                check.problems.append(Finding(staged.file, 2, None, "has a header but no records"))
                check.problem_total += 1
            try:
                header = staged.header if staged else read_export_header(path, table, tmp_dir)
            except SourceError:
                header = []  # unreadable: already a problem
            check.columns = _columns_read(table, header, table_mapping)
            if header and table.name == "subscriptions" and not _has_revenue(check.columns):
                check.problems.append(Finding(path.name, 1, "mrr", MRR_OR_AMOUNT))
                check.problem_total += 1
            if staged is not None:
                check.missing_optional = [
                    c.name for c in table.columns if not c.required and c.name not in check.columns
                ]
    finally:
        con.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return SourceCheck(source_dir, Path(mapping.origin).name if mapping else None, checks)


def render_check(result: SourceCheck) -> list[str]:
    """The report as plain lines: found, read, skipped and unlocked, then the first problems."""
    lines = [f"source directory: {result.source_dir}" + (f" (mapping: {result.mapping})" if result.mapping else "")]
    skipped: list[TableCheck] = []
    for t in result.tables:
        if t.source != "files":
            lines.append(f"{t.table}: from {t.source} (not checked offline; `kizuna ingest` pulls it)")
            continue
        if t.staged is None and t.file is None:
            if not t.required:
                skipped.append(t)
            else:
                lines.append(f"{t.table}: MISSING (required)")
            continue
        if t.staged is None:
            lines.append(f"{t.table} <- {t.file}: cannot be loaded as it is (problems below)")
            continue
        s = t.staged
        lines.append(f"{t.table} <- {s.file}: {s.rows:,} row{'' if s.rows == 1 else 's'}, encoding {s.encoding}")
        renamed = [f"{c} <- {h}" for c, h in t.columns.items() if h != c]
        if renamed:
            lines.append(f"  mapped: {', '.join(renamed)}")
        if s.ignored_columns:
            lines.append(f"  ignored columns: {', '.join(s.ignored_columns)}")
        table = TABLES_BY_NAME[t.table]
        for column in t.missing_optional:
            unlocks = UNLOCKS.get(f"{t.table}.{column}")
            blank = table.column(column).blank
            if unlocks or table.column(column).default is not None:
                meaning = f" (until then: {blank})" if blank else ""
                lines.append(f"  no column {column}{meaning}" + (f"; it would add: {unlocks}" if unlocks else ""))
    for t in skipped:
        lines.append(f"{t.table}: no file (optional, skipped)" + (f"; it would add: {t.unlocks}" if t.unlocks else ""))
    problems = result.problems[:MAX_PROBLEMS]
    if problems:
        lines.append(f"problems ({result.problem_total:,} in all; the first {len(problems)}):")
        lines += [f"  {p}" for p in problems]
        lines.append("fix these, then run `kizuna sources check` again; nothing was written to the warehouse")
    else:
        lines.append("ready: every file parses; `kizuna run` will gate and load it")
    return lines
