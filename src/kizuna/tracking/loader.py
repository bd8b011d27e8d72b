"""Moving stored webhook events into ops.email_events exactly once, and suppressing addresses that must not be mailed.

Exactly once: the cursor (segment, byte offset) advances in the same DuckDB transaction that inserts the
events read up to it, so a crash either keeps both or neither. Duplicates that SendGrid itself sends (the
same sg_event_id, or a retried batch with new ids: the same sg_message_id, event, timestamp and url) are
dropped on insert. The warehouse is opened only briefly, never while reading files, and a file held by the
daily run is waited for with backoff, then left for the next run: the events stay in the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from kizuna.campaigns.ledger import ensure_ledger
from kizuna.campaigns.select import ensure_recipient_tables
from kizuna.core.settings import Settings
from kizuna.core.warehouse import OPS_SCHEMA, WarehouseLockedError, connect_when_free
from kizuna.tracking.intent import ensure_intent_links_table, record_intent_links
from kizuna.tracking.store import decode_line, list_segments, read_lines, segment_number

log = logging.getLogger(__name__)

EVENTS_TABLE = f"{OPS_SCHEMA}.email_events"
CURSOR_TABLE = f"{OPS_SCHEMA}.email_events_cursor"
REJECTS_TABLE = f"{OPS_SCHEMA}.email_event_rejects"
SUPPRESSIONS_TABLE = f"{OPS_SCHEMA}.suppressions"
# Events after which an address gets no more campaign mail (opt-out always wins; bounces protect the sender).
SUPPRESSING_EVENTS = ("unsubscribe", "group_unsubscribe", "bounce", "dropped", "spamreport")
# custom_args kizuna sets on every message (kizuna.email.message), echoed by SendGrid as top-level keys.
CUSTOM_ARGS = ("message_key", "send_id", "run_id", "campaign", "template", "locale", "variant")

# (column, DuckDB type) of ops.email_events, in order; the loader fills all but loaded_at from each event.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sg_event_id", "VARCHAR"),
    ("sg_message_id", "VARCHAR"),
    ("event", "VARCHAR"),
    ("email", "VARCHAR"),
    ("event_timestamp", "BIGINT"),
    ("event_at", "TIMESTAMP"),
    ("url", "VARCHAR"),
    *((name, "VARCHAR") for name in CUSTOM_ARGS),
    ("is_machine_open", "BOOLEAN"),
    ("bounce_type", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("status", "VARCHAR"),
    ("asm_group_id", "BIGINT"),
    ("useragent", "VARCHAR"),
    ("categories", "VARCHAR"),
    ("payload", "VARCHAR"),
    ("received_at", "TIMESTAMP"),
    ("segment", "VARCHAR"),
    ("segment_offset", "BIGINT"),
)


def ensure_tracking_tables(con: duckdb.DuckDBPyConnection, templates_dir: Path | None = None) -> None:
    """Create the ops tables the engagement models read, empty, so dbt builds on a fresh warehouse.

    With ``templates_dir``, also record the templates' intent links as they are now (kizuna.tracking.intent):
    the daily run and `kizuna build` pass it, right before dbt reads them.
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}")
    columns = ",\n            ".join(
        f"{name} {kind}" + (" PRIMARY KEY" if name == "sg_event_id" else " NOT NULL" if name == "event" else "")
        for name, kind in EVENT_COLUMNS
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (\n            {columns},\n            loaded_at TIMESTAMP)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {CURSOR_TABLE} (store VARCHAR PRIMARY KEY, segment VARCHAR NOT NULL, "
        "byte_offset BIGINT NOT NULL, updated_at TIMESTAMP NOT NULL)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {REJECTS_TABLE} (segment VARCHAR, segment_offset BIGINT, reason VARCHAR, "
        "line VARCHAR, rejected_at TIMESTAMP)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SUPPRESSIONS_TABLE} (email VARCHAR PRIMARY KEY, reason VARCHAR, "
        "source VARCHAR, suppressed_at TIMESTAMP, detail VARCHAR)"
    )
    ensure_ledger(con)  # the ledger's own DDL, so email_sends builds before the first campaign ran
    ensure_recipient_tables(con)  # selection's own DDL: treatment and holdout, for the lift marts
    ensure_intent_links_table(con)
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


Reject = tuple[str, int, str, str]  # (segment, offset, reason, line) of ops.email_event_rejects
Salvaged = tuple[str, str, str, datetime]  # (email, reason, event id, seen at) of an opt-out among the rejects


@dataclass
class _Chunk:
    """Rows read from one stretch of one segment, and where the cursor goes once they are committed.

    ``salvaged``: suppressing events among the rejects, whose addresses are suppressed all the same.
    """

    rows: list[tuple[Any, ...]]
    rejects: list[Reject]
    segment: str
    offset: int
    salvaged: list[Salvaged] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: DuckDB strings must be valid UTF-8
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


# Epoch seconds kizuna accepts: 1970 up to the end of year 9999 (what a timestamp column can hold).
TIMESTAMP_RANGE = (0, 253_402_300_799)
BIGINT_RANGE = (-(2**63), 2**63 - 1)


def _int(event: dict[str, Any], key: str, bounds: tuple[int, int] = BIGINT_RANGE) -> int | None:
    """The event's integer field ``key`` (None when absent or null); ValueError naming the field otherwise.

    SendGrid sends integers; numeric text and whole floats are read as the number they spell. Anything else,
    or a number outside ``bounds``, is not guessed at: the event goes to the rejects table with the reason.
    """
    value = event.get(key)
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else ""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        text.isascii() and text.lstrip("-").isdigit() and len(text) <= 30
    ):
        number = int(value)
    shown = json.dumps(value, ensure_ascii=True, default=str)[:60]
    if number is None:
        raise ValueError(f"{key} {shown} is not a whole number")
    low, high = bounds
    if not low <= number <= high:
        raise ValueError(f"{key} {shown} is out of range ({low} to {high})")
    return number


