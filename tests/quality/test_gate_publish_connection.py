"""The gate publishes on a connection of its own (issue 22): closing the checks' connection gives back DuckDB's
buffers of everything they read, instead of the publish's transaction growing on top of them (at 1M customers the
first run's peak; docs/benchmarks.md, "The first run's peak at 1M")."""

from __future__ import annotations

import duckdb

from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.quality.test_gate import AS_OF
from tests.quality.test_gate_months import day_one, write_sources


def table_buffers(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes DuckDB holds in memory for the tables' blocks it has read (its buffer pool)."""
    row = con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'")
    return int(row.fetchone()[0])  # type: ignore[index]


def test_the_publish_starts_on_a_fresh_connection_holding_none_of_the_checks_reads(settings: Settings) -> None:
    write_sources(settings.source_dir, day_one())
    stage_sources(settings)
    seen: list[int] = []
    verdict = gate_and_publish(settings, AS_OF, before_publish=lambda con: seen.append(table_buffers(con)))
    assert verdict.passed and verdict.published
    with connect(settings.warehouse) as con:
        opened = table_buffers(con)  # what merely opening the file reads (the catalog)
    assert len(seen) == 1 and seen[0] <= opened, (seen, opened)  # the checks' connection held 8× as much
