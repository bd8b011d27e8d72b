"""Ingest: stage every present source file into the incoming schema; publish to raw only after the gate."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kizuna.connectors.routing import FILES, load_routing
from kizuna.core.connection import Connection
from kizuna.core.contract import TABLES, TABLES_BY_NAME, Table
from kizuna.core.errors import Finding, SourceContractError, SourceError
from kizuna.core.publish import copy_schema_from_server, copy_staged_to_server, forget_staged_on_server
from kizuna.core.settings import Settings
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    RAW_SCHEMA,
    STATE_SCHEMA,
    ChangeCounts,
    connect,
    stage_change_list,
    stage_changes,
    table_exists,
)
from kizuna.sources.changes import (
    UNCHANGED,
    PublishedLoad,
    can_reuse,
    last_published,
    options_sha256,
    reuse_published,
)
from kizuna.sources.encoding import scan_file
from kizuna.sources.files import LineReuse, StagedFile, file_sha256, find_file, missing_required_file, stage_file
from kizuna.sources.fx import record_fx_currencies
from kizuna.sources.mapping import TableMapping, mapping_from_options
from kizuna.sources.pulls import Pulls

MAX_FINDINGS = 50
# Files read at once (never more than the cores): each read holds one core (see _stage_files) and its own pipeline's
# memory under the warehouse's one memory_limit.
MAX_FILES_AT_ONCE = 4


@dataclass
class IngestResult:
    """What one ingest staged, and what it skipped because no file was present."""

    load_id: str
    source_dir: str
    staged: list[StagedFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def rows(self) -> dict[str, int]:
        return {s.table: s.rows for s in self.staged}

    @property
    def unchanged(self) -> list[str]:
        """Tables whose file equals the last published load's: not parsed, raw reused as is."""
        return [s.table for s in self.staged if s.status == UNCHANGED]


def new_load_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def stage_sources(
    settings: Settings, progress: Callable[[str], None] | None = None, *, keep_lines: bool = True
) -> IngestResult:
    """Stage every raw table into the incoming schema: from files in settings.source_dir, or pulled by the
    connector the sources file routes it to (kizuna.connectors), with the same parser and rules.

    Raises SourceContractError (naming file, row, column) when any table breaks the contract, and
    ConnectorError when a pull fails; the raw schema, cursors and mirrors are not touched either way:
    `kizuna.core.publish.publish_load` publishes them together after the gate.
    """
    if settings.warehouse_url is not None:
        return _stage_for_server(settings, progress)
    routing = load_routing(settings)
    mapping = mapping_from_options(routing.options.get(FILES, {}), settings.mappings_dir, settings.sources_config)
    source_dir = settings.source_dir
    if routing.uses_files and not source_dir.is_dir():
        raise SourceError(str(source_dir), None, None, "source directory does not exist")
    result = IngestResult(load_id=new_load_id(), source_dir=str(source_dir) if routing.uses_files else routing.origin)
    findings: list[Finding] = []
    total = 0
    tmp_dir = settings.tmp_dir / f"ingest-{result.load_id}"
    try:
        with connect(settings.warehouse_target) as con:
            con.execute(f"SET TimeZone = '{settings.timezone}'")
            con.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")
            con.execute(f"CREATE SCHEMA {INCOMING_SCHEMA}")
            stage_change_list(con)  # before the reads: each file's cursor appends its table's keys (_stage_files)
            pulls = Pulls(con, settings, routing.options, result.load_id)
            published = {} if settings.full_refresh else last_published(con)
            try:
                from_files = [t for t in TABLES if routing.source_of(t.name) == FILES]
                reads = {
                    t.name: _FileRead(source_dir, tmp_dir, mapping.of(t.name) if mapping else None, keep_lines)
                    for t in from_files
                }
                files_staged = _stage_files(
                    con, from_files, reads, settings.timezone, published, result.load_id, progress
                )
                for table in TABLES:
                    source = routing.source_of(table.name)
                    if source == FILES:
                        pulls.cursors.forget(table.name)
                        staged, table_findings, table_total = files_staged[table.name]
                    else:
                        if progress:
                            progress(f"{source}:{table.name}")
                        staged, table_findings, table_total = pulls.pull(table, source, tmp_dir)
                    findings += table_findings
                    total += table_total
                    if staged is None and not table_findings and not table.required:
                        result.skipped.append(table.name)
                    elif staged is None and not table_findings:
                        findings.append(missing_required_file(table, mapping.of(table.name) if mapping else None))
                        total += 1
                    elif staged and table.required and staged.rows == 0:
                        findings.append(
                            Finding(
                                staged.file, 2, None, "has a header but no records; a required file cannot be empty"
                            )
                        )
                        total += 1
                    elif staged:
                        result.staged.append(staged)
                if findings:
                    raise SourceContractError(findings[:MAX_FINDINGS], total)
                for staged in result.staged:  # the pulled tables (a file's was compared as it was read)
                    if staged.status != UNCHANGED and staged.changes is None:
                        staged.changes = stage_changes(con, TABLES_BY_NAME[staged.table], result.load_id)
                pulls.cursors.stage(con)
                record_fx_currencies(con, INCOMING_SCHEMA, settings.dbt_project_dir)
                _record_staged(con, result, settings.full_refresh)
            except BaseException:
                con.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return result


