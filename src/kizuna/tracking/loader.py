"""Moving stored webhook events into ops.email_events exactly once, and suppressing addresses that must not be mailed.

Exactly once: the cursor (segment, byte offset) advances in the same DuckDB transaction that inserts the
events read up to it, so a crash either keeps both or neither. Duplicates that SendGrid itself sends (the
same sg_event_id, or a retried batch with new ids: the same sg_message_id, event, timestamp and url) are
dropped on insert. The warehouse is opened only briefly, never while reading files, and a file held by the
daily run is waited for with backoff, then left for the next run: the events stay in the store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna.core import ops
from kizuna.core.connection import Connection, WarehouseError
from kizuna.core.ops import EVENT_COLUMNS as EVENT_COLUMNS
from kizuna.core.settings import Settings
from kizuna.core.sql_dialect import first_by_array
from kizuna.core.warehouse import WarehouseLockedError, connect_when_free
from kizuna.email.consent import SUPPRESSING_EVENTS
from kizuna.tracking.events import Chunk as _Chunk
from kizuna.tracking.events import event_row as event_row
from kizuna.tracking.events import next_chunk
from kizuna.tracking.intent import record_intent_links
from kizuna.tracking.store import list_segments

log = logging.getLogger(__name__)


def ensure_tracking_tables(con: Connection, templates_dir: Path | None = None) -> None:
    """Create the ops tables the engagement models read, empty, so dbt builds on a fresh warehouse.

    Besides the events loader's own tables: the send ledger (so email_sends builds before the first campaign
    ran), selection's recipients (treatment and holdout, for the lift marts) and exclusions, and the intent
    links. With ``templates_dir``, also record the templates' intent links as they are now
    (kizuna.tracking.intent): the daily run and `kizuna build` pass it, right before dbt reads them.
    """
    ops.ensure(
        con,
        ops.EMAIL_EVENTS,
        ops.EMAIL_EVENTS_CURSOR,
        ops.EMAIL_EVENT_REJECTS,
        ops.SUPPRESSIONS,
        ops.SEND_LEDGER,
        ops.CAMPAIGN_RECIPIENTS,
        ops.CAMPAIGN_EXCLUSIONS,
        ops.TEMPLATE_INTENT_LINKS,
    )
    if templates_dir is not None:
        record_intent_links(con, templates_dir)


@dataclass
class LoadResult:
    """What one load did. ``deferred`` means the warehouse stayed held: the rest waits in the store."""

    lines_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    suppressions: int = 0
    transactions: int = 0
    deferred: bool = False
    cursor: str = ""
    seconds: float = 0.0
    segments: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"{self.inserted:,} events loaded, {self.duplicates:,} duplicates dropped, {self.rejected:,} lines "
            f"set aside, {self.suppressions:,} suppressions; cursor {self.cursor or '(start)'}"
        )
        return text + (" — deferred: the warehouse was held; the rest loads next time" if self.deferred else "")


def _store_key(settings: Settings) -> str:
    return str(Path(settings.events_dir).resolve())


def _read_cursor(con: Connection, store: str) -> tuple[str, int]:
    row = con.execute(
        f"SELECT segment, byte_offset FROM {ops.EMAIL_EVENTS_CURSOR.name} WHERE store = ?", [store]
    ).fetchone()
    return (str(row[0]), int(row[1])) if row else ("", 0)


_COLUMN_NAMES = [name for name, _ in EVENT_COLUMNS]
_OFFSET, _PAYLOAD = _COLUMN_NAMES.index("segment_offset"), _COLUMN_NAMES.index("payload")
_INCOMING = ", ".join(f"unnest(?::{kind}[]) AS {name}" for name, kind in EVENT_COLUMNS)
_COLUMN_LIST = ", ".join(_COLUMN_NAMES)
# One SQL text for DuckDB and PostgreSQL: no QUALIFY, no BY NAME, arg_min as first_by_array (docs/scaling.md).
_INSERT_NEW = f"""
    INSERT INTO {ops.EMAIL_EVENTS.name} ({_COLUMN_LIST}, loaded_at)
    WITH by_event_id AS (
        SELECT * FROM (
            SELECT i.*, row_number() OVER (PARTITION BY sg_event_id ORDER BY segment_offset) AS nth_with_id
            FROM _incoming AS i
            WHERE NOT EXISTS (SELECT 1 FROM {ops.EMAIL_EVENTS.name} AS e WHERE e.sg_event_id = i.sg_event_id)
        ) AS numbered
        WHERE nth_with_id = 1
    ),
    by_content AS (
        -- retried batches have come with new sg_event_ids: the same message, event, second and url is one event
        SELECT * FROM (
            SELECT b.*, row_number() OVER (
                PARTITION BY sg_message_id, event, event_timestamp, url ORDER BY segment_offset) AS nth_alike
            FROM by_event_id AS b
            WHERE b.sg_message_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM {ops.EMAIL_EVENTS.name} AS e
                WHERE e.sg_message_id = b.sg_message_id AND e.event = b.event
                  AND e.event_timestamp IS NOT DISTINCT FROM b.event_timestamp AND e.url IS NOT DISTINCT FROM b.url)
        ) AS numbered
        WHERE sg_message_id IS NULL OR nth_alike = 1
    )
    SELECT {_COLUMN_LIST}, timezone('UTC', now()) FROM by_content
    RETURNING 1"""
_SUPPRESSING = ", ".join(f"'{e}'" for e in SUPPRESSING_EVENTS)
_UPSERT_SUPPRESSIONS = f"""
    INSERT INTO {ops.SUPPRESSIONS.name} (email, reason, source, suppressed_at, detail)
    SELECT email, {first_by_array("reason", "seen_at")}, 'sendgrid', min(seen_at),
           {first_by_array("sg_event_id", "seen_at")}
    FROM (
        SELECT lower(trim(email)) AS email, sg_event_id, coalesce(event_at, received_at) AS seen_at,
               CASE WHEN event = 'bounce' AND bounce_type = 'blocked' THEN 'blocked' ELSE event END AS reason
        FROM _incoming
        WHERE event IN ({_SUPPRESSING}) AND nullif(trim(email), '') IS NOT NULL
        UNION ALL
        -- opt-outs among the rejects (e.g. a broken timestamp): set aside, and suppressed all the same
        SELECT lower(trim(email)), sg_event_id, seen_at, reason FROM _salvaged WHERE nullif(trim(email), '') IS NOT NULL
    ) AS seen
    GROUP BY email
    ON CONFLICT (email) DO UPDATE
        SET reason = excluded.reason, source = excluded.source, suppressed_at = excluded.suppressed_at,
            detail = excluded.detail
        WHERE excluded.suppressed_at < suppressions.suppressed_at OR suppressions.suppressed_at IS NULL
    RETURNING 1"""


def _stage(con: Connection, chunk: _Chunk) -> None:
    """The chunk's rows as the temp tables _incoming and _salvaged, before its transaction begins.

    Every value is checked while parsing, so DuckDB should take every row; should it still refuse one (a
    conversion no check foresaw), that row alone joins the rejects with DuckDB's reason instead of
    stopping the load (and every later unsubscribe with it).
    """
    try:
        _create_incoming(con, chunk.rows)
    except WarehouseError:
        good: list[tuple[Any, ...]] = []
        for row in chunk.rows:
            try:
                _create_incoming(con, [row])
            except WarehouseError as exc:
                reason = "not loadable: " + " ".join(str(exc).split())[:480]
                chunk.rejects.append((chunk.segment, row[_OFFSET], reason, row[_PAYLOAD]))
            else:
                good.append(row)
        chunk.rows = good
        _create_incoming(con, good)
    con.execute("DROP TABLE IF EXISTS _salvaged")
    con.execute(
        "CREATE TEMPORARY TABLE _salvaged AS SELECT unnest(?::VARCHAR[]) AS email, unnest(?::VARCHAR[]) AS "
        "reason, unnest(?::VARCHAR[]) AS sg_event_id, unnest(?::TIMESTAMP[]) AS seen_at",
        [list(c) for c in zip(*chunk.salvaged, strict=True)] if chunk.salvaged else [[], [], [], []],
    )


def _create_incoming(con: Connection, rows: list[tuple[Any, ...]]) -> None:
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in EVENT_COLUMNS]
    con.execute("DROP TABLE IF EXISTS _incoming")
    con.execute(f"CREATE TEMPORARY TABLE _incoming AS SELECT {_INCOMING}", columns)


def _commit_chunk(con: Connection, store: str, expected: tuple[str, int], chunk: _Chunk, result: LoadResult) -> bool:
    """Insert the chunk and move the cursor in one transaction; False if another loader moved it first."""
    _stage(con, chunk)
    con.execute("BEGIN TRANSACTION")
    try:
        if _read_cursor(con, store) != expected:
            con.execute("ROLLBACK")
            return False
        inserted = _count(con.execute(_INSERT_NEW)) if chunk.rows else 0
        suppressed = _count(con.execute(_UPSERT_SUPPRESSIONS)) if chunk.rows or chunk.salvaged else 0
        if chunk.rejects:
            segs, offsets, reasons, lines = (list(c) for c in zip(*chunk.rejects, strict=True))
            con.execute(
                f"INSERT INTO {ops.EMAIL_EVENT_REJECTS.name} SELECT unnest(?::VARCHAR[]), unnest(?::BIGINT[]), "
                "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), timezone('UTC', now())",
                [segs, offsets, reasons, lines],
            )
        con.execute(
            f"INSERT INTO {ops.EMAIL_EVENTS_CURSOR.name} VALUES (?, ?, ?, timezone('UTC', now())) ON CONFLICT (store) DO UPDATE "
            "SET segment = excluded.segment, byte_offset = excluded.byte_offset, updated_at = excluded.updated_at",
            [store, chunk.segment, chunk.offset],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.lines_read += len(chunk.rows) + len(chunk.rejects)
    result.inserted += inserted
    result.duplicates += len(chunk.rows) - inserted
    result.rejected += len(chunk.rejects)
    result.suppressions += suppressed
    result.transactions += 1
    if chunk.segment not in result.segments:
        result.segments.append(chunk.segment)
    return True


def _count(cursor: Connection) -> int:
    """Rows a statement ending in RETURNING 1 wrote (DuckDB would also answer a count; PostgreSQL does not)."""
    return len(cursor.fetchall())


def load_events(
    settings: Settings,
    *,
    wait_seconds: float | None = None,
    max_bytes_per_transaction: int = 32 * 1024 * 1024,
    warehouse: Path | str | None = None,
) -> LoadResult:
    """Load everything new in the event store into the warehouse; see the module docstring for the guarantees.

    ``warehouse`` defaults to settings.warehouse; a postgresql:// URL loads into a PostgreSQL warehouse (the
    loader's SQL is the same on both engines: tests/tracking/test_loader_engines.py).

    Each transaction covers at most ``max_bytes_per_transaction`` of segment data, and the warehouse is closed
    between transactions, so a backlog never keeps the daily run waiting long. If the file stays held for
    ``wait_seconds`` (default KIZUNA_EVENTS_LOAD_WAIT_SECONDS) in all, the load stops with ``deferred=True``.
    """
    started = time.monotonic()
    deadline = started + (settings.events_load_wait_seconds if wait_seconds is None else wait_seconds)
    store = _store_key(settings)
    target = settings.warehouse_target if warehouse is None else warehouse
    result = LoadResult()
    cursor: tuple[str, int] | None = None
    try:
        while True:
            if cursor is None:
                with connect_when_free(target, wait_seconds=max(0.0, deadline - time.monotonic())) as con:
                    ensure_tracking_tables(con)
                    cursor = _read_cursor(con, store)
            # Files are read and parsed with the warehouse closed.
            chunk = next_chunk(list_segments(Path(settings.events_dir)), cursor, max_bytes_per_transaction)
            if chunk is None:
                break
            with connect_when_free(target, wait_seconds=max(0.0, deadline - time.monotonic())) as con:
                committed = _commit_chunk(con, store, cursor, chunk, result)
            cursor = (chunk.segment, chunk.offset) if committed else None
    except WarehouseLockedError as exc:
        result.deferred = True
        log.warning("event load deferred, nothing lost (events stay in %s): %s", settings.events_dir, exc)
    result.cursor = f"{cursor[0]}@{cursor[1]}" if cursor and cursor[0] else ""
    result.seconds = time.monotonic() - started
    log.info("event load: %s", result.describe())
    return result