def _utc(epoch: int | None) -> datetime | None:
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return None


def event_row(event: dict[str, Any], received_at: str, segment: str, offset: int) -> tuple[Any, ...]:
    """One ops.email_events row (without loaded_at) from one SendGrid event; ValueError if it has no type."""
    kind = event.get("event")
    if not isinstance(kind, str) or not kind:
        raise ValueError("event has no 'event' type")
    payload = json.dumps(event, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    # SendGrid always sends sg_event_id; should one be missing, the payload itself identifies the event.
    event_id = _text(event.get("sg_event_id")) or "kz-" + hashlib.sha256(payload.encode()).hexdigest()[:32]
    timestamp = _int(event, "timestamp", TIMESTAMP_RANGE)
    machine_open = event.get("sg_machine_open")
    categories = event.get("category")
    received = _received(received_at)
    return (
        event_id,
        _text(event.get("sg_message_id")),
        kind,
        _text(event.get("email")),
        timestamp,
        _utc(timestamp),
        _text(event.get("url")),
        *(_text(event.get(name)) for name in CUSTOM_ARGS),
        (machine_open is True or machine_open == "true") if kind == "open" else None,
        _text(event.get("type")) if kind == "bounce" else None,
        _text(event.get("reason")),
        _text(event.get("status")),
        _int(event, "asm_group_id", (0, BIGINT_RANGE[1])),
        _text(event.get("useragent")),
        None if categories is None else json.dumps(categories if isinstance(categories, list) else [categories]),
        payload,
        received,
        segment,
        offset,
    )


def _store_key(settings: Settings) -> str:
    return str(Path(settings.events_dir).resolve())


def _read_cursor(con: duckdb.DuckDBPyConnection, store: str) -> tuple[str, int]:
    row = con.execute(f"SELECT segment, byte_offset FROM {CURSOR_TABLE} WHERE store = ?", [store]).fetchone()
    return (str(row[0]), int(row[1])) if row else ("", 0)


def _next_chunk(segments: list[Path], cursor: tuple[str, int], max_bytes: int) -> _Chunk | None:
    """The next lines after the cursor; None when everything complete has been read.

    An incomplete last line of the newest segment may still be being written (or belongs to a batch that a
    crash cut short and SendGrid will retry): it is left alone and the cursor stays before it. In an older
    segment nothing will ever be added, so such a tail is crash debris: it is set aside in the rejects
    table (it was never acknowledged) and the cursor moves on.
    """
    name, offset = cursor
    current = segment_number(name) if name else None
    rejects: list[Reject] = []
    for index, path in enumerate(segments):
        number = segment_number(path.name)
        if current is not None and number is not None and number < current:
            continue
        start = offset if number == current else 0
        sealed = index < len(segments) - 1
        read = read_lines(path, start, max_bytes)
        if read.data:
            rows, bad, salvaged = _parse(read.data, read.start, path.name)
            return _Chunk(rows, rejects + bad, path.name, read.end, salvaged)
        if read.tail and sealed:
            rejects.append((path.name, read.end, "incomplete last line of a closed segment", _decoded(read.tail)))
            log.warning("set aside %d bytes of crash debris at the end of %s", len(read.tail), path.name)
        if not sealed:
            return _Chunk([], rejects, path.name, read.end) if rejects else None
        current, offset = number, 0
    return _Chunk([], rejects, name, offset) if rejects else None


def _decoded(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def _parse(data: bytes, start: int, segment: str) -> tuple[list[tuple[Any, ...]], list[Reject], list[Salvaged]]:
    rows: list[tuple[Any, ...]] = []
    rejects: list[Reject] = []
    salvaged: list[Salvaged] = []
    offset = start
    for line in data.split(b"\n")[:-1]:
        event: Any = None
        received_at = ""
        try:
            received_at, event = decode_line(line)
            rows.append(event_row(event, received_at, segment, offset))
        except (ValueError, RecursionError) as exc:  # one bad line is set aside; the loader never stops on it
            rejects.append((segment, offset, str(exc)[:500], _decoded(line)))
            if isinstance(event, dict) and (opt_out := _opt_out(event, received_at)):
                salvaged.append(opt_out)
        offset += len(line) + 1
    return rows, rejects, salvaged


def _opt_out(event: dict[str, Any], received_at: str) -> Salvaged | None:
    """(email, reason, event id, seen at) of a suppressing event, however broken its other fields; else None.

    Opt-out always wins: an unsubscribe whose timestamp is garbage is still a person asking to stop.
    """
    kind, email = event.get("event"), event.get("email")
    if kind not in SUPPRESSING_EVENTS or not isinstance(email, str) or not email.strip():
        return None
    reason = "blocked" if kind == "bounce" and event.get("type") == "blocked" else str(kind)
    try:  # its own time may be what is broken: when it was stored, else now
        seen = _received(received_at) or datetime.now(UTC).replace(tzinfo=None)
    except ValueError:
        seen = datetime.now(UTC).replace(tzinfo=None)
    return _text(email) or "", reason, _text(event.get("sg_event_id")) or "", seen


def _received(received_at: str) -> datetime | None:
    """The receiver's stamp as naive UTC; ValueError if it is not one."""
    return datetime.fromisoformat(received_at).astimezone(UTC).replace(tzinfo=None) if received_at else None


_COLUMN_NAMES = [name for name, _ in EVENT_COLUMNS]
_OFFSET, _PAYLOAD = _COLUMN_NAMES.index("segment_offset"), _COLUMN_NAMES.index("payload")
_INCOMING = ", ".join(f"unnest(?::{kind}[]) AS {name}" for name, kind in EVENT_COLUMNS)
_INSERT_NEW = f"""
    INSERT INTO {EVENTS_TABLE} BY NAME
    WITH by_event_id AS (
        SELECT * FROM _incoming AS i
        WHERE NOT EXISTS (SELECT 1 FROM {EVENTS_TABLE} AS e WHERE e.sg_event_id = i.sg_event_id)
        QUALIFY row_number() OVER (PARTITION BY sg_event_id ORDER BY segment_offset) = 1
    ),
    by_content AS (
        -- retried batches have come with new sg_event_ids: the same message, event, second and url is one event
        SELECT * FROM by_event_id AS b
        WHERE b.sg_message_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM {EVENTS_TABLE} AS e
            WHERE e.sg_message_id = b.sg_message_id AND e.event = b.event
              AND e.event_timestamp IS NOT DISTINCT FROM b.event_timestamp AND e.url IS NOT DISTINCT FROM b.url)
        QUALIFY b.sg_message_id IS NULL OR row_number() OVER (
            PARTITION BY sg_message_id, event, event_timestamp, url ORDER BY segment_offset) = 1
    )
    SELECT *, timezone('UTC', now()) AS loaded_at FROM by_content"""
_SUPPRESSING = ", ".join(f"'{e}'" for e in SUPPRESSING_EVENTS)
_UPSERT_SUPPRESSIONS = f"""
    INSERT INTO {SUPPRESSIONS_TABLE} (email, reason, source, suppressed_at, detail)
    SELECT email, arg_min(reason, seen_at), 'sendgrid', min(seen_at), arg_min(sg_event_id, seen_at)
    FROM (
        SELECT lower(trim(email)) AS email, sg_event_id, coalesce(event_at, received_at) AS seen_at,
               CASE WHEN event = 'bounce' AND bounce_type = 'blocked' THEN 'blocked' ELSE event END AS reason
        FROM _incoming
        WHERE event IN ({_SUPPRESSING}) AND nullif(trim(email), '') IS NOT NULL
        UNION ALL
        -- opt-outs among the rejects (e.g. a broken timestamp): set aside, and suppressed all the same
        SELECT lower(trim(email)), sg_event_id, seen_at, reason FROM _salvaged WHERE nullif(trim(email), '') IS NOT NULL)
    GROUP BY email
    ON CONFLICT (email) DO UPDATE
        SET reason = excluded.reason, source = excluded.source, suppressed_at = excluded.suppressed_at,
            detail = excluded.detail
        WHERE excluded.suppressed_at < suppressions.suppressed_at OR suppressions.suppressed_at IS NULL"""


def _stage(con: duckdb.DuckDBPyConnection, chunk: _Chunk) -> None:
    """The chunk's rows as the temp tables _incoming and _salvaged, before its transaction begins.

    Every value is checked while parsing, so DuckDB should take every row; should it still refuse one (a
    conversion no check foresaw), that row alone joins the rejects with DuckDB's reason instead of
    stopping the load (and every later unsubscribe with it).
    """
    try:
        _create_incoming(con, chunk.rows)
    except duckdb.Error:
        good: list[tuple[Any, ...]] = []
        for row in chunk.rows:
            try:
                _create_incoming(con, [row])
            except duckdb.Error as exc:
                reason = "not loadable: " + " ".join(str(exc).split())[:480]
                chunk.rejects.append((chunk.segment, row[_OFFSET], reason, row[_PAYLOAD]))
            else:
                good.append(row)
        chunk.rows = good
        _create_incoming(con, good)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _salvaged AS SELECT unnest(?::VARCHAR[]) AS email, unnest(?::VARCHAR[]) AS "
        "reason, unnest(?::VARCHAR[]) AS sg_event_id, unnest(?::TIMESTAMP[]) AS seen_at",
        [list(c) for c in zip(*chunk.salvaged, strict=True)] if chunk.salvaged else [[], [], [], []],
    )


def _create_incoming(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in EVENT_COLUMNS]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _incoming AS SELECT {_INCOMING}", columns)


def _commit_chunk(
    con: duckdb.DuckDBPyConnection, store: str, expected: tuple[str, int], chunk: _Chunk, result: LoadResult
) -> bool:
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
                f"INSERT INTO {REJECTS_TABLE} SELECT unnest(?::VARCHAR[]), unnest(?::BIGINT[]), "
                "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), timezone('UTC', now())",
                [segs, offsets, reasons, lines],
            )
        con.execute(
            f"INSERT INTO {CURSOR_TABLE} VALUES (?, ?, ?, timezone('UTC', now())) ON CONFLICT (store) DO UPDATE "
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


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def load_events(
    settings: Settings, *, wait_seconds: float | None = None, max_bytes_per_transaction: int = 32 * 1024 * 1024
) -> LoadResult:
    """Load everything new in the event store into the warehouse; see the module docstring for the guarantees.

    Each transaction covers at most ``max_bytes_per_transaction`` of segment data, and the warehouse is closed
    between transactions, so a backlog never keeps the daily run waiting long. If the file stays held for
    ``wait_seconds`` (default KIZUNA_EVENTS_LOAD_WAIT_SECONDS) in all, the load stops with ``deferred=True``.
    """
    started = time.monotonic()
    deadline = started + (settings.events_load_wait_seconds if wait_seconds is None else wait_seconds)
    store = _store_key(settings)
    result = LoadResult()
    cursor: tuple[str, int] | None = None
    try:
        while True:
            if cursor is None:
                with connect_when_free(settings.warehouse, wait_seconds=max(0.0, deadline - time.monotonic())) as con:
                    ensure_tracking_tables(con)
                    cursor = _read_cursor(con, store)
            # Files are read and parsed with the warehouse closed.
            chunk = _next_chunk(list_segments(Path(settings.events_dir)), cursor, max_bytes_per_transaction)
            if chunk is None:
                break
            with connect_when_free(settings.warehouse, wait_seconds=max(0.0, deadline - time.monotonic())) as con:
                committed = _commit_chunk(con, store, cursor, chunk, result)
            cursor = (chunk.segment, chunk.offset) if committed else None
    except WarehouseLockedError as exc:
        result.deferred = True
        log.warning("event load deferred, nothing lost (events stay in %s): %s", settings.events_dir, exc)
    result.cursor = f"{cursor[0]}@{cursor[1]}" if cursor and cursor[0] else ""
    result.seconds = time.monotonic() - started
    log.info("event load: %s", result.describe())
    return result