def _stage_for_server(settings: Settings, progress: Callable[[str], None] | None) -> IngestResult:
    """Stage for a PostgreSQL warehouse: DuckDB parses the sources into a staging file under tmp_dir, with the same
    reader, contract and findings as for a DuckDB warehouse (the connectors' state copied in from the server), and
    the staged tables are copied to the server's incoming schema, where the gate checks them and publishes.

    The staging file holds no published load, so every file is parsed and no key is listed as changed: the gate
    checks every row and the publish replaces each raw table whole (the per-key comparison of DuckDB's incremental
    day rests on its own hash; docs/scaling.md). The connectors still pull from their cursors, and dbt still
    rebuilds from the earliest month the load changes (kizuna.transform.rebuild_plan compares raw with the staged
    load on the server). A load's change counts are known on a table's first load only (every row inserted).
    """
    staging = settings.tmp_dir / "server-staging.duckdb"
    local = settings.model_copy(update={"warehouse": staging, "warehouse_url": None})
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)  # a staging file of a run that died: never reused
    try:
        with connect(settings.warehouse_target) as server:
            forget_staged_on_server(server)  # as a DuckDB warehouse's ingest: a failed one leaves nothing staged
            with connect(staging) as con:
                copy_schema_from_server(server, con, STATE_SCHEMA)
            result = stage_sources(local, progress, keep_lines=False)  # a server keeps no lines (docs/scaling.md)
            with connect(staging, read_only=True) as con:
                copy_staged_to_server(con, server, settings.tmp_dir / f"ingest-{result.load_id}")
            published = {t.name for t in TABLES if table_exists(server, RAW_SCHEMA, t.name)}
            if published:  # compared with nothing on the staging side: counts unknown against the server's raw
                server.execute(
                    f"UPDATE {INCOMING_SCHEMA}._load SET inserted_rows = NULL, updated_rows = NULL, "
                    f"deleted_rows = NULL WHERE table_name IN ({', '.join('?' for _ in published)})",
                    sorted(published),
                )
            for staged in result.staged:
                if staged.table in published:
                    staged.changes = None
            return result
    finally:
        for leftover in (staging, staging.with_name(staging.name + ".wal")):
            leftover.unlink(missing_ok=True)


@dataclass(frozen=True)
class _FileRead:
    """Where a table's file is looked for and how it is read."""

    source_dir: Path
    tmp_dir: Path
    mapping: TableMapping | None
    keep_lines: bool = True  # hash a CSV file's lines for the next load, and parse only the changed ones


