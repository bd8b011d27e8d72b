"""The generic SQL source: the contract's tables read whole from a PostgreSQL database (docs/sources.md).

Each routed table is read from settings.postgres_schema (or the relation named in the `tables:` option)
through a server-side cursor, so a large table streams in `fetch_size` rows at a time instead of being
held in memory, inside a read-only transaction. Columns are matched to the contract by name (any case);
extra columns are ignored. A SQL source is read whole every run (a snapshot): deletions in the database
need no bookkeeping. The connection URL is a secret: errors name host, port and database, never the URL,
and anything the driver says is scrubbed of it (psycopg2 repeats a malformed URL in its message).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import parse_dsn

from kizuna.connectors.base import ChangeSink, ConnectorError, Cursor, PullOutcome
from kizuna.connectors.secrets import resolve_secret
from kizuna.core.contract import TABLES_BY_NAME, Table
from kizuna.core.errors import SourceError
from kizuna.core.settings import Settings

log = logging.getLogger(__name__)

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class PostgresOptions:
    """The `postgres:` options of the sources file (docs/sources.md)."""

    tables: dict[str, str] = field(default_factory=dict)  # contract table -> "schema.relation" or "relation"
    fetch_size: int = 5000

    @classmethod
    def parse(cls, options: dict[str, Any], where: str) -> PostgresOptions:
        unknown = set(options) - {"tables", "fetch_size"}
        if unknown:
            name = sorted(unknown)[0]
            raise SourceError(where, None, f"postgres.{name}", "unknown option; expected tables or fetch_size")
        tables = options.get("tables") or {}
        if not isinstance(tables, dict):
            raise SourceError(where, None, "postgres.tables", "must map contract tables to relations")
        for table, relation in tables.items():
            if table not in TABLES_BY_NAME:
                raise SourceError(where, None, f"postgres.tables.{table}", "is not a contract table")
            if not isinstance(relation, str) or not 1 <= len(relation.split(".")) <= 2 or not all(relation.split(".")):
                raise SourceError(where, None, f"postgres.tables.{table}", "must be 'relation' or 'schema.relation'")
        fetch_size = options.get("fetch_size", 5000)
        if not isinstance(fetch_size, int) or isinstance(fetch_size, bool) or fetch_size < 1:
            raise SourceError(
                where, None, "postgres.fetch_size", f"must be a whole number of at least 1, got {fetch_size!r}"
            )
        return cls({str(k): str(v) for k, v in tables.items()}, fetch_size)


def scrub(text: str, dsn: str) -> str:
    """The text without the URL, its password, or anything that looks like a password."""
    if dsn:
        text = text.replace(dsn, "[the PostgreSQL URL]")
        try:
            password = parse_dsn(dsn).get("password")
        except psycopg2.Error:
            password = None
        if password:
            text = text.replace(password, "***")
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return " ".join(_KV_PASSWORD.sub(r"\1***", text).split())


def describe(dsn: str) -> str:
    """host:port/database of a URL, for messages (never user or password)."""
    try:
        parts = parse_dsn(dsn)
    except psycopg2.Error:
        return "the database in KIZUNA_POSTGRES_DSN (unreadable URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"database {parts.get('dbname') or parts.get('user') or '?'} on {host}:{port}"


class PostgresConnector:
    """Feeds any contract table from PostgreSQL, read whole each run."""

    name = "postgres"
    tables: tuple[str, ...] = tuple(TABLES_BY_NAME)

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = PostgresOptions.parse(options, str(settings.sources_config or "sources file"))

    def __repr__(self) -> str:  # never the URL
        return f"PostgresConnector(schema={self.settings.postgres_schema!r})"

    def relation(self, table: str) -> tuple[str, str]:
        named = self.options.tables.get(table, table)
        schema, _, relation = named.rpartition(".")
        return schema or self.settings.postgres_schema, relation

    def pull(self, table: Table, cursor: Cursor | None, sink: ChangeSink) -> PullOutcome:
        started = time.time()
        dsn = resolve_secret(
            self.settings.postgres_dsn, self.settings.postgres_dsn_block, "the PostgreSQL URL", "KIZUNA_POSTGRES_DSN"
        )
        where = describe(dsn)
        schema, relation = self.relation(table.name)
        named = f"{schema}.{relation}"
        step = "connecting"
        try:
            con = psycopg2.connect(
                dsn, connect_timeout=max(1, int(self.settings.connector_timeout_seconds)), application_name="kizuna"
            )
        except psycopg2.Error as exc:
            raise ConnectorError(
                f"postgres: {table.name}: could not connect to {where}: {scrub(str(exc), dsn)}"
            ) from None
        try:
            con.set_session(readonly=True)
            step = f"reading the columns of {named}"
            columns = self._columns(con, schema, relation)
            if not columns:
                raise ConnectorError(
                    f"postgres: {table.name}: {where} has no table or view {named} this user may read "
                    f"(set the relation with the sources file's postgres.tables.{table.name}, docs/sources.md)"
                )
            missing = [c for c in table.required_columns if c not in columns]
            if missing:
                raise ConnectorError(
                    f"postgres: {table.name}: {where}, table {named} has no column {', '.join(missing)}, which the "
                    f"contract's {table.name} requires (rename it in a view; docs/sources.md)"
                )
            selected = [c for c in table.column_names if c in columns]
            if table.key is not None:
                step = f"checking that {named}.{columns[table.key]} is unique"
                self._check_unique(con, table, schema, relation, columns[table.key], where)
            step = f"reading {named}"
            rows = self._stream(con, table, schema, relation, [columns[c] for c in selected], selected, sink)
        except psycopg2.Error as exc:
            raise ConnectorError(f"postgres: {table.name}: {step} in {where} failed: {scrub(str(exc), dsn)}") from None
        finally:
            con.close()
        log.info("postgres: %s: read %d rows of %s in %.1f s", table.name, rows, named, time.time() - started)
        return PullOutcome({"relation": named, "rows": rows}, snapshot=True)

    @staticmethod
    def _columns(con: Connection, schema: str, relation: str) -> dict[str, str]:
        """Contract column name (lower case) -> the relation's column name, for tables and views alike."""
        with con.cursor() as cur:
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position",
                [schema, relation],
            )
            return {str(name).lower(): str(name) for (name,) in cur.fetchall()}

    @staticmethod
    def _check_unique(con: Connection, table: Table, schema: str, relation: str, column: str, where: str) -> None:
        query = sql.SQL(
            "SELECT {col}::text, count(*) FROM {schema}.{rel} WHERE {col} IS NOT NULL GROUP BY {col} "
            "HAVING count(*) > 1 ORDER BY count(*) DESC, 1 LIMIT 3"
        ).format(col=sql.Identifier(column), schema=sql.Identifier(schema), rel=sql.Identifier(relation))
        with con.cursor() as cur:
            cur.execute(query)
            duplicates = cur.fetchall()
        if duplicates:
            shown = ", ".join(f"{value!r} ({count} rows)" for value, count in duplicates)
            raise ConnectorError(
                f"postgres: {table.name}: {where}, table {schema}.{relation}: column {column} must be unique "
                f"(the contract's key {table.key}), but repeats: {shown}"
            )

    def _stream(
        self,
        con: Connection,
        table: Table,
        schema: str,
        relation: str,
        source_columns: list[str],
        names: list[str],
        sink: ChangeSink,
    ) -> int:
        query = sql.SQL("SELECT {cols} FROM {schema}.{rel}").format(
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in source_columns),
            schema=sql.Identifier(schema),
            rel=sql.Identifier(relation),
        )
        key = names.index(table.key) if table.key in names else None
        rows = 0
        with con.cursor(name="kizuna_pull") as cur:  # a named cursor lives on the server: rows stream
            cur.itersize = self.options.fetch_size
            cur.execute(query)
            for record in cur:
                rows += 1
                ref = (
                    f"{schema}.{relation} {table.key}={record[key]}"
                    if key is not None
                    else f"{schema}.{relation} row {rows}"
                )
                sink.upsert(dict(zip(names, record, strict=True)), ref)
        return rows
