"""Ingest: stage every present source file into the incoming schema; publish to raw only after the gate."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from kizuna.settings import Settings
from kizuna.sources.contract import TABLES
from kizuna.sources.errors import Finding, SourceContractError, SourceError
from kizuna.sources.files import StagedFile, find_file, stage_file
from kizuna.warehouse import INCOMING_SCHEMA, connect

MAX_FINDINGS = 50


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


def new_load_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def stage_sources(settings: Settings, progress: Callable[[str], None] | None = None) -> IngestResult:
    """Parse every contract file in settings.source_dir into the incoming schema.

    Raises SourceContractError (naming file, row, column) when any file breaks the contract; the raw
    schema is not touched either way: `kizuna.warehouse.publish_incoming` publishes after the gate.
    """
    source_dir = settings.source_dir
    if not source_dir.is_dir():
        raise SourceError(str(source_dir), None, None, "source directory does not exist")
    result = IngestResult(load_id=new_load_id(), source_dir=str(source_dir))
    findings: list[Finding] = []
    total = 0
    tmp_dir = settings.tmp_dir / f"ingest-{result.load_id}"
    try:
        with connect(settings.warehouse) as con:
            con.execute(f"SET TimeZone = '{settings.timezone}'")
            con.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")
            con.execute(f"CREATE SCHEMA {INCOMING_SCHEMA}")
            for table in TABLES:
                try:
                    path = find_file(source_dir, table)
                except SourceError as exc:
                    findings.append(exc.finding)
                    total += 1
                    continue
                if path is None:
                    if table.required:
                        findings.append(Finding(f"{table.name}.csv", None, None, "required file is missing"))
                        total += 1
                    else:
                        result.skipped.append(table.name)
                    continue
                if progress:
                    progress(path.name)
                try:
                    staged, file_findings, file_total = stage_file(con, table, path, INCOMING_SCHEMA, tmp_dir)
                except SourceError as exc:
                    findings.append(exc.finding)
                    total += 1
                    continue
                findings += file_findings
                total += file_total
                if staged and table.required and staged.rows == 0:
                    findings.append(
                        Finding(path.name, 2, None, "has a header but no records; a required file cannot be empty")
                    )
                    total += 1
                elif staged:
                    result.staged.append(staged)
            if findings:
                con.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")
                raise SourceContractError(findings[:MAX_FINDINGS], total)
            _record_staged(con, result)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return result


def _record_staged(con: duckdb.DuckDBPyConnection, result: IngestResult) -> None:
    con.execute(
        f"CREATE OR REPLACE TABLE {INCOMING_SCHEMA}._load AS "
        "SELECT ?::VARCHAR AS load_id, ?::VARCHAR AS source_dir, "
        "unnest(?::VARCHAR[]) AS table_name, unnest(?::VARCHAR[]) AS source_file, "
        "unnest(?::VARCHAR[]) AS encoding, unnest(?::BIGINT[]) AS row_count, unnest(?::VARCHAR[]) AS sha256",
        [
            result.load_id,
            result.source_dir,
            [s.table for s in result.staged],
            [s.file for s in result.staged],
            [s.encoding for s in result.staged],
            [s.rows for s in result.staged],
            [s.sha256 for s in result.staged],
        ],
    )
