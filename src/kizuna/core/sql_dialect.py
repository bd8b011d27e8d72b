"""The few expressions kizuna writes differently for each warehouse engine, chosen by the connection.

Most of kizuna's SQL is one text for DuckDB and PostgreSQL (docs/scaling.md lists the rules). Where an engine's
own form is much faster at 1M customers (DuckDB's list lambdas and `arg_min`) or the engines name a function
differently (JSON objects), the SQL asks the connection's dialect, as dbt's adapter macros do for the marts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kizuna.core.connection import Connection
from kizuna.core.postgres_warehouse import PostgresConnection


@dataclass(frozen=True)
class Dialect:
    name: str

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        """A JSON object's text from (key, SQL expression) pairs; keys are kizuna's own names, never input."""
        if self.is_postgres:
            return "json_build_object(" + ", ".join(f"'{key}', {expr}" for key, expr in pairs) + ")::text"
        return "to_json({" + ", ".join(f"'{key}': {expr}" for key, expr in pairs) + "})::VARCHAR"

    def text_items(self, expr: str) -> str:
        """A comma-separated text (e.g. 'crm, analytics') as a list of its trimmed items ('' for NULL)."""
        if self.is_postgres:
            return f"ARRAY(SELECT trim(item)::VARCHAR FROM unnest(string_to_array(coalesce({expr}, ''), ',')) AS item)"
        return f"list_transform(string_split(coalesce({expr}, ''), ','), lambda x: trim(x))"

    def first_by(self, value: str, order: str) -> str:
        """An aggregate: `value` of the row with the least `order`, over the rows where neither is NULL (as DuckDB's
        arg_min: a NULL value is passed over for the next row's)."""
        if self.is_postgres:
            return (
                f"(array_agg({value} ORDER BY {order}) FILTER (WHERE {order} IS NOT NULL AND {value} IS NOT NULL))[1]"
            )
        return f"arg_min({value}, {order})"

    def last_by(self, value: str, order: str) -> str:
        """An aggregate: `value` of the row with the greatest `order`, over the rows where neither is NULL."""
        if self.is_postgres:
            return f"(array_agg({value} ORDER BY {order} DESC) FILTER (WHERE {order} IS NOT NULL AND {value} IS NOT NULL))[1]"
        return f"arg_max({value}, {order})"


DUCKDB = Dialect("duckdb")
POSTGRES = Dialect("postgresql")


def dialect_of(con: Connection | None) -> Dialect:
    """The dialect of the engine behind a connection (DuckDB's when there is none: SQL built ahead of a run)."""
    return POSTGRES if isinstance(con, PostgresConnection) else DUCKDB