def _stage_files(
    con: Connection,
    tables: list[Table],
    reads: dict[str, _FileRead],
    timezone: str,
    published: dict[str, PublishedLoad],
    load_id: str,
    progress: Callable[[str], None] | None,
) -> dict[str, tuple[StagedFile | None, list[Finding], int]]:
    """_stage_from_file for each table, several files at once, each on its own cursor; largest file first.

    Reading a file is one statement that DuckDB runs on one core: the spreadsheet row number (a streaming
    window over the reader) keeps the rows in file order, and that serialises the pipeline above it. Files are
    independent (each stages its own incoming table), so reading two at once uses the cores the numbering
    leaves idle. Each file is compared with raw on its cursor as soon as it is read (`stage_changes`), beside
    the reading of the larger ones, appending its keys to the change list the caller created before. Findings
    and staged tables do not depend on the order: the caller reads them in TABLES order.
    """
    if not tables:
        return {}

    def size(table: Table) -> int:
        try:
            path = find_file(reads[table.name].source_dir, table, reads[table.name].mapping)
        except SourceError:
            return 0
        return path.stat().st_size if path is not None else 0

    def stage(table: Table) -> tuple[StagedFile | None, list[Finding], int]:
        with con.cursor() as cur:
            cur.execute(f"SET TimeZone = '{timezone}'")  # a cursor is its own session: settings are not shared
            return _stage_from_file(
                cur, table, reads[table.name], timezone, published.get(table.name), load_id, progress
            )

    workers = max(1, min(len(tables), os.cpu_count() or 1, MAX_FILES_AT_ONCE))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kizuna-ingest") as pool:
        futures = {t.name: pool.submit(stage, t) for t in sorted(tables, key=size, reverse=True)}
        return {name: future.result() for name, future in futures.items()}


def _stage_from_file(
    con: Connection,
    table: Table,
    read: _FileRead,
    timezone: str,
    last: PublishedLoad | None,
    load_id: str,
    progress: Callable[[str], None] | None,
) -> tuple[StagedFile | None, list[Finding], int]:
    """Stage the table's file and compare it with raw (its changes); one equal (bytes and reading options) to the
    last published load's is not parsed: the published raw table is reused (kizuna.sources.changes). A file with
    findings is not compared (the load fails)."""
    try:
        path = find_file(read.source_dir, table, read.mapping)
    except SourceError as exc:
        return None, [exc.finding], 1
    if path is None:
        return None, [], 0
    scan = scan_file(path) if path.suffix.lower() != ".xlsx" else None
    sha = scan.sha256 if scan else file_sha256(path)
    opts = options_sha256(table, read.mapping, timezone)
    if last is not None and can_reuse(con, table, last, sha, opts):
        if progress:
            progress(f"{path.name} (unchanged)")
        rows = reuse_published(con, table)
        unchanged = StagedFile(table.name, path.name, last.encoding, rows, sha, status=UNCHANGED, options_sha256=opts)
        unchanged.changes = ChangeCounts()
        return unchanged, [], 0
    if progress:
        progress(path.name)
    try:
        lines = LineReuse(opts, last.source_file if last else None) if read.keep_lines else None
        staged, findings, total = stage_file(con, table, path, INCOMING_SCHEMA, read.tmp_dir, read.mapping, scan, lines)
    except SourceError as exc:
        return None, [exc.finding], 1
    if staged is not None:
        staged.options_sha256 = opts
        if not findings:
            staged.changes = stage_changes(con, table, load_id)
    return staged, findings, total


def _record_staged(con: Connection, result: IngestResult, full_refresh: bool) -> None:
    """The load's record per table; `full_refresh` tells the gate to check every row (quality.changed_rows)."""

    def changes(attr: str) -> list[int | None]:
        return [getattr(s.changes, attr) if s.changes else None for s in result.staged]

    con.execute(
        f"CREATE OR REPLACE TABLE {INCOMING_SCHEMA}._load AS "
        "SELECT ?::VARCHAR AS load_id, ?::VARCHAR AS source_dir, "
        "unnest(?::VARCHAR[]) AS table_name, unnest(?::VARCHAR[]) AS source_file, "
        "unnest(?::VARCHAR[]) AS encoding, unnest(?::BIGINT[]) AS row_count, unnest(?::VARCHAR[]) AS sha256, "
        "unnest(?::VARCHAR[]) AS options_sha256, unnest(?::VARCHAR[]) AS status, "
        "unnest(?::BIGINT[]) AS inserted_rows, unnest(?::BIGINT[]) AS updated_rows, "
        "unnest(?::BIGINT[]) AS deleted_rows, false AS rewritten, ?::BOOLEAN AS full_refresh",
        [
            result.load_id,
            result.source_dir,
            [s.table for s in result.staged],
            [s.file for s in result.staged],
            [s.encoding for s in result.staged],
            [s.rows for s in result.staged],
            [s.sha256 for s in result.staged],
            [s.options_sha256 for s in result.staged],
            [s.status for s in result.staged],
            changes("inserted"),
            changes("updated"),
            changes("deleted"),
            full_refresh,
        ],
    )
